"""`stacktune report`: analysis and rendering on fixture snapshots, the closed loop, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from stacktune.cli import main
from stacktune.model import SERVICES, Host, HostProfile, StackInputs, Storage, Workload
from stacktune.plan import plan_stack
from stacktune.report.analyse import analyse, deltas, overrides_yaml
from stacktune.report.collect import mask_dsn, parse_redis_info, parse_redis_url
from stacktune.report.findings import FindingData, finding
from stacktune.report.render import render, report_data

DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "report_snapshot_pg15.json"
EARLIER = DATA / "report_snapshot_pg15_earlier.json"


@pytest.fixture
def snapshot() -> dict:
    return json.loads(SNAPSHOT.read_text())


@pytest.fixture
def earlier() -> dict:
    return json.loads(EARLIER.read_text())


def kinds(findings: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for item in findings:
        out.setdefault(item["kind"], []).append(item)
    return out


def test_finding_shape_is_the_shared_contract():
    item = FindingData("x", "low", "t", "fix", {"n": 1}, {"table": "public.t"}).to_dict()
    assert item == {"kind": "x", "severity": "low", "title": "t", "evidence": {"n": 1},
                    "fix": "fix", "objects": {"table": "public.t"}}
    with pytest.raises(ValueError, match="severity 'urgent'"):
        finding("x", "urgent", "t", "fix")  # type: ignore[arg-type]


def test_findings_name_the_objects_and_the_fix(snapshot):
    found = kinds(analyse(snapshot)["findings"])
    fk = found["fk_without_index"][0]
    assert fk["objects"]["table"] == "public.order_line"
    assert fk["objects"]["column"] == "order_id"
    assert fk["fix"] == "CREATE INDEX CONCURRENTLY ON public.order_line (order_id);"
    assert found["table_without_pk"][0]["objects"]["table"] == "public.event_log"
    assert found["unused_index"][0]["fix"].startswith(
        "DROP INDEX CONCURRENTLY public.orders_note_idx;")
    assert found["duplicate_index"][0]["fix"] == \
        "DROP INDEX CONCURRENTLY public.article_created_idx1;"
    assert found["invalid_index"][0]["fix"] == \
        "REINDEX INDEX CONCURRENTLY public.article_title_idx;"
    slow = found["slow_query"][0]
    assert slow["objects"]["queryid"] == "101"
    assert slow["evidence"]["seq_scans"] == ["public.orders"]
    assert slow["evidence"]["share_of_total_time"] == pytest.approx(48000 / 61000, abs=1e-3)
    suspect = found["n_plus_one_suspect"]
    assert [s["objects"]["queryid"] for s in suspect] == ["102"]
    assert suspect[0]["objects"]["table"] == "shop_customer"
    offset = found["deep_offset"][0]
    assert offset["objects"]["table"] == "public.article"
    assert "keyset" in offset["fix"] and offset["evidence"]["blocks_per_row"] == 100.0
    lagging = found["vacuum_lagging"][0]
    assert lagging["objects"]["table"] == "public.article"
    assert "autovacuum_vacuum_scale_factor" in lagging["fix"]
    assert found["xid_age"][0]["objects"]["table"] == "public.orders"
    assert found["cache_hit_ratio"][0]["evidence"]["ratio"] == 0.8
    assert found["temp_files"][0]["evidence"]["spilling_queryids"] == ["105"]
    assert found["checkpoints_requested"][0]["evidence"]["requested"] == 12
    assert found["pgbouncer_clients_waiting"][0]["evidence"]["cl_waiting"] == 4
    assert found["redis_evictions"][0]["evidence"]["evicted_keys"] == 250
    # Highest severity first.
    order = [f["severity"] for f in analyse(snapshot)["findings"]]
    assert order == sorted(order, key=["high", "medium", "low"].index)


def test_sections_that_failed_are_named_and_the_rest_still_analysed(snapshot):
    snapshot["statements"] = {"error": "pg_stat_statements is not installed in this database: "
                              "add pg_stat_statements to shared_preload_libraries"}
    snapshot["offset"] = {"error": snapshot["statements"]["error"]}
    result = analyse(snapshot)
    assert "pg_stat_statements" in result["errors"]["statements"]
    assert set(result["errors"]) >= {"statements", "offset", "missing_indexes", "nplusone"}
    found = kinds(result["findings"])
    assert "slow_query" not in found and "fk_without_index" in found
    text = render(report_data(snapshot, result), "md")
    assert "## Not computed" in text and "shared_preload_libraries" in text
    assert "Foreign keys without an index" in text


def test_proposals(snapshot):
    proposals = analyse(snapshot)["proposals"]
    # 400 MiB in 40 files: 10 MiB per spill over a 4MB work_mem -> 16MB (at most 4x).
    assert proposals == {"postgresql": {"work_mem": "16MB", "max_wal_size": "2GB"},
                         "pgbouncer": {"default_pool_size": "10"},
                         "redis": {"maxmemory": "384mb"}}


def test_overrides_yaml_is_accepted_by_the_plan_engine(snapshot):
    text = overrides_yaml(analyse(snapshot)["proposals"])
    overrides = yaml.safe_load(text)["stacktune_overrides"]
    profile = HostProfile(memory_bytes=8 << 30, cpus=4, storage=Storage.SSD)
    plan = plan_stack(StackInputs(hosts=(Host("db1", profile, frozenset(SERVICES)),),
                                  workload=Workload.WEB, pg_version=15, overrides=overrides))
    view = plan.host_view("db1")
    assert view["postgresql"]["work_mem"] == "16MB"
    assert view["postgresql"]["max_wal_size"] == "2GB"
    assert view["pgbouncer"]["default_pool_size"] == "10"
    assert view["redis"]["maxmemory"] == "384mb"


def test_no_proposals_is_an_empty_mapping():
    assert yaml.safe_load(overrides_yaml({})) == {"stacktune_overrides": {}}


def test_since_reports_the_window_and_resets(snapshot, earlier):
    window = deltas(snapshot, earlier)
    assert window["counters"]["database.temp_files"] == 30
    assert window["counters"]["checkpoints.requested"] == 10
    assert window["counters"]["statement.101.calls"] == 200
    assert "statement.106.calls" in window["reset"]
    result = analyse(snapshot, previous=earlier)
    found = kinds(result["findings"])
    # The window's counters, not the totals since the statistics reset.
    assert found["checkpoints_requested"][0]["evidence"]["requested"] == 10
    assert found["temp_files"][0]["evidence"]["temp_files"] == 30


def test_plan_comparison(snapshot):
    plan = {"postgresql": {"work_mem": "8MB", "shared_buffers": "128MB"}}
    found = kinds(analyse(snapshot, plan=plan)["findings"])
    differs = found["setting_differs_from_plan"]
    assert [(f["objects"]["setting"], f["evidence"]["live"]) for f in differs] == \
        [("work_mem", "4MB")]
    assert found["temp_files"][0]["evidence"]["planned_work_mem"] == "8MB"
    text = render(report_data(snapshot, analyse(snapshot, plan=plan), "db1", plan), "md")
    assert "| work_mem | 4096 | kB | configuration file | 8MB |" in text


def test_html_is_one_self_contained_page(snapshot, earlier):
    text = render(report_data(snapshot, analyse(snapshot, previous=earlier), "db1"), "html")
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    assert "<table>" in text and "<svg" in text
    # No external assets: the only URL is the SVG namespace.
    urls = set(re.findall(r"(?:src|href)=\"([^\"]+)\"", text))
    assert urls == set()
    assert "<script" not in text
    assert "CREATE INDEX CONCURRENTLY ON public.order_line (order_id);" in text


def test_json_and_markdown(snapshot):
    report = report_data(snapshot, analyse(snapshot), "db1")
    assert json.loads(render(report, "json"))["analysis"]["findings"][0]["severity"] == "high"
    text = render(report, "md")
    assert "| high | slow_query |" in text
    assert "## Proposed stacktune_overrides" in text and 'work_mem: "16MB"' in text


def test_hidden_statements_name_the_grant(snapshot):
    snapshot["user"] = "plain"
    snapshot["statements"]["summary"]["hidden"] = 72
    text = render(report_data(snapshot, analyse(snapshot)), "md")
    assert "72 statements of other roles are hidden from this login: GRANT pg_monitor " \
        "(or pg_read_all_stats) TO plain;" in text


def test_mask_dsn():
    assert mask_dsn("host=db password=s3cret dbname=app") == "host=db password=*** dbname=app"
    assert mask_dsn("password='a b' host=db") == "password=*** host=db"
    assert mask_dsn("postgresql://mon:s3cret@db:5432/app") == "postgresql://mon:***@db:5432/app"


def test_redis_helpers():
    assert parse_redis_url("redis://:pw@cache:6380/0") == ("cache", 6380, None, "pw")
    assert parse_redis_url("cache") == ("cache", 6379, None, None)
    info = parse_redis_info(
        "# Stats\r\nevicted_keys:3\r\nmem_fragmentation_ratio:1.5\r\nrole:x\r\n")
    assert info == {"evicted_keys": 3, "mem_fragmentation_ratio": 1.5, "role": "x"}


def test_cli_renders_a_saved_snapshot(tmp_path, capsys):
    overrides = tmp_path / "overrides.yml"
    assert main(["report", "--snapshot", str(SNAPSHOT), "--since", str(EARLIER),
                 "--format", "md", "--overrides-out", str(overrides)]) == 0
    out = capsys.readouterr().out
    assert "CREATE INDEX CONCURRENTLY ON public.order_line (order_id);" in out
    assert yaml.safe_load(overrides.read_text())["stacktune_overrides"]["postgresql"] == {
        "work_mem": "16MB", "max_wal_size": "2GB"}


def test_cli_unreachable_dsn_names_it_with_the_password_masked(capsys):
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    assert main(["report", "--dsn", "host=127.0.0.1 port=1 dbname=app password=s3cret"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stacktune: error: cannot connect to host=127.0.0.1 port=1 "
                          "dbname=app password=***")
    assert "s3cret" not in err and len(err.strip().splitlines()) == 1


def test_cli_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    assert main(["report", "--snapshot", str(bad)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err
    assert main(["report", "--snapshot", str(tmp_path / "missing.json")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_postgresqls_own_foreign_key_checks_are_no_n_plus_one(snapshot):
    """With track = all, pg_stat_statements records the checks PostgreSQL runs for each
    inserted row with a foreign key (as a bulk load of the demo data does): no view can
    batch them, so they are no N+1 suspect, however often they ran."""
    rows = snapshot["statements"]["rows"]
    check = dict(rows[0], queryid="-77", calls=68779, rows=68779, mean_exec_time=0.011,
                 query='SELECT $2 FROM ONLY "public"."publishing_article" x WHERE "id" '
                       'OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x')
    snapshot["statements"]["rows"] = [*rows, check]
    suspects = kinds(analyse(snapshot)["findings"]).get("n_plus_one_suspect", [])
    assert "-77" not in [item["objects"]["queryid"] for item in suspects]
    assert suspects, "the fixture's real N+1 suspect must still be found"


def test_cli_apply_needs_a_database_not_a_saved_snapshot(capsys):
    """--apply creates indexes: from a saved snapshot there is nothing to create them in."""
    assert main(["report", "--snapshot", str(SNAPSHOT), "--apply"]) == 2
    assert "--apply needs --dsn" in capsys.readouterr().err


def test_cli_apply_names_the_unreachable_database(capsys):
    from stacktune.cli import CliError, _apply_indexes

    snapshot = json.loads(SNAPSHOT.read_text())
    with pytest.raises(CliError, match=r"cannot connect to .*password=\*\*\*"):
        _apply_indexes("host=127.0.0.1 port=1 dbname=x password=secret connect_timeout=2",
                       snapshot["missing_indexes"].get("findings", []))


def test_a_statement_that_reads_no_table_is_no_n_plus_one(snapshot):
    """Django's connection health check (CONN_HEALTH_CHECKS) runs ``SELECT 1`` at the start
    of each request on a persistent connection: one cheap row, called as often as requests
    come, and no view can batch it. Seen on the demo under load as ``SELECT $1``."""
    rows = snapshot["statements"]["rows"]
    ping = dict(rows[0], queryid="-78", calls=50000, rows=50000, mean_exec_time=0.004,
                query="SELECT $1")
    snapshot["statements"]["rows"] = [*rows, ping]
    suspects = kinds(analyse(snapshot)["findings"]).get("n_plus_one_suspect", [])
    assert "-78" not in [item["objects"]["queryid"] for item in suspects]
    assert suspects, "the fixture's real N+1 suspect must still be found"

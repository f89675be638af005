"""playbooks/report.yml against the real PostgreSQL: a schema with known problems, real
traffic, and the report naming each problem; bad input names what is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from conftest import PRIMARY
from stacktune_testlib import REPO, extra_vars, psql, run_playbook

testinfra_hosts = [PRIMARY]

COLLECT_SOURCE = (REPO / "stacktune" / "report" / "collect.py").read_text()
SCHEMA = """
DROP SCHEMA IF EXISTS report_demo CASCADE;
CREATE SCHEMA report_demo;
CREATE TABLE report_demo.customer (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE report_demo.orders (
    id int PRIMARY KEY, customer_id int NOT NULL REFERENCES report_demo.customer,
    email text NOT NULL, note text NOT NULL);
CREATE INDEX orders_note_idx ON report_demo.orders (note);
CREATE TABLE report_demo.event_log (at timestamptz NOT NULL, message text);
INSERT INTO report_demo.customer
    SELECT i, 'c' || i || '@example.org' FROM generate_series(1, 1000) i;
INSERT INTO report_demo.orders
    SELECT i, 1 + i % 1000, 'c' || (1 + i % 1000) || '@example.org', md5(i::text) || md5('n' || i)
    FROM generate_series(1, 50000) i;
INSERT INTO report_demo.event_log SELECT now(), 'x' FROM generate_series(1, 100);
ANALYZE report_demo.customer, report_demo.orders, report_demo.event_log;
"""
# One-row lookups in a loop (an N+1), and deep OFFSET pages.
N_PLUS_ONE_CALLS = 1200
TRAFFIC = "\n".join(
    [f"SELECT email FROM report_demo.customer WHERE id = {1 + i % 1000};"
     for i in range(N_PLUS_ONE_CALLS)]
    + ["SELECT id FROM report_demo.orders ORDER BY email, id OFFSET 40000 LIMIT 20;"
       for _ in range(20)])


def run_sql_file(host, sql: str, db: str = "app") -> None:
    path = "/tmp/stacktune-report-test.sql"
    result = host.run("printf %%s %s > %s", sql, path)
    assert result.rc == 0, result.stderr
    result = host.run("runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d %s -f %s "
                      "> /dev/null", db, path)
    assert result.rc == 0, result.stderr


@pytest.fixture(scope="module")
def demo_schema(host):
    # A recreated table has a new OID, so earlier runs' statements would count as others.
    psql(host, "SELECT pg_stat_statements_reset()", db="app")
    run_sql_file(host, SCHEMA)
    run_sql_file(host, TRAFFIC)
    yield
    psql(host, "DROP SCHEMA IF EXISTS report_demo CASCADE", db="app")


def report(tmp_path: Path, *extra: str) -> tuple[object, dict]:
    result = run_playbook(*extra_vars(stacktune_report_dir=str(tmp_path),
                                      stacktune_report_formats=["json", "md", "html"]),
                          *extra, playbook="playbooks/report.yml")
    return result, {path.name: path for path in tmp_path.iterdir()}


def findings_of(report_json: Path) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in json.loads(report_json.read_text())["analysis"]["findings"]:
        found.setdefault(item["kind"], []).append(item)
    return found


def test_report_names_the_problems(host, demo_schema, tmp_path):
    result, files = report(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    name = host.backend.get_hostname()
    assert {f"{name}.json", f"{name}.md", f"{name}.html", f"{name}.snapshot.json",
            f"{name}.overrides.yml"} <= set(files)
    found = findings_of(files[f"{name}.json"])
    fk = [f for f in found["fk_without_index"] if f["objects"]["table"] == "report_demo.orders"]
    assert [(f["objects"]["column"], f["fix"]) for f in fk] == [
        ("customer_id", "CREATE INDEX CONCURRENTLY ON report_demo.orders (customer_id);")]
    assert "report_demo.event_log" in [f["objects"]["table"] for f in found["table_without_pk"]]
    unused = {f["objects"]["index"]: f for f in found["unused_index"]}
    assert unused["orders_note_idx"]["fix"].startswith(
        "DROP INDEX CONCURRENTLY report_demo.orders_note_idx;")
    suspects = [f for f in found["n_plus_one_suspect"]
                if f["objects"].get("table") == "report_demo.customer"]
    assert len(suspects) == 1 and suspects[0]["evidence"]["calls"] >= N_PLUS_ONE_CALLS
    offsets = [f for f in found["deep_offset"]
               if f["objects"].get("table") == "report_demo.orders"]
    assert len(offsets) == 1 and offsets[0]["evidence"]["calls"] >= 20
    snapshot = json.loads(files[f"{name}.snapshot.json"].read_text())
    # Every section was read; the plans of the worst SELECTs are generic plans (PREPARE on 15).
    assert not [k for k, v in snapshot.items() if isinstance(v, dict) and "error" in v
                and k not in ("missing_indexes", "nplusone")]
    assert any("plan" in plan for plan in snapshot["plans"].values())
    html = files[f"{name}.html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html
    assert "CREATE INDEX CONCURRENTLY ON report_demo.orders (customer_id);" in html
    # Read-only: the report's own session created or dropped nothing (two keys, one index).
    assert psql(host, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'report_demo'",
                db="app") == "3"


def test_check_mode_still_reports(host, tmp_path):
    """The module only reads: --check runs it, and the report is written on the controller."""
    result, files = report(tmp_path, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    name = host.backend.get_hostname()
    data = json.loads(files[f"{name}.json"].read_text())
    assert data["snapshot"]["server"]["settings"]["shared_buffers"]["unit"] == "8kB"


def test_compared_with_the_plan(host, plan, tmp_path):
    result, files = report(tmp_path, *extra_vars(stacktune_report_compare_plan=True))
    assert result.returncode == 0, result.stdout + result.stderr
    name = host.backend.get_hostname()
    data = json.loads(files[f"{name}.json"].read_text())
    assert data["planned_postgresql"]["work_mem"] == plan.host_view(name)["postgresql"]["work_mem"]
    # A converged server runs its plan: no setting differs.
    assert not [f for f in data["analysis"]["findings"]
                if f["kind"] == "setting_differs_from_plan"]


def test_no_pg_stat_statements_names_it_and_the_rest_prints(host, tmp_path):
    psql(host, "DROP DATABASE IF EXISTS report_bare")
    psql(host, "CREATE DATABASE report_bare")
    try:
        psql(host, "CREATE TABLE nopk (a int)", db="report_bare")
        result, files = report(tmp_path, *extra_vars(postgresql_app_database="report_bare"))
        assert result.returncode == 0, result.stdout + result.stderr
        name = host.backend.get_hostname()
        data = json.loads(files[f"{name}.json"].read_text())
        error = data["analysis"]["errors"]["statements"]
        assert "pg_stat_statements is not installed" in error
        assert "CREATE EXTENSION pg_stat_statements in database report_bare" in error
        assert "public.nopk" in [f["objects"]["table"] for f in data["analysis"]["findings"]
                                 if f["kind"] == "table_without_pk"]
        assert "## Not computed" in files[f"{name}.md"].read_text()
    finally:
        psql(host, "DROP DATABASE IF EXISTS report_bare")


def test_no_privileges_names_the_grant_and_the_rest_prints(host):
    """A login without the right to read pg_stat_statements: that section says what to grant."""
    psql(host, "DROP DATABASE IF EXISTS report_priv")
    psql(host, "CREATE DATABASE report_priv")
    psql(host, "DROP ROLE IF EXISTS report_nopriv")
    try:
        psql(host, "CREATE ROLE report_nopriv")
        psql(host, "CREATE EXTENSION pg_stat_statements; "
             "REVOKE ALL ON pg_stat_statements FROM PUBLIC; CREATE TABLE nopk (a int)",
             db="report_priv")
        script = COLLECT_SOURCE + (
            "\nimport json, psycopg2\n"
            "conn = connect('host=/var/run/postgresql dbname=report_priv', driver=psycopg2)\n"
            "conn.cursor().execute('SET ROLE report_nopriv'); conn.commit()\n"
            "print(json.dumps(collect(conn)))\n")
        snapshot = json.loads(host.check_output("runuser -u postgres -- python3 -c %s", script))
        error = snapshot["statements"]["error"]
        assert "permission denied" in error and "GRANT pg_monitor TO report_nopriv" in error
        assert snapshot["tables_without_pk"]["rows"][0]["table"] == "public.nopk"
        assert "timed" in snapshot["checkpoints"]
    finally:
        psql(host, "DROP DATABASE IF EXISTS report_priv")
        psql(host, "DROP ROLE IF EXISTS report_nopriv")


def test_unreachable_server_is_one_clear_error(tmp_path):
    result, _ = report(tmp_path, *extra_vars(postgresql_port=5999))
    assert result.returncode != 0
    assert "cannot connect to dbname='app' port='5999' host='/var/run/postgresql'" in result.stdout

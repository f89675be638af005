"""Alert rules from the plan: thresholds follow planned values, promtool accepts the rules
and its rule unit tests fire each alert on the series that should fire it, not before."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stacktune.model import Host, HostProfile, PlanError, StackInputs, Storage
from stacktune.monitoring import (
    XID_WRAPAROUND,
    alert_rules,
    postgres_exporter_queries,
    thresholds,
)
from stacktune.plan import plan_stack
from stacktune.units import GiB, MiB, parse_redis_memory

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = os.environ.get("PROMTOOL") or (
    str(ROOT / ".cache/promtool/promtool") if (ROOT / ".cache/promtool/promtool").is_file()
    else shutil.which("promtool"))
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="no promtool: scripts/setup fetches it from Debian's prometheus package")


def whole_plan(overrides=None, memory=4 * GiB) -> dict:
    profile = HostProfile(memory_bytes=memory, cpus=2, storage=Storage.SSD)
    hosts = (Host("db", profile, frozenset({"postgresql", "pgbouncer"})),
             Host("cache", HostProfile(memory_bytes=512 * MiB, cpus=1, storage=Storage.SSD),
                  frozenset({"redis"})),
             Host("app", profile, frozenset({"gunicorn"})))
    return plan_stack(StackInputs(hosts=hosts, overrides=overrides or {})).to_dict()


def rule(rules: dict, name: str) -> dict:
    [found] = [r for r in rules["groups"][0]["rules"] if r["alert"] == name]
    return found


def test_thresholds_follow_the_plan():
    plan = whole_plan()
    t = thresholds(plan)
    max_connections = int(plan["postgresql"]["max_connections"])
    reserved = int(plan["postgresql"]["superuser_reserved_connections"])
    assert t.connections == int((max_connections - reserved) * 0.8)
    assert f"max_connections {max_connections}" in t.connections_reason
    assert t.redis_memory_bytes == int(parse_redis_memory(plan["redis"]["maxmemory"]) * 0.9)
    assert t.idle_in_transaction_seconds == 60
    assert t.pgbouncer_waiting_for_seconds == float(plan["pgbouncer"]["query_wait_timeout"])
    assert t.xid_age == 300_000_000
    # An override moves the threshold with it.
    bigger = thresholds(whole_plan({"postgresql": {"autovacuum_freeze_max_age": 1_000_000_000,
                                                   "max_connections": 200}}))
    assert bigger.xid_age == XID_WRAPAROUND // 2
    assert bigger.connections == int((200 - reserved) * 0.8)


def test_every_rule_has_a_reason_and_only_placed_services_get_rules():
    rules = alert_rules(whole_plan())
    names = [r["alert"] for r in rules["groups"][0]["rules"]]
    assert len(names) == len(set(names)) >= 16
    for r in rules["groups"][0]["rules"]:
        assert len(r["annotations"]["reason"]) > 20, r["alert"]
    only_cache = plan_stack(StackInputs(hosts=(Host(
        "c", HostProfile(memory_bytes=GiB, cpus=1, storage=Storage.SSD),
        frozenset({"redis"})),))).to_dict()
    cache_names = {r["alert"] for r in alert_rules(only_cache)["groups"][0]["rules"]}
    assert "RedisEvictions" in cache_names
    assert not {n for n in cache_names if n.startswith(("Postgresql", "Pgbouncer"))}


@pytest.mark.parametrize("bad", ["2 minutes", "", "-1m", "1.5m", "m"])
def test_a_bad_duration_names_the_variable(bad):
    with pytest.raises(PlanError, match="monitoring_target_down_for"):
        alert_rules(whole_plan(), bad)


def test_checkpoint_counters_follow_the_version():
    assert "pg_stat_bgwriter" in postgres_exporter_queries(15)["stacktune_pg_checkpoints"]["query"]
    assert "pg_stat_checkpointer" in (
        postgres_exporter_queries(17)["stacktune_pg_checkpoints"]["query"])


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(alert_rules(whole_plan())))
    result = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


RULES = alert_rules(whole_plan(), "1m")


def alert_case(name: str, series: list[dict], minutes: int, labels: dict | None,
               summary: str = "") -> dict:
    """A promtool alert test: at ``minutes`` the alert ``name`` fires with ``labels`` and
    ``summary`` and the rule's reason (labels None: it does not fire)."""
    reason = rule(RULES, name)["annotations"]["reason"]
    expected = [] if labels is None else [
        {"exp_labels": labels, "exp_annotations": {"summary": summary, "reason": reason}}]
    return {"interval": "1m", "input_series": series,
            "alert_rule_test": [{"eval_time": f"{minutes}m", "alertname": name,
                                 "exp_alerts": expected}]}


@needs_promtool
def test_promtool_rule_unit_tests_fire_on_the_planned_thresholds(tmp_path):
    plan = whole_plan()
    t = thresholds(plan)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(RULES))
    inst = {"instance": "db:9187", "job": "postgresql"}

    def series(metric: str, values: str, **labels: str) -> dict:
        text = ",".join(f'{k}="{v}"' for k, v in {**inst, **labels}.items())
        return {"series": f"{metric}{{{text}}}", "values": values}

    over, under = t.connections + 1, t.connections
    idle = int(t.idle_in_transaction_seconds)
    tests = [
        # A target down for longer than the `for` fires; the series from the start.
        alert_case("TargetDown", [series("up", "1 0x5")], 1, None),
        alert_case("TargetDown", [series("up", "1 0x5")], 3,
                   {**inst, "severity": "critical"},
                   "postgresql on db:9187 cannot be scraped"),
        alert_case("PostgresqlConnectionsNearMax",
                   [series("stacktune_pg_connections_used", f"{under}x10")], 8, None),
        alert_case("PostgresqlConnectionsNearMax",
                   [series("stacktune_pg_connections_used", f"{over}x10")], 8,
                   {**inst, "severity": "warning"},
                   f"{over} client connections on db:9187"),
        alert_case("PostgresqlIdleInTransaction",
                   [series("stacktune_pg_transaction_longest_seconds", f"{idle}x5",
                           state="idle in transaction")], 4, None),
        alert_case("PostgresqlIdleInTransaction",
                   [series("stacktune_pg_transaction_longest_seconds", f"{idle + 1}x5",
                           state="idle in transaction")], 4,
                   {**inst, "state": "idle in transaction", "severity": "warning"},
                   "a session has been idle in a transaction for 1m 1s"),
        alert_case("PostgresqlTransactionIdAge",
                   [series("stacktune_pg_database_xid_age", f"{t.xid_age + 1}x20",
                           datname="app")], 15,
                   {**inst, "datname": "app", "severity": "critical"},
                   "database app is 300M transactions old"),
        alert_case("PostgresqlReplicationSlotInactive",
                   [series("stacktune_pg_replication_slot_active", "0x20", slot_name="r1")],
                   15, {**inst, "slot_name": "r1", "severity": "warning"},
                   "replication slot r1 has no consumer"),
        alert_case("PostgresqlReplicationLag",
                   [series("stacktune_pg_replication_replay_lag_seconds", "45x5",
                           application_name="r1")],
                   3, {**inst, "application_name": "r1", "severity": "warning"},
                   "replica r1 is 45 s behind"),
        # 1 requested checkpoint in 5 is the share allowed; 1 in 2 fires.
        alert_case("PostgresqlCheckpointPressure",
                   [series("stacktune_pg_checkpoints_timed", "0+4x120"),
                    series("stacktune_pg_checkpoints_requested", "0+1x120")], 100, None),
        alert_case("PostgresqlCheckpointPressure",
                   [series("stacktune_pg_checkpoints_timed", "0+1x120"),
                    series("stacktune_pg_checkpoints_requested", "0+1x120")], 100,
                   {**inst, "severity": "warning"},
                   "50% of checkpoints forced by WAL volume"),
        alert_case("PostgresqlCacheHitRatioLow",
                   [series("stacktune_pg_blocks_hit", "0+990x60"),
                    series("stacktune_pg_blocks_read", "0+10x60")], 40, None),
        alert_case("PostgresqlCacheHitRatioLow",
                   [series("stacktune_pg_blocks_hit", "0+800x60"),
                    series("stacktune_pg_blocks_read", "0+200x60")], 40,
                   {**inst, "severity": "warning"},
                   "buffer cache hit ratio 80%"),
        alert_case("PgbouncerClientsWaiting",
                   [series("pgbouncer_waiting_clients", "3x5", database="app", user="app")],
                   3, {"instance": "db:9187", "database": "app", "severity": "warning"},
                   "3 clients waiting for a server connection to app"),
        alert_case("RedisMemoryNearMax",
                   [series("redis_memory_used_bytes", f"{t.redis_memory_bytes + 1}x30")], 20,
                   {**inst, "severity": "info"},
                   f"Redis uses {(t.redis_memory_bytes + 1) / MiB:.4g}MiB"),
        alert_case("RedisEvictions",
                   [series("redis_evicted_keys_total", "0+600x30")], 25,
                   {**inst, "severity": "warning"},
                   "Redis evicts 10 keys per second"),
        alert_case("DiskAlmostFull",
                   [series("node_filesystem_avail_bytes", "5x10", fstype="ext4", mountpoint="/"),
                    series("node_filesystem_size_bytes", "100x10", fstype="ext4",
                           mountpoint="/"),
                    series("node_filesystem_avail_bytes", "5x10", fstype="tmpfs",
                           mountpoint="/run"),
                    series("node_filesystem_size_bytes", "100x10", fstype="tmpfs",
                           mountpoint="/run")], 8,
                   {**inst, "fstype": "ext4", "mountpoint": "/", "severity": "critical"},
                   "/ on db:9187 has 5% free"),
    ]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

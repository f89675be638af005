"""Monitoring (stacktune_monitoring): exporters on every host, reachable from the monitoring
host (the cache host) only, with least-privilege logins; Prometheus there scrapes every target
the inventory names, and an alert fires when its condition is caused (an exporter stopped)."""

from __future__ import annotations

import json
import time

from test_cluster_security import tcp_connect

from stacktune.monitoring import thresholds

testinfra_hosts = ["ansible://stacktune-cache"]

PROMETHEUS = "stacktune-cache"
EXPECTED_TARGETS = {
    ("node", "stacktune-db"), ("node", "stacktune-cache"), ("node", "stacktune-app1"),
    ("node", "stacktune-app2"), ("postgresql", "stacktune-db"), ("pgbouncer", "stacktune-db"),
    ("redis", "stacktune-cache"),
}
EXPORTER_PORTS = {("stacktune-db", 9100), ("stacktune-db", 9187), ("stacktune-db", 9127),
                  ("stacktune-cache", 9121), ("stacktune-app1", 9100)}


GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"


def api(nodes, path: str) -> dict:
    """Prometheus's HTTP API, asked on the monitoring host (it listens on loopback)."""
    answer = json.loads(nodes[PROMETHEUS].check_output(
        "python3 -c %s %s", GET, f"http://127.0.0.1:9090/api/v1/{path}"))
    assert answer["status"] == "success", answer
    return answer["data"]


def targets(nodes) -> dict[tuple[str, str], str]:
    return {(t["labels"]["job"], t["labels"]["instance"]): t["health"]
            for t in api(nodes, "targets?state=active")["activeTargets"]}


def wait_for(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_prometheus_scrapes_every_target_the_inventory_names(nodes):
    wait_for(lambda: set(targets(nodes).values()) == {"up"})
    found = targets(nodes)
    assert set(found) == EXPECTED_TARGETS
    assert found == dict.fromkeys(EXPECTED_TARGETS, "up")
    # The postgres exporter logs in (pg_up) and runs the stacktune_pg_* queries.
    pg_up = api(nodes, "query?query=pg_up")["result"]
    assert [r["value"][1] for r in pg_up] == ["1"]
    used = api(nodes, "query?query=stacktune_pg_connections_used")["result"]
    assert used and float(used[0]["value"][1]) >= 1
    waiting = api(nodes, "query?query=pgbouncer_waiting_clients")["result"]
    assert waiting, "the pgbouncer exporter reports no pool"
    assert api(nodes, "query?query=redis_up")["result"][0]["value"][1] == "1"


def test_the_rules_carry_the_plans_thresholds_and_reasons(nodes, plan):
    rules = [r for group in api(nodes, "rules")["groups"] for r in group["rules"]]
    by_name = {r["name"]: r for r in rules}
    assert len(by_name) >= 16
    assert all(r["annotations"]["reason"] for r in rules)
    planned = thresholds(plan.to_dict())
    def threshold(name: str) -> float:
        return float(by_name[name]["query"].rsplit(">", 1)[1])

    assert threshold("PostgresqlConnectionsNearMax") == planned.connections
    assert threshold("RedisMemoryNearMax") == planned.redis_memory_bytes


def test_only_the_monitoring_host_reaches_the_exporters(nodes):
    for host, port in sorted(EXPORTER_PORTS):
        assert tcp_connect(nodes[PROMETHEUS], host, port) == "connected", (host, port)
        assert tcp_connect(nodes["stacktune-outsider"], host, port) in (
            "timeout", "TimeoutError"), (host, port)


def test_the_exporters_logins_are_least_privilege(nodes):
    db, cache = nodes["stacktune-db"], nodes["stacktune-cache"]
    denied = db.run("PGPASSWORD=molecule-monitor-password psql -XAtq 'host=127.0.0.1 "
                    "user=stacktune_monitor dbname=app' -c 'SELECT count(*) FROM "
                    "django_migrations'")
    assert denied.rc != 0 and "permission denied" in denied.stderr, denied.stderr
    keys = cache.run("printf 'AUTH stacktune_monitor molecule-cache-monitor\\nGET x\\n"
                     "CONFIG GET maxmemory\\n' | redis-cli")
    assert keys.stdout.splitlines()[0] == "OK"
    assert keys.stdout.count("NOPERM") == 2, keys.stdout
    # Passwords in root-only files, in no process's argv.
    for node, path in ((db, "/etc/default/prometheus-postgres-exporter"),
                       (db, "/etc/stacktune/pgbouncer-exporter.env"),
                       (cache, "/etc/default/prometheus-redis-exporter")):
        assert node.file(path).mode == 0o600 and node.file(path).user == "root", path
    for node in (db, cache):
        argv = node.check_output("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert "molecule-" not in argv


def test_a_stopped_exporter_fires_target_down(nodes):
    app2 = nodes["stacktune-app2"]

    def firing() -> list[dict]:
        return [a for a in api(nodes, "alerts")["alerts"]
                if a["labels"]["alertname"] == "TargetDown" and a["state"] == "firing"
                and a["labels"]["instance"] == "stacktune-app2"]

    assert not firing()
    app2.check_output("systemctl stop prometheus-node-exporter")
    try:
        alerts = wait_for(firing, 40)
        assert [a["labels"]["job"] for a in alerts] == ["node"]
        assert "firewall" in alerts[0]["annotations"]["reason"]
    finally:
        app2.check_output("systemctl start prometheus-node-exporter")
    assert wait_for(lambda: targets(nodes)[("node", "stacktune-app2")] == "up")

"""The three-tier stack across hosts: the chain holds, requests cross it, outsiders are refused."""

from __future__ import annotations

from stacktune_testlib import http_get, inventory_vars, psql, recap_is_clean, run_playbook, show

from stacktune import pg_params
from stacktune.units import parse_redis_memory

# Run once, from the first app host; the other hosts come from the nodes fixture.
testinfra_hosts = ["ansible://stacktune-app1"]
HTTPS = {"X-Forwarded-Proto": "https"}


def bouncer(nodes, command: str) -> dict[str, str]:
    """PgBouncer's admin console on the db host: first two columns of each row."""
    out = nodes["stacktune-db"].check_output(
        "PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p 6432 -U stacktune_admin -d pgbouncer -c %s",
        inventory_vars()["pgbouncer_admin_password"], command)
    return {line.split("|")[0]: line.split("|")[1] for line in out.splitlines()}


def redis_admin(nodes, *args: str) -> str:
    command = "redis-cli --user stacktune_admin --pass %s --no-auth-warning"
    return nodes["stacktune-cache"].check_output(
        command + " %s" * len(args), inventory_vars()["redis_admin_password"], *args)


def test_a_request_crosses_the_tiers(nodes):
    before = int(bouncer(nodes, "SHOW STATS").get("app", "0"))
    status, body = http_get(nodes["stacktune-app1"], "http://127.0.0.1:8000/", HTTPS)
    assert status == 200
    assert "<html" in body.lower()
    assert int(bouncer(nodes, "SHOW STATS")["app"]) > before
    assert redis_admin(nodes, "EXISTS", "stacktune:1:popular-categories") == "1"


def test_both_app_hosts_serve(nodes):
    for name in ("stacktune-app1", "stacktune-app2"):
        status, body = http_get(nodes[name], "http://127.0.0.1:8000/api/articles/", HTTPS)
        assert status == 200, name
        assert '"title"' in body


def test_pgbouncer_covers_the_app_tier(nodes, plan):
    config = bouncer(nodes, "SHOW CONFIG")
    gunicorn = plan.services["gunicorn"]
    app_connections = int(gunicorn["workers"]) * int(gunicorn["threads"]) * 2
    assert plan.chain.app_clients == app_connections
    assert int(config["max_client_conn"]) == int(plan.services["pgbouncer"]["max_client_conn"])
    assert int(config["max_client_conn"]) >= app_connections
    assert config["default_pool_size"] == plan.services["pgbouncer"]["default_pool_size"]
    assert config["pool_mode"] == "transaction"


def test_postgresql_covers_the_pools(nodes, plan):
    db = nodes["stacktune-db"]
    max_connections = int(show(db, "max_connections"))
    reserved = int(show(db, "superuser_reserved_connections"))
    max_db = int(bouncer(nodes, "SHOW CONFIG")["max_db_connections"])
    assert max_connections == int(plan.services["postgresql"]["max_connections"])
    assert max_db + reserved <= max_connections


def test_each_host_runs_its_planned_budget(nodes, plan):
    db = nodes["stacktune-db"]
    version = plan.inputs.pg_version
    for name in ("shared_buffers", "work_mem", "effective_cache_size"):
        assert pg_params.value_in_base_units(name, show(db, name), version) == \
            pg_params.value_in_base_units(name, plan.services["postgresql"][name], version)
    maxmemory = redis_admin(nodes, "CONFIG", "GET", "maxmemory").split()[1]
    assert int(maxmemory) == parse_redis_memory(plan.services["redis"]["maxmemory"])
    for name in ("stacktune-app1", "stacktune-app2"):
        app = nodes[name]
        master = app.check_output("systemctl show -p MainPID --value stacktune-gunicorn")
        assert int(app.check_output("pgrep -c -P %s", master)) == int(
            plan.services["gunicorn"]["workers"])
    for name, host_plan in plan.hosts.items():
        assert host_plan.budget.total_bytes <= host_plan.budget.usable_bytes, name


def test_pgbouncer_refuses_a_host_outside_the_app_tier(nodes):
    outsider = nodes["stacktune-outsider"]
    attempt = outsider.run(
        "PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -XAtq -h stacktune-db -p 6432 -U app -d app "
        "-c 'SELECT 1'", inventory_vars()["postgresql_app_password"])
    assert attempt.rc != 0
    # Dropped by the firewall (timeout) or, without it, refused by auth_hba_file.
    assert any(word in attempt.stderr for word in ("timeout", "pg_hba", "rejected")), attempt.stderr


def test_redis_refuses_a_host_outside_the_app_tier(nodes):
    outsider = nodes["stacktune-outsider"]
    attempt = outsider.run(
        "timeout 5 redis-cli -h stacktune-cache --user app --pass %s --no-auth-warning PING",
        inventory_vars()["redis_app_password"])
    assert attempt.rc != 0 or "PONG" not in attempt.stdout


def test_the_app_role_cannot_reach_postgresql_directly_from_outside(nodes):
    outsider = nodes["stacktune-outsider"]
    attempt = outsider.run(
        "PGPASSWORD=%s PGCONNECT_TIMEOUT=5 psql -XAtq -h stacktune-db -p 5432 -U app -d app "
        "-c 'SELECT 1'", inventory_vars()["postgresql_app_password"])
    assert attempt.rc != 0
    assert psql(nodes["stacktune-db"], "SELECT 1") == "1"


def test_check_mode_on_the_converged_hosts_changes_nothing():
    result = run_playbook("--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap_is_clean(result.stdout), result.stdout[-2500:]

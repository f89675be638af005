"""The whole stack on one host, asserted through each service's own interface."""

from __future__ import annotations

import re

import pytest
from stacktune_testlib import (
    extra_vars,
    http_get,
    inventory_vars,
    psql,
    recap_is_clean,
    run_playbook,
    show,
)

from stacktune import pg_params
from stacktune.units import parse_redis_memory


def redis_cli(host, *args: str, user: str = "stacktune_admin", password: str | None = None):
    secret = password if password is not None else inventory_vars()["redis_admin_password"]
    auth = f"--user {user} --pass {secret} --no-auth-warning" if user else ""
    return host.run(f"redis-cli {auth} " + " ".join(args))


def pgbouncer_admin(host, command: str) -> list[list[str]]:
    password = inventory_vars()["pgbouncer_admin_password"]
    out = host.check_output(
        "PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p 6432 -U stacktune_admin -d pgbouncer -c %s",
        password, command)
    return [line.split("|") for line in out.splitlines()]


def get(host, path: str) -> tuple[int, str]:
    """A request as the TLS proxy in front of Gunicorn would send it."""
    return http_get(host, f"http://127.0.0.1:8000{path}", {"X-Forwarded-Proto": "https"})


def test_planned_budget_is_what_runs(host, plan):
    version = plan.inputs.pg_version
    for name in ("shared_buffers", "work_mem", "max_connections", "effective_cache_size"):
        planned = plan.services["postgresql"][name]
        assert pg_params.value_in_base_units(name, show(host, name), version) == \
            pg_params.value_in_base_units(name, planned, version), name
    maxmemory = redis_cli(host, "CONFIG GET maxmemory").stdout.split()[1]
    assert int(maxmemory) == parse_redis_memory(plan.services["redis"]["maxmemory"])
    budget = plan.hosts[host.backend.get_hostname()].budget
    assert budget.total_bytes <= 2 * 1024**3


def test_gunicorn_runs_the_planned_workers(host, plan):
    master = host.check_output("systemctl show -p MainPID --value stacktune-gunicorn")
    workers = host.check_output("pgrep -c -P %s", master)
    assert int(workers) == int(plan.services["gunicorn"]["workers"])


def test_a_request_goes_through_pgbouncer_and_writes_the_cache(host):
    before = {row[0]: int(row[2]) for row in pgbouncer_admin(host, "SHOW STATS")}
    status, body = get(host, "/")
    assert status == 200
    assert "<html" in body.lower()
    after = {row[0]: int(row[2]) for row in pgbouncer_admin(host, "SHOW STATS")}
    assert after["app"] > before.get("app", 0)        # total_xact_count of the app database
    pools = [row for row in pgbouncer_admin(host, "SHOW POOLS") if row[0] == "app"]
    assert pools and pools[0][1] == "app"
    assert redis_cli(host, "EXISTS", "stacktune:1:popular-categories").stdout.strip() == "1"


def test_detail_and_json_pages(host):
    status, body = get(host, "/api/articles/?page=2")
    assert status == 200
    assert '"title"' in body
    slug = re.search(r'"slug": ?"([^"]+)"', body).group(1)
    status, body = get(host, f"/articles/{slug}/")
    assert status == 200


def test_django_settings_are_the_planned_ones(host, plan):
    out = host.check_output(
        "cd /srv/app/src && runuser -u app -- /srv/app/venv/bin/python manage.py diffsettings")
    django = plan.services["django"]
    assert f"'CONN_MAX_AGE': {django['CONN_MAX_AGE']}" in out
    assert "'CONN_HEALTH_CHECKS': True" in out
    assert "'DISABLE_SERVER_SIDE_CURSORS': True" in out
    assert "'PORT': 6432" in out
    assert f"SESSION_ENGINE = '{django['SESSION_ENGINE']}'" in out


def test_settings_module_is_readable_by_the_app_user_only(host):
    module = host.file("/srv/app/src/demo_site/stacktune_settings.py")
    # Root's file, readable by the app's group: the app reads it but cannot rewrite it.
    assert (module.user, module.group, module.mode) == ("root", "app", 0o640)


def test_redis_refuses_the_default_user_and_the_app_outside_its_keys(host):
    anonymous = host.run("redis-cli PING")
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    app_password = inventory_vars()["redis_app_password"]
    outside = redis_cli(host, "SET", "elsewhere", "1", user="app", password=app_password)
    assert "NOPERM" in outside.stdout + outside.stderr
    flush = redis_cli(host, "FLUSHALL", user="app", password=app_password)
    assert "NOPERM" in flush.stdout + flush.stderr


def test_nothing_waits_for_a_restart(host):
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


@pytest.mark.parametrize("setting", ["max_requests"])
def test_gunicorn_config_change_reloads_gracefully(host, setting):
    master = host.check_output("systemctl show -p MainPID --value stacktune-gunicorn")
    # The app tier's playbook (plan play + app): the same roles as site.yml for this host.
    changed = run_playbook(*extra_vars(stacktune_overrides={"gunicorn": {setting: "500"}}),
                           playbook="playbooks/app.yml")
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "Reload Gunicorn" in changed.stdout
    assert host.check_output("systemctl show -p MainPID --value stacktune-gunicorn") == master
    assert f"{setting} = 500" in host.file("/etc/stacktune/gunicorn.conf.py").content_string
    restored = run_playbook(playbook="playbooks/app.yml")
    assert restored.returncode == 0, restored.stdout[-3000:]


def test_check_mode_on_the_converged_host_changes_nothing():
    result = run_playbook("--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap_is_clean(result.stdout), result.stdout[-2000:]

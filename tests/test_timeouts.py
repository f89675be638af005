"""The timeout chain and the app role's settings (section postgresql_app_role).

postgresql_app_role is a contract with the postgresql role, which applies it with
ALTER ROLE <app> SET: {setting: PostgreSQL time value as a string}, reasons under
postgresql_app_role.<name>, present whenever postgresql is placed.
"""

from __future__ import annotations

import json

import pytest

from stacktune.cli import main
from stacktune.model import Host, HostProfile, PlanError, StackInputs, Storage
from stacktune.plan import Plan, plan_stack
from stacktune.timeout_chain import (
    RESTART_PAUSE_MARGIN_SECONDS,
    check_restart_pause,
    command_seconds,
    held_seconds,
    restart_time_left,
)
from stacktune.units import GiB

ALL = ("postgresql", "pgbouncer", "redis", "gunicorn")
HOST = ["--memory", "4GiB", "--cpus", "2", "--storage", "ssd", "--host-name", "web1"]


def plan(services=ALL, overrides=None, pg_version: int = 15) -> Plan:
    profile = HostProfile(memory_bytes=4 * GiB, cpus=2, storage=Storage.SSD)
    return plan_stack(StackInputs(hosts=(Host("h", profile, frozenset(services)),),
                                  overrides=overrides or {}, pg_version=pg_version))


# --- The postgresql_app_role contract ---------------------------------------------------------


@pytest.mark.parametrize("services", [ALL, ("postgresql",), ("postgresql", "pgbouncer")])
def test_app_role_section_whenever_postgresql_is_placed(services):
    p = plan(services)
    role = p.services["postgresql_app_role"]
    assert role == {"statement_timeout": "15s", "lock_timeout": "5s",
                    "idle_in_transaction_session_timeout": "60s"}
    assert all(isinstance(v, str) for v in role.values())
    for name in role:
        assert p.reasons[f"postgresql_app_role.{name}"]
    view = p.host_view("h")
    assert view["postgresql_app_role"] == role
    assert all(f"postgresql_app_role.{name}" in view["reasons"] for name in role)
    assert p.to_dict()["postgresql_app_role"] == role


def test_no_app_role_section_without_postgresql():
    p = plan(("redis", "gunicorn"))
    assert "postgresql_app_role" not in p.services
    assert "postgresql_app_role" not in p.host_view("h")


def test_app_role_override_applies_with_its_reason():
    p = plan(overrides={"postgresql_app_role": {"statement_timeout": "12s"}})
    assert p.services["postgresql_app_role"]["statement_timeout"] == "12s"
    assert "15s" in p.reasons["postgresql_app_role.statement_timeout"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("statement_timeout", "15 parsecs", "postgresql_app_role.statement_timeout"),
    ("statement_timeout", "-5s", "postgresql_app_role.statement_timeout"),
    ("work_mem", "64MB", "unknown setting postgresql_app_role.work_mem"),
    ("transaction_timeout", "30s", "does not exist in PostgreSQL 15"),
])
def test_app_role_bad_overrides_name_the_setting(name, value, message):
    with pytest.raises(PlanError, match=message):
        plan(overrides={"postgresql_app_role": {name: value}})


def test_cli_json_and_table_print_the_app_role(capsys):
    assert main(["plan", *HOST, "--format", "json",
                 "--set", "postgresql_app_role.statement_timeout=12s"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["postgresql_app_role"]["statement_timeout"] == "12s"
    assert data["reasons"]["postgresql_app_role.lock_timeout"]
    assert main(["plan", *HOST]) == 0
    table = capsys.readouterr().out
    assert "[postgresql_app_role]" in table
    assert "statement_timeout" in table.split("[postgresql_app_role]")[1].split("[")[0]



# --- The timeout chain (issue 8, item 7) ------------------------------------------------------


def seconds(p: Plan, service: str, name: str) -> float:
    from stacktune.units import parse_pg_duration
    value = str(p.services[service][name])
    return parse_pg_duration(value, "ms" if service.startswith("postgresql") else "s")


def test_chain_is_shortest_at_the_database():
    p = plan()
    lock = seconds(p, "postgresql_app_role", "lock_timeout")
    statement = seconds(p, "postgresql_app_role", "statement_timeout")
    wait = seconds(p, "pgbouncer", "query_wait_timeout")
    timeout = seconds(p, "gunicorn", "timeout")
    graceful = seconds(p, "gunicorn", "graceful_timeout")
    assert lock < statement < timeout
    assert wait < timeout
    assert statement + wait < timeout          # a query that queued, then ran, still fits
    assert graceful >= statement + wait        # in-flight requests finish on a reload
    for name in ("query_wait_timeout", "server_login_retry", "server_connect_timeout",
                 "client_login_timeout"):
        assert p.reasons[f"pgbouncer.{name}"], name


def test_pgbouncer_retries_a_restarted_server_within_a_second():
    p = plan()
    assert p.services["pgbouncer"]["server_login_retry"] == "1"
    assert float(p.services["pgbouncer"]["server_connect_timeout"]) < seconds(
        p, "pgbouncer", "query_wait_timeout")


def test_client_login_time_is_bounded():
    p = plan()
    assert p.services["pgbouncer"]["client_login_timeout"] == "10"


@pytest.mark.parametrize(("overrides", "first", "second"), [
    ({"postgresql_app_role": {"statement_timeout": "40s"}},
     "postgresql_app_role.statement_timeout", "gunicorn.timeout"),
    ({"postgresql_app_role": {"statement_timeout": "0"}},
     "postgresql_app_role.statement_timeout", "gunicorn.timeout"),
    ({"postgresql_app_role": {"lock_timeout": "20s"}},
     "postgresql_app_role.lock_timeout", "postgresql_app_role.statement_timeout"),
    ({"pgbouncer": {"query_wait_timeout": "30"}},
     "pgbouncer.query_wait_timeout", "gunicorn.timeout"),
    ({"gunicorn": {"timeout": "20"}},
     "postgresql_app_role.statement_timeout", "gunicorn.timeout"),
    ({"gunicorn": {"graceful_timeout": "5"}},
     "gunicorn.graceful_timeout", "postgresql_app_role.statement_timeout"),
    ({"pgbouncer": {"server_login_retry": "15"}},
     "pgbouncer.server_login_retry", "pgbouncer.query_wait_timeout"),
])
def test_an_override_out_of_order_names_both_settings(overrides, first, second):
    with pytest.raises(PlanError) as error:
        plan(overrides=overrides)
    assert first in str(error.value) and second in str(error.value)


def test_overrides_that_keep_the_order_are_accepted():
    p = plan(overrides={"postgresql_app_role": {"statement_timeout": "25s"},
                        "pgbouncer": {"query_wait_timeout": "20"},
                        "gunicorn": {"timeout": "60", "graceful_timeout": "60"}})
    assert p.services["postgresql_app_role"]["statement_timeout"] == "25s"


def test_direct_path_counts_django_pool_wait():
    p = plan(("postgresql", "gunicorn"))
    statement = seconds(p, "postgresql_app_role", "statement_timeout")
    pool_wait = p.services["django"]["DATABASE_POOL"]["timeout"]
    assert statement + pool_wait < seconds(p, "gunicorn", "timeout")


# --- PgBouncer client slots (issue 8, item 4) -------------------------------------------------


def test_max_client_conn_has_headroom_for_reloads_consoles_and_slow_logins():
    p = plan(("postgresql", "pgbouncer", "gunicorn"))
    app = p.chain.app_clients                    # 5 workers x 2 threads
    limit = int(p.services["pgbouncer"]["max_client_conn"])
    assert limit >= 2 * app + 10
    assert limit >= 100                          # PgBouncer's own default, never fewer
    reason = p.reasons["pgbouncer.max_client_conn"]
    assert "reload" in reason and "client_login_timeout" in reason


# --- Redis caps (issue 8, item 9) -------------------------------------------------------------


def test_redis_caps_value_and_client_buffer_sizes_from_maxmemory():
    from stacktune.units import parse_redis_memory
    p = plan()
    r = p.services["redis"]
    maxmemory = parse_redis_memory(r["maxmemory"])
    bulk = parse_redis_memory(r["proto-max-bulk-len"])
    query = parse_redis_memory(r["client-query-buffer-limit"])
    kind, hard, soft, secs, *others = r["client-output-buffer-limit"].split()
    assert kind == "normal"
    # Redis's defaults for replicas and pub/sub, as CONFIG GET prints them (idempotent SET).
    assert others == ["slave", "268435456", "67108864", "60", "pubsub", "33554432", "8388608", "60"]
    assert 1024 * 1024 <= bulk <= maxmemory // 8
    assert bulk <= query <= maxmemory // 4
    assert bulk <= parse_redis_memory(soft) <= parse_redis_memory(hard) <= maxmemory // 4
    assert int(secs) > 0
    for name in ("proto-max-bulk-len", "client-query-buffer-limit",
                 "client-output-buffer-limit"):
        assert p.reasons[f"redis.{name}"]


# --- A PostgreSQL restart behind PgBouncer's PAUSE ---------------------------------------------


def test_the_planned_restart_pause_fits_inside_query_wait_timeout():
    bouncer = plan().services["pgbouncer"]
    assert check_restart_pause(8, bouncer) == 8
    # The pause plus the margin for the first server login after RESUME.
    wait = float(bouncer["query_wait_timeout"])
    assert check_restart_pause(wait - RESTART_PAUSE_MARGIN_SECONDS, bouncer) == \
        wait - RESTART_PAUSE_MARGIN_SECONDS


@pytest.mark.parametrize(("pause", "message"), [
    (10, r"postgresql_restart_pause_timeout \(10 s\) \+ 1 s must be at most "
         r"pgbouncer.query_wait_timeout \(10 s\)"),
    (9.5, r"lower postgresql_restart_pause_timeout or raise pgbouncer.query_wait_timeout"),
    (0, r"postgresql_restart_pause_timeout = 0: give at least 1 second"),
    (-3, r"give at least 1 second"),
    ("soon", r"postgresql_restart_pause_timeout = 'soon': give a number of seconds"),
    ("nan", r"give at least 1 second"),
])
def test_a_restart_pause_longer_than_the_queue_wait_is_refused(pause, message):
    with pytest.raises(PlanError, match=message):
        check_restart_pause(pause, plan().services["pgbouncer"])


def test_an_overridden_query_wait_timeout_moves_the_bound():
    bouncer = plan(overrides={"pgbouncer": {"query_wait_timeout": "14"}}).services["pgbouncer"]
    assert check_restart_pause(13, bouncer) == 13
    with pytest.raises(PlanError, match=r"\(14 s\)"):
        check_restart_pause(13.5, bouncer)


# --- The PostgreSQL restart behind PAUSE: its timeout and the time held ---------------------------

@pytest.mark.parametrize(("deltas", "left"), [
    (["0:00:00.250000"], 8),
    (["0:00:02.900000", "0:00:00.100000"], 6),
    # Past a minute the minutes count (a regex keeping the seconds field said 9 - 2 = 7).
    (["0:01:02.000000"], 1),
    (["1:00:00.000000"], 1),
    ([], 9),
])
def test_the_restart_gets_what_the_slowest_pause_left(deltas, left):
    assert restart_time_left(9, deltas) == left


def test_a_command_duration_counts_hours_minutes_and_seconds():
    assert command_seconds("1:02:03.500000") == 3723.5
    with pytest.raises(PlanError, match="command duration 'soon'"):
        command_seconds("soon")


def test_held_time_is_resume_start_minus_pause_start_per_bouncer():
    pauses = ["2026-11-22 10:00:00.000000", "2026-11-22 10:00:59.500000"]
    resumes = ["2026-11-22 10:00:03.250000", "2026-11-22 10:01:01.000000"]
    assert held_seconds(pauses, resumes) == [3.25, 1.5]
    with pytest.raises(PlanError, match="1 PAUSE and 2 RESUME times"):
        held_seconds(pauses[:1], resumes)
    with pytest.raises(PlanError, match="command start 'x'"):
        held_seconds(["x"], resumes[:1])

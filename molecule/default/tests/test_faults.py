"""Faults against the running stack: crashes, a cache outage, a database restart, runaway queries.

Every service the kit deploys must come back by itself after ``kill -9``, a
Redis outage must only slow pages down, and the database's limits must end
runaway statements. Load comes from a bounded loop of requests run inside the
container against Gunicorn on loopback. Each test leaves the stack healthy
(the last step of each waits for it), so the tests after this file and the
scenario's check phase run on a converged, working stack.
"""

from __future__ import annotations

import json
import time

import pytest
from stacktune_testlib import LOAD_TIMED_GET, http_get, inventory_vars, psql

from stacktune import pg_params

RECOVERY_SECONDS = 10
APP_URL = "http://127.0.0.1:8000"
# Pages whose rendering reads and writes the cache: the list (popular categories)
# and the JSON endpoint (a whole-response cache_page).
CACHED_PATHS = ["/", "/api/articles/?page=1", "/api/articles/?page=2"]
# Pages that query the database on every request.
DATABASE_PATHS = ["/?page=2", "/?page=3"]

# Runs inside the container: THREADS loops of GET requests for SECONDS, optionally
# running ACTION (a shell command) at ACTION_AT seconds and BACKGROUND commands from
# the start. Prints one JSON object: every request as [start, end, status] (status an
# HTTP code or an exception's name), the action's and each background command's outcome.
LOAD_SCRIPT = r"""
import json, subprocess, sys, threading, time, urllib.error, urllib.request
""" + LOAD_TIMED_GET + r"""
cfg = json.loads(sys.argv[1])
results, lock = [], threading.Lock()
start = time.monotonic()
stop = start + cfg["seconds"]
def worker(index):
    n = index
    while time.monotonic() < stop:
        path = cfg["paths"][n % len(cfg["paths"])]
        n += 1
        t0, t1, status = timed_get(cfg["base"] + path, cfg["timeout"],
                                   {"X-Forwarded-Proto": "https"})
        with lock:
            results.append([round(t0 - start, 3), round(t1 - start, 3), status])
        time.sleep(cfg["pause"])
finished = [None] * len(cfg["background"])
def run_background(index, command):
    began = time.monotonic()
    done = subprocess.run(command, shell=True, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    finished[index] = {"rc": done.returncode, "output": done.stdout[-500:],
                       "took": round(time.monotonic() - began, 1)}
background = [threading.Thread(target=run_background, args=(i, command))
              for i, command in enumerate(cfg["background"])]
for thread in background:
    thread.start()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(cfg["threads"])]
for thread in threads:
    thread.start()
action = None
if cfg["action"]:
    time.sleep(cfg["action_at"])
    a0 = time.monotonic()
    done = subprocess.run(cfg["action"], shell=True, capture_output=True, text=True)
    action = {"at": round(a0 - start, 3), "took": round(time.monotonic() - a0, 3),
              "rc": done.returncode, "stderr": done.stderr[-500:]}
for thread in threads + background:
    thread.join()
print(json.dumps({"results": results, "action": action, "background": finished}))
"""


def load(host, *, seconds: float, paths: list[str], threads: int = 4, action: str = "",
         action_at: float = 0.0, timeout: float = 30.0, pause: float = 0.05,
         background: list[str] | None = None) -> dict:
    cfg = {"base": APP_URL, "seconds": seconds, "paths": paths, "threads": threads,
           "action": action, "action_at": action_at, "timeout": timeout, "pause": pause,
           "background": background or []}
    out = host.check_output("python3 -c %s %s", LOAD_SCRIPT, json.dumps(cfg))
    return json.loads(out)


def summary(run: dict) -> dict:
    """Counts by outcome, and the window in which requests failed (seconds from the start)."""
    results = run["results"]
    failed = [r for r in results if not (isinstance(r[2], int) and r[2] < 500)]
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r[2])] = counts.get(str(r[2]), 0) + 1
    return {
        "requests": len(results),
        "failed": len(failed),
        "by_status": counts,
        "first_failure": min((r[0] for r in failed), default=None),
        "last_failure": max((r[1] for r in failed), default=None),
        "slowest": max((r[1] - r[0] for r in results), default=0.0),
    }


def get(host, path: str) -> tuple[int, str]:
    return http_get(host, APP_URL + path, {"X-Forwarded-Proto": "https"})


def app_status(host, path: str = "/") -> int | str:
    try:
        return get(host, path)[0]
    except AssertionError as error:  # no answer at all (connection refused)
        return type(error).__name__


def wait_for(predicate, seconds: float, step: float = 0.5):
    """Poll until predicate() is truthy; return (value, elapsed) or (last value, None)."""
    start = time.monotonic()
    value = predicate()
    while not value:
        if time.monotonic() - start > seconds:
            return value, None
        time.sleep(step)
        value = predicate()
    return value, round(time.monotonic() - start, 2)


def wait_until_app_answers(host, seconds: float = 30.0) -> float:
    _, elapsed = wait_for(lambda: app_status(host) == 200, seconds)
    assert elapsed is not None, f"the app did not answer 200 within {seconds} s"
    return elapsed


def main_pid(host, unit: str) -> int:
    return int(host.check_output("systemctl show -p MainPID --value %s", unit))


def pg_unit(host) -> str:
    version = int(psql(host, "SHOW server_version_num")) // 10000
    return f"postgresql@{version}-main"


def answers(host, unit: str) -> bool:
    """The service itself answers on its own interface."""
    secrets = inventory_vars()
    if unit.startswith("postgresql@"):
        probe = "runuser -u postgres -- psql -XAtqc 'SELECT 1'"
    elif unit == "pgbouncer":
        probe = (f"PGPASSWORD={secrets['pgbouncer_admin_password']} psql -XAtq -h 127.0.0.1 "
                 "-p 6432 -U stacktune_admin -d pgbouncer -c 'SHOW VERSION'")
    elif unit == "redis-server":
        probe = (f"REDISCLI_AUTH={secrets['redis_admin_password']} redis-cli --user "
                 "stacktune_admin PING | grep -qx PONG")
    else:
        # Gunicorn's master is ready (Type=notify) once it listens; workers boot after.
        probe = ("python3 -c 'import socket; "
                 "socket.create_connection((\"127.0.0.1\", 8000), timeout=2).close()'")
    return host.run(probe).rc == 0


# --- Runaway statements: the app role's statement_timeout ends them ------------------------------

def test_the_app_role_carries_the_planned_limits(host, plan):
    planned = plan.services["postgresql_app_role"]
    stored = psql(host, "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s "
                        "JOIN pg_roles r ON r.oid = s.setrole "
                        "WHERE r.rolname = 'app' AND s.setdatabase = 0")
    assert sorted(stored.split(",")) == sorted(f"{k}={v}" for k, v in planned.items())
    # What a session of the app sees through PgBouncer.
    password = inventory_vars()["postgresql_app_password"]
    seen = host.check_output(
        f"PGPASSWORD={password} psql -XAtq -h 127.0.0.1 -p 6432 -U app -d app "
        "-c 'SHOW statement_timeout' -c 'SHOW lock_timeout'").split()
    version = plan.inputs.pg_version
    assert [pg_params.value_in_base_units(name, value, version)
            for name, value in zip(("statement_timeout", "lock_timeout"), seen, strict=True)] == \
        [pg_params.value_in_base_units(name, planned[name], version)
         for name in ("statement_timeout", "lock_timeout")]


def test_long_statements_are_cancelled_and_the_app_keeps_answering(host, plan):
    """Five pg_sleep(40) through PgBouncer with the app's credentials: cancelled at the
    planned statement_timeout, and the app answers again long before 40 s."""
    wait_until_app_answers(host)
    timeout = pg_params.value_in_base_units(
        "statement_timeout", plan.services["postgresql_app_role"]["statement_timeout"],
        plan.inputs.pg_version) / 1000
    password = inventory_vars()["postgresql_app_password"]
    sleeper = (f"PGPASSWORD={password} psql -XAtq -h 127.0.0.1 -p 6432 -U app -d app "
               "-c 'SELECT pg_sleep(40)'")
    # Five sleepers started with the load; the load lasts past the statement_timeout.
    run = load(host, seconds=timeout + 8, paths=DATABASE_PATHS, threads=2, timeout=45,
               background=[sleeper] * 5)
    stats = summary(run)
    outcomes = [(b["rc"], b["took"], b["output"].strip()) for b in run["background"]]
    print(f"statement_timeout {timeout} s; sleepers (rc, seconds, output): {outcomes}")
    print(f"app under the sleepers: {stats}")
    for rc, seconds, output in outcomes:
        assert rc != 0 and "statement timeout" in output, outcomes
        # PostgreSQL's own message says which limit ended it; the margin covers psql's start
        # and the SCRAM login on a loaded machine, far below the 40 s the statement asked for.
        assert seconds < timeout + 8, outcomes
    # Requests that started after the sleepers were cancelled went through.
    late = [r for r in run["results"] if r[0] > timeout + 2]
    assert late and all(r[2] == 200 for r in late), stats
    assert stats["slowest"] < timeout + 5, stats


# --- A cache outage slows pages down, it does not break them -------------------------------------

def test_healthz_reports_each_dependency(host):
    status, body = get(host, "/healthz")
    assert status == 200, body
    report = json.loads(body)
    assert report["database"] == "ok" and report["cache"] == "ok", report


def test_redis_stopped_for_15_seconds_gives_no_errors_on_cached_pages(host):
    wait_until_app_answers(host)
    host.check_output("systemctl stop redis-server")
    try:
        status, body = get(host, "/healthz")
        run = load(host, seconds=15, paths=CACHED_PATHS, threads=4, timeout=30)
    finally:
        host.check_output("systemctl start redis-server")
    stats = summary(run)
    print(f"Redis stopped for 15 s: {stats}; /healthz said {status} {body!r}")
    assert stats["requests"] > 0
    assert stats["failed"] == 0, stats
    assert status == 200, body
    assert json.loads(body)["cache"] == "degraded", body
    assert json.loads(get(host, "/healthz")[1])["cache"] == "ok"


def test_healthz_is_503_when_the_database_is_unreachable(host):
    wait_until_app_answers(host)
    host.check_output("systemctl stop pgbouncer")
    try:
        status, body = get(host, "/healthz")
    finally:
        host.check_output("systemctl start pgbouncer")
    print(f"PgBouncer stopped: /healthz said {status} {body!r}")
    assert status == 503, body
    assert json.loads(body)["database"] != "ok", body
    wait_until_app_answers(host)


# --- Crashes: every service comes back by itself ----------------------------------------------

@pytest.mark.parametrize("unit", ["postgresql", "pgbouncer", "redis-server", "stacktune-gunicorn"])
def test_a_killed_service_comes_back_by_itself(host, unit):
    unit = pg_unit(host) if unit == "postgresql" else unit
    wait_until_app_answers(host)
    # PostgreSQL's unit tracks the postmaster (its PID file); the others their main process.
    pid = main_pid(host, unit)
    assert pid > 0, unit
    host.check_output("kill -9 %s", str(pid))
    back, elapsed = wait_for(
        lambda: main_pid(host, unit) not in (0, pid) and answers(host, unit), RECOVERY_SECONDS)
    state = host.run("systemctl show -p ActiveState,SubState,NRestarts %s", unit).stdout.split()
    print(f"{unit}: kill -9 {pid}; back after {elapsed} s; {state}")
    if not back:
        host.run("systemctl start %s", unit)     # leave the stack running for the next tests
    assert back, f"{unit} still down {RECOVERY_SECONDS} s after kill -9: {state}"
    assert elapsed <= RECOVERY_SECONDS, f"{unit} took {elapsed} s to come back"
    after = wait_until_app_answers(host, RECOVERY_SECONDS)
    print(f"{unit}: the app answered 200 {after} s later")


def test_restarts_are_bounded_by_a_start_limit(host):
    """systemd stops restarting after a burst, so a broken config does not loop forever."""
    for unit in (pg_unit(host), "pgbouncer", "redis-server", "stacktune-gunicorn"):
        props = dict(line.split("=", 1) for line in host.check_output(
            "systemctl show -p Restart,RestartUSec,StartLimitBurst,StartLimitIntervalUSec %s",
            unit).splitlines())
        print(unit, props)
        assert props["Restart"] in ("on-failure", "always"), (unit, props)
        assert props["RestartUSec"] not in ("0", "100ms"), (unit, props)
        assert 1 < int(props["StartLimitBurst"]) <= 10, (unit, props)
        assert props["StartLimitIntervalUSec"] not in ("0", "infinity"), (unit, props)


# --- A database restart under load ----------------------------------------------------------------

def test_postgresql_restart_under_load_fails_few_requests(host, plan):
    """Failed requests are counted; they stop within the planned retry bound,
    not PgBouncer's default 15 s."""
    wait_until_app_answers(host)
    retry = int(plan.services["pgbouncer"].get("server_login_retry", 15))
    run = load(host, seconds=20, paths=CACHED_PATHS + DATABASE_PATHS, threads=4,
               action=f"systemctl restart {pg_unit(host)}", action_at=3, timeout=30)
    stats = summary(run)
    action = run["action"]
    print(f"PostgreSQL restart took {action['took']} s at {action['at']} s; "
          f"pgbouncer server_login_retry {retry}; requests {stats}")
    assert action["rc"] == 0, action
    assert stats["requests"] > 0
    if stats["failed"]:
        window = stats["last_failure"] - action["at"]
        assert window <= action["took"] + retry + 2, stats
    assert "server_login_retry" in plan.services["pgbouncer"], "the plan bounds the retry"
    assert retry < 15, f"server_login_retry {retry}: PgBouncer's default would apply"
    wait_until_app_answers(host)

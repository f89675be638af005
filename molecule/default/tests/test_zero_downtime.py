"""Restarts under load: a converge that needs one must not fail a request or lose a row.

A load generator runs inside the container for the whole converge (started as a
transient systemd unit, stopped by a file): HTTP requests against the app, rows
inserted through PgBouncer with the app's credentials (each insert it saw committed is
recorded), and the postmaster's start time sampled through PgBouncer. The converge
changes a setting that only a restart applies, with restarts allowed; then every
request must have succeeded, every committed row must be in the table, the new value
must be live and the server must have restarted exactly once. The same converge
changes a PgBouncer setting read only at start (pkt_buf), which must go live by an
online restart (pgbouncer -R, two hand-overs: to a transient unit and back) that
closes no client connection. The module ends by converging the planned values again
(both restarts again, under load, the same checks), so the tests after it see the
normal plan.
"""

from __future__ import annotations

import time

import pytest
from stacktune_testlib import (
    LOAD_TIMED_GET,
    extra_vars,
    inventory_vars,
    psql,
    run_playbook,
    show,
    start_load_unit,
    stop_load_unit,
)

from stacktune.units import MiB, parse_redis_memory

# The address the load goes to: nginx in front of Gunicorn, as the site's clients see it
# (the scenario's certificate is the self-signed one, so the load does not verify it).
LOAD_URL = "https://localhost"
# Pages that query the database on every request, and the health check (database and cache).
LOAD_PATHS = ["/?page=2", "/?page=3", "/healthz"]
PROBE_TABLE = "stacktune_zerodt_probe"
LOAD_UNIT = "stacktune-zerodt-load"
LOAD_STOP = "/run/stacktune-zerodt-load.stop"
LOAD_RESULT = "/run/stacktune-zerodt-load.json"
# The restarted server's log says this once per start.
READY_LINE = "database system is ready to accept connections"
# The longest hold the planned chain allows (query_wait_timeout 10 s - 1 s): the role's
# default is 8 s, and the scenario often runs on a machine shared with other work.
RESTART = {"postgresql_allow_restart": True, "postgresql_restart_pause_timeout": 9,
           "pgbouncer_allow_restart": True}
# Both tiers in one run: PostgreSQL's restart first, then PgBouncer's.
PLAYBOOKS = ("playbooks/postgresql.yml", "playbooks/pgbouncer.yml")
# A PgBouncer setting read only at start (not in the plan, so PgBouncer's default otherwise).
PKT_BUF_DEFAULT, PKT_BUF_OTHER = "4096", "8192"
PGBOUNCER_LOG = "/var/log/postgresql/pgbouncer.log"
# The new process logs this once per hand-over, when the old one has exited.
TAKEOVER_LINE = "old process killed, resuming work"

# Runs inside the container until LOAD_STOP exists: HTTP workers, one writer (an insert
# every few ms, autocommit, through PgBouncer; it reconnects after an error) and one
# sampler of pg_postmaster_start_time(). Writes one JSON object to LOAD_RESULT.
LOAD_SCRIPT = r"""
import json, os, ssl, sys, threading, time, urllib.error, urllib.request
import psycopg2
""" + LOAD_TIMED_GET + r"""
cfg = json.loads(sys.argv[1])
tls = ssl._create_unverified_context()
lock = threading.Lock()
requests, errors, committed, starts = [], [], [], []
begin = time.monotonic()
def running():
    return not os.path.exists(cfg["stop"])
def http_worker(index):
    n = index
    while running():
        path = cfg["paths"][n % len(cfg["paths"])]
        n += 1
        t0, t1, status = timed_get(cfg["url"] + path, 60, context=tls)
        with lock:
            requests.append([round(t0 - begin, 2), round(t1 - t0, 3), path, status])
        time.sleep(0.02)
def connect():
    connection = psycopg2.connect(cfg["dsn"])
    connection.autocommit = True
    return connection
def writer():
    n, connection = 0, None
    while running():
        n += 1
        try:
            if connection is None:
                connection = connect()
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO %s (n) VALUES (%%s)" % cfg["table"], (n,))
            with lock:
                committed.append(n)
        except Exception as error:
            with lock:
                errors.append([round(time.monotonic() - begin, 2), "insert", str(error)[:200]])
            connection = None
        time.sleep(0.01)
def sampler():
    connection = None
    while running():
        try:
            if connection is None:
                connection = connect()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_postmaster_start_time()::text")
                value = cursor.fetchone()[0]
            if not starts or starts[-1] != value:
                starts.append(value)
        except Exception as error:
            with lock:
                errors.append([round(time.monotonic() - begin, 2), "sample", str(error)[:200]])
            connection = None
        time.sleep(0.2)
threads = [threading.Thread(target=http_worker, args=(i,)) for i in range(cfg["threads"])]
threads += [threading.Thread(target=writer), threading.Thread(target=sampler)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with open(cfg["result"], "w") as out:
    json.dump({"requests": requests, "errors": errors, "committed": committed,
               "starts": starts, "seconds": round(time.monotonic() - begin, 1)}, out)
"""


def _load_cfg() -> dict:
    password = inventory_vars()["postgresql_app_password"]
    return {"url": LOAD_URL, "paths": LOAD_PATHS, "threads": 4, "table": PROBE_TABLE,
            "stop": LOAD_STOP, "result": LOAD_RESULT,
            "dsn": f"host=127.0.0.1 port=6432 dbname=app user=app password={password} "
                   "connect_timeout=5"}


def _summary(run: dict) -> dict:
    failed = [r for r in run["requests"] if r[3] != 200]
    by_status: dict[str, int] = {}
    for r in run["requests"]:
        by_status[str(r[3])] = by_status.get(str(r[3]), 0) + 1
    return {"seconds": run["seconds"], "requests": len(run["requests"]), "by_status": by_status,
            "failed": failed[:10], "slowest": max((r[1] for r in run["requests"]), default=0),
            "rows_committed": len(run["committed"]), "errors": run["errors"][:10],
            "postmaster_starts_seen": run["starts"]}


def _ready_lines(host) -> int:
    log = f"/var/log/postgresql/postgresql-{_version(host)}-main.log"
    return int(host.check_output("grep -c %s %s || true", READY_LINE, log) or 0)


def _version(host) -> int:
    return int(psql(host, "SHOW server_version_num")) // 10000


def _converge_under_load(host, playbook: str | tuple[str, ...], **variables: object
                         ) -> tuple[dict, str]:
    """Run the playbook(s) while the load runs; the load's record and the play's output."""
    first, *more = (playbook,) if isinstance(playbook, str) else playbook
    start_load_unit(host, LOAD_UNIT, LOAD_SCRIPT, _load_cfg())
    try:
        time.sleep(3)
        result = run_playbook(*more, *extra_vars(**variables), playbook=first)
        time.sleep(3)
    finally:
        run = stop_load_unit(host, LOAD_UNIT, {"stop": LOAD_STOP, "result": LOAD_RESULT})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return run, result.stdout


def _rows_missing(host, run: dict) -> list[int]:
    """Rows the writer saw committed that the table does not hold."""
    stored = {int(n) for n in psql(host, f"SELECT n FROM {PROBE_TABLE}", db="app").split()}
    return sorted(set(run["committed"]) - stored)


@pytest.fixture(scope="module")
def probe_table(host):
    psql(host, f"DROP TABLE IF EXISTS {PROBE_TABLE}", db="app")
    psql(host, f"CREATE TABLE {PROBE_TABLE} (n integer NOT NULL, at timestamptz DEFAULT now())",
         db="app")
    psql(host, f"GRANT SELECT, INSERT ON {PROBE_TABLE} TO app", db="app")
    yield
    psql(host, f"DROP TABLE IF EXISTS {PROBE_TABLE}", db="app")


def _pgbouncer_config(host, name: str) -> str:
    password = inventory_vars()["pgbouncer_admin_password"]
    rows = host.check_output(
        "PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -p 6432 -U stacktune_admin -d pgbouncer "
        "-c 'SHOW CONFIG'", password).splitlines()
    return next(row.split("|")[1] for row in rows if row.split("|")[0] == name)


def _pgbouncer_state(host) -> tuple[str, int]:
    """The unit's PgBouncer process and how many hand-overs its log has recorded."""
    pid = host.check_output("systemctl show -p MainPID --value pgbouncer")
    return pid, int(host.check_output("grep -c %s %s || true", TAKEOVER_LINE, PGBOUNCER_LOG)
                    or 0)


@pytest.fixture(scope="module")
def restart_changes(host, plan, probe_table):
    """The planned shared_buffers and a smaller one; the planned values come back at the end."""
    planned = plan.services["postgresql"]["shared_buffers"]
    other = "96MB" if planned != "96MB" else "64MB"
    yield planned, other
    if show(host, "shared_buffers") != planned or _pgbouncer_config(host, "pkt_buf") != \
            PKT_BUF_DEFAULT:
        run_playbook(PLAYBOOKS[1], *extra_vars(**RESTART), playbook=PLAYBOOKS[0])


def _assert_one_restart_without_failures(host, run: dict, start_before: str,
                                         ready_before: int) -> None:
    stats = _summary(run)
    print(f"load during the converge: {stats}")
    assert stats["requests"] > 50 and stats["rows_committed"] > 100, stats
    assert stats["failed"] == [] and stats["errors"] == [], stats
    assert _rows_missing(host, run) == [], stats
    start_after = psql(host, "SELECT pg_postmaster_start_time()::text")
    assert start_after != start_before, "the postmaster did not restart"
    # Exactly once: one new start in the server's log and in what the sampler saw.
    assert _ready_lines(host) - ready_before == 1, stats
    assert run["starts"] == [start_before, start_after], stats


def _assert_pgbouncer_restarted_online(host, before: tuple[str, int], output: str) -> None:
    pid, handovers = _pgbouncer_state(host)
    # A new process under the unit, after exactly two hand-overs (to the transient unit
    # and back), and no other PgBouncer left running.
    assert pid not in ("0", before[0]), (before, pid)
    assert handovers - before[1] == 2, (before, handovers)
    assert host.check_output("pgrep -c -x pgbouncer") == "1"
    assert "TASK [stacktune.stacktune.pgbouncer : Hand PgBouncer's sockets to a transient unit" \
        in output


def test_shared_buffers_and_pkt_buf_changes_restart_each_once_without_a_failed_request(
        host, restart_changes):
    planned, other = restart_changes
    assert show(host, "shared_buffers") == planned
    assert _pgbouncer_config(host, "pkt_buf") == PKT_BUF_DEFAULT
    start_before, ready_before = (psql(host, "SELECT pg_postmaster_start_time()::text"),
                                  _ready_lines(host))
    bouncer_before = _pgbouncer_state(host)
    run, output = _converge_under_load(
        host, PLAYBOOKS, **RESTART,
        stacktune_overrides={"postgresql": {"shared_buffers": other},
                             "pgbouncer": {"pkt_buf": PKT_BUF_OTHER}})
    assert show(host, "shared_buffers") == other
    assert _pgbouncer_config(host, "pkt_buf") == PKT_BUF_OTHER
    _assert_one_restart_without_failures(host, run, start_before, ready_before)
    _assert_pgbouncer_restarted_online(host, bouncer_before, output)
    # The restart went through the pause: each PgBouncer was paused, then resumed.
    assert "TASK [stacktune.stacktune.postgresql : PAUSE each PgBouncer" in output
    assert "TASK [stacktune.stacktune.postgresql : RESUME each PgBouncer" in output


def test_the_planned_values_come_back_the_same_way(host, restart_changes):
    planned, other = restart_changes
    assert show(host, "shared_buffers") == other
    start_before, ready_before = (psql(host, "SELECT pg_postmaster_start_time()::text"),
                                  _ready_lines(host))
    bouncer_before = _pgbouncer_state(host)
    run, output = _converge_under_load(host, PLAYBOOKS, **RESTART)
    assert show(host, "shared_buffers") == planned
    # The line left the file: PgBouncer is back on its default.
    assert _pgbouncer_config(host, "pkt_buf") == PKT_BUF_DEFAULT
    _assert_one_restart_without_failures(host, run, start_before, ready_before)
    _assert_pgbouncer_restarted_online(host, bouncer_before, output)
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


# --- Redis takes its settings live (CONFIG SET): no restart at all -------------------------------

def _redis_maxmemory(host) -> int:
    secret = inventory_vars()["redis_admin_password"]
    out = host.check_output(f"REDISCLI_AUTH={secret} redis-cli --user stacktune_admin "
                            "CONFIG GET maxmemory")
    return int(out.split()[1])


def test_a_redis_maxmemory_change_is_applied_live_without_a_restart(host, plan, probe_table):
    planned = parse_redis_memory(plan.services["redis"]["maxmemory"])
    other = planned // 2 // MiB * MiB
    pid = host.check_output("systemctl show -p MainPID --value redis-server")
    start_before = psql(host, "SELECT pg_postmaster_start_time()::text")
    try:
        run, output = _converge_under_load(
            host, "playbooks/redis.yml",
            stacktune_overrides={"redis": {"maxmemory": f"{other // MiB}mb"}})
        changed_to = _redis_maxmemory(host)
        conf_after_change = host.file("/etc/redis/redis.conf").content_string
    finally:
        restore = run_playbook(playbook="playbooks/redis.yml")
    stats = _summary(run)
    print(f"load during the Redis converge: {stats}")
    assert changed_to == other
    # The file says the same, so a later restart keeps the new value.
    assert f"maxmemory {other // MiB}mb" in conf_after_change.splitlines()
    assert "Apply the plan's settings live (one CONFIG SET)" in output
    assert host.check_output("systemctl show -p MainPID --value redis-server") == pid
    assert stats["requests"] > 50 and stats["failed"] == [] and stats["errors"] == [], stats
    assert _rows_missing(host, run) == [] and run["starts"] == [start_before], stats
    assert restore.returncode == 0, restore.stdout[-3000:]
    assert _redis_maxmemory(host) == planned
    assert host.check_output("systemctl show -p MainPID --value redis-server") == pid

"""The streaming replica: built from the primary once, streaming through its slot, tuned for
its own 1g with the settings a hot standby must take from the primary, and rebuilt only
when asked. The rebuild test leaves both hosts converged and streaming."""

from __future__ import annotations

import time
import uuid

import pytest
import testinfra
from conftest import (
    PRIMARY,
    REPLICA_HOST,
    REPLICA_NAME,
    REPLICATION_PASSWORD,
    plan_for,
)
from stacktune_testlib import extra_vars, psql, run_playbook, show

from stacktune import pg_params
from stacktune.replicas import REQUIRED_AT_LEAST_PRIMARY, replication_slot_name
from stacktune.units import parse_pg_duration

testinfra_hosts = [REPLICA_HOST]
LIMITED = ("--limit", REPLICA_NAME, "--tags", "postgresql")
SLOT = replication_slot_name(REPLICA_NAME)
MEMORY_SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
                   "autovacuum_work_mem", "wal_buffers")
STANDBY_SETTINGS = ("hot_standby", "hot_standby_feedback", "max_standby_streaming_delay",
                    "wal_receiver_status_interval")


@pytest.fixture(scope="module")
def primary():
    import os

    return testinfra.get_host(PRIMARY, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="module")
def plan(primary):
    from stacktune_testlib import container_profile

    return plan_for(primary, container_profile(primary))


def _address(host) -> str:
    return host.check_output("hostname -I").split()[0]


def _wait_streaming(host, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if psql(host, "SELECT status FROM pg_stat_wal_receiver") == "streaming":
            return
        time.sleep(0.5)
    raise AssertionError(f"not streaming after {seconds}s")


def _base(name: str, value: str, version: int) -> float:
    return pg_params.value_in_base_units(name, value, version)


def test_replica_streams_from_the_primary_through_its_slot(host, primary):
    assert psql(host, "SELECT pg_is_in_recovery()") == "t"
    assert host.file(f"{show(host, 'data_directory')}/standby.signal").exists
    receiver = psql(host, "SELECT status, slot_name, sender_host FROM pg_stat_wal_receiver")
    assert receiver == f"streaming|{SLOT}|{_address(primary)}"
    senders = psql(primary, "SELECT application_name, state, client_addr FROM pg_stat_replication")
    assert senders == f"{SLOT}|streaming|{_address(host)}"
    slot = psql(primary, "SELECT slot_type, active FROM pg_replication_slots "
                         f"WHERE slot_name = '{SLOT}'")
    assert slot == "physical|t"
    same = "SELECT system_identifier FROM pg_control_system()"
    assert psql(host, same) == psql(primary, same)


def test_a_row_written_on_the_primary_is_read_on_the_replica_within_the_planned_lag(
        host, primary, plan):
    bound = parse_pg_duration(plan.host_view(REPLICA_NAME)["postgresql"][
        "max_standby_streaming_delay"])
    psql(primary, "CREATE TABLE IF NOT EXISTS replica_probe (note text)", db="app")
    note = uuid.uuid4().hex
    psql(primary, f"INSERT INTO replica_probe VALUES ('{note}')", db="app")
    written = time.monotonic()
    while psql(host, f"SELECT count(*) FROM replica_probe WHERE note = '{note}'", db="app") != "1":
        assert time.monotonic() - written < bound, f"not on the replica after {bound}s"
        time.sleep(0.05)
    lag = time.monotonic() - written
    print(f"row visible on the replica {lag:.3f}s after its commit (planned bound {bound:g}s)")
    assert lag < bound
    # The standby refuses writes: it is read-only.
    refused = host.run("runuser -u postgres -- psql -XAtq -d app -c %s",
                       "INSERT INTO replica_probe VALUES ('x')")
    assert refused.rc != 0 and "read-only transaction" in refused.stderr


def test_required_settings_match_the_primary_and_memory_is_its_own(host, primary, plan):
    version = int(show(host, "server_version_num")) // 10000
    planned = plan.host_view(REPLICA_NAME)["postgresql"]
    for name in REQUIRED_AT_LEAST_PRIMARY:
        assert int(show(host, name)) >= int(show(primary, name)), name
    assert show(host, "max_connections") == show(primary, "max_connections")
    for name in (*MEMORY_SETTINGS, *STANDBY_SETTINGS, "max_connections", "max_worker_processes"):
        live, want = show(host, name), str(planned[name])
        if name in STANDBY_SETTINGS[:2]:
            assert live == want, name
        else:
            assert _base(name, live, version) == _base(name, want, version), (name, live, want)
    # Its own 1g, not the primary's 2g.
    assert _base("shared_buffers", show(host, "shared_buffers"), version) < \
        _base("shared_buffers", show(primary, "shared_buffers"), version)
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_replication_role_reaches_replication_from_the_replica_only(host, primary):
    rules = psql(primary, "SELECT database, address, auth_method FROM pg_hba_file_rules "
                          "WHERE 'stacktune_replication' = ANY(user_name)")
    assert rules == f"{{replication}}|{_address(host)}|scram-sha-256"
    passfile = "/var/lib/postgresql/.stacktune-replication.pgpass"
    assert host.file(passfile).mode == 0o600 and host.file(passfile).user == "postgres"
    target = f"host={_address(primary)} user=stacktune_replication passfile={passfile}"
    ok = host.run("runuser -u postgres -- psql -XAtq %s -c IDENTIFY_SYSTEM",
                  f"{target} replication=true dbname=replication")
    assert ok.rc == 0, ok.stderr
    normal = host.run("runuser -u postgres -- psql -XAtq %s -c 'SELECT 1'", f"{target} dbname=app")
    assert normal.rc != 0 and "no pg_hba.conf entry" in normal.stderr
    # From an address that is not a replica's (the primary itself).
    other = primary.run("PGPASSWORD=%s psql -XAtq %s -c IDENTIFY_SYSTEM", REPLICATION_PASSWORD,
                        f"host={_address(primary)} user=stacktune_replication replication=true")
    assert other.rc != 0 and "no pg_hba.conf entry" in other.stderr


def _marker(host) -> tuple[str, bool]:
    started = psql(host, "SELECT pg_postmaster_start_time()")
    marked = host.file(f"{show(host, 'data_directory')}/stacktune-test-marker").exists
    return started, marked


def test_converge_keeps_a_streaming_replica_and_rebuilds_one_without_its_slot_only_when_asked(
        host, primary):
    data = show(host, "data_directory")
    host.run_expect([0], "runuser -u postgres -- touch %s/stacktune-test-marker", data)
    before = _marker(host)
    assert before[1]

    # What an operator runs for one replica: the plan play, then its PostgreSQL tier only.
    again = run_playbook(*LIMITED)
    assert again.returncode == 0, again.stdout[-3000:]
    assert _marker(host) == before, "a streaming replica was restarted or rebuilt"

    unit = f"postgresql@{int(show(host, 'server_version_num')) // 10000}-main"
    host.run_expect([0], f"systemctl stop {unit}")
    # The primary's WAL sender exits once it notices the replica is gone.
    for _ in range(50):
        if psql(primary, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'") \
                == "f":
            break
        time.sleep(0.2)
    psql(primary, f"SELECT pg_drop_replication_slot('{SLOT}')")
    host.run_expect([0], f"systemctl start {unit}")
    refused = run_playbook(*LIMITED)
    assert refused.returncode != 0
    text = " ".join(refused.stdout.split())
    assert f"replica '{REPLICA_NAME}' cannot resume streaming" in text, refused.stdout[-3000:]
    assert f"slot {SLOT} is gone" in text and "postgresql_replica_rebuild=true" in text
    assert host.file(f"{data}/stacktune-test-marker").exists, "rebuilt although not asked"

    rebuilt = run_playbook(*LIMITED, *extra_vars(postgresql_replica_rebuild=True))
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
    assert not host.file(f"{data}/stacktune-test-marker").exists
    _wait_streaming(host)
    assert psql(primary, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'") \
        == "t"
    note = uuid.uuid4().hex
    psql(primary, "CREATE TABLE IF NOT EXISTS replica_probe (note text)", db="app")
    psql(primary, f"INSERT INTO replica_probe VALUES ('{note}')", db="app")
    for _ in range(100):
        if psql(host, f"SELECT count(*) FROM replica_probe WHERE note = '{note}'", db="app") == "1":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the rebuilt replica does not replay the primary's writes")

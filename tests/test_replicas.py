"""Streaming read replicas in the plan: the primary's replication settings, each replica's
own plan (PostgreSQL's required settings from the primary, memory from its own host) and
the placements that cannot work."""

from __future__ import annotations

import pytest

from stacktune import pg_params
from stacktune.memory_model import postgres_memory
from stacktune.model import REPLICA, Host, HostProfile, PlanError, StackInputs, Workload
from stacktune.plan import plan_stack
from stacktune.replicas import (
    REQUIRED_AT_LEAST_PRIMARY,
    replication_slot_name,
)
from stacktune.units import GiB, MiB

PRIMARY = Host("db1", HostProfile(8 * GiB, 4), frozenset({"postgresql", "pgbouncer"}))
APP = Host("app1", HostProfile(4 * GiB, 4), frozenset({"gunicorn", "redis"}))


def replica(name: str, memory: int = 2 * GiB, cpus: float = 2) -> Host:
    return Host(name, HostProfile(memory, cpus), frozenset({REPLICA}))


def plan(*hosts: Host, overrides: dict | None = None, version: int = 17):
    return plan_stack(StackInputs(hosts=hosts, workload=Workload.WEB, pg_version=version,
                                  overrides=overrides or {}))


def test_replica_takes_the_primarys_required_settings_and_its_own_memory():
    result = plan(PRIMARY, APP, replica("db2"))
    primary = result.services["postgresql"]
    view = result.host_view("db2")
    standby = view["postgresql"]
    for name in REQUIRED_AT_LEAST_PRIMARY:
        if name in primary:
            assert int(standby[name]) >= int(primary[name]), name
    assert standby["max_connections"] == primary["max_connections"]
    # Its own hardware: 2 GiB, not the primary's 8 GiB.
    assert standby["shared_buffers"] != primary["shared_buffers"]
    budget = result.hosts["db2"].budget.postgresql_bytes
    assert standby["shared_buffers"] == f"{budget // 4 // MiB}MB"
    memory = postgres_memory(standby, 17, concurrency=result.chain.active_backends)
    assert memory.total_bytes <= budget
    assert standby["hot_standby"] == "on"
    assert standby["hot_standby_feedback"] == "on"
    assert standby["max_standby_streaming_delay"] == \
        result.services["postgresql_app_role"]["statement_timeout"]
    assert standby["wal_receiver_status_interval"] == "1s"
    for name in ("hot_standby_feedback", "max_standby_streaming_delay",
                 "wal_receiver_status_interval", "max_connections"):
        assert view["reasons"][f"postgresql.{name}"], name
    assert "db1" in view["reasons"]["postgresql.max_connections"]
    assert view["postgresql_replica"] == {"primary": "db1", "slot_name": "stacktune_db2"}
    # Every value legal for the version.
    for name, value in standby.items():
        pg_params.validate_pg_value(name, str(value), 17)


def test_replica_with_more_cpus_keeps_its_own_higher_worker_processes():
    result = plan(PRIMARY, APP, replica("db2", 8 * GiB, 16))
    primary = result.services["postgresql"]
    standby = result.host_view("db2")["postgresql"]
    assert int(standby["max_worker_processes"]) > int(primary["max_worker_processes"])


def test_primary_sizes_wal_senders_and_slots_from_the_replicas():
    one = plan(PRIMARY, APP, replica("db2")).services["postgresql"]
    assert one["max_wal_senders"] == "10" and one["max_replication_slots"] == "10"
    assert one["wal_level"] == "replica"
    many = plan(PRIMARY, APP, *(replica(f"db{i}") for i in range(2, 12))).services["postgresql"]
    # 10 replicas + 2 senders for one pg_basebackup -X stream; a slot each + 1.
    assert many["max_wal_senders"] == "12" and many["max_replication_slots"] == "11"
    alone = plan(PRIMARY, APP).services["postgresql"]
    assert "max_wal_senders" not in alone and "wal_level" not in alone


def test_the_primary_view_lists_its_replicas_slots():
    view = plan(PRIMARY, APP, replica("db2"), replica("DB-3")).host_view("db1")
    assert view["postgresql_replication"] == {
        "replicas": [{"host": "db2", "slot_name": "stacktune_db2"},
                     {"host": "DB-3", "slot_name": "stacktune_db_3"}]}


def test_slot_names_are_legal_and_distinct():
    assert replication_slot_name("db2.example.com") == "stacktune_db2_example_com"
    assert len(replication_slot_name("r" * 100)) == 63
    with pytest.raises(PlanError, match=r"db-2.*db_2.*slot"):
        plan(PRIMARY, APP, replica("db-2"), replica("db_2"))


def test_replica_without_a_primary_is_refused():
    with pytest.raises(PlanError, match=r"postgresql_replica.*db2.*no host runs postgresql"):
        plan(APP, replica("db2"))


def test_host_both_primary_and_replica_is_refused():
    both = Host("db1", HostProfile(8 * GiB, 4), frozenset({"postgresql", REPLICA}))
    with pytest.raises(PlanError, match=r"db1.*both.*postgresql.*postgresql_replica"):
        plan(both, APP)


def test_replica_too_small_for_the_primarys_connections_names_host_setting_and_fix():
    many = {"postgresql": {"max_connections": "2000"}}
    big = Host("db1", HostProfile(64 * GiB, 16), frozenset({"postgresql"}))
    plan(big, overrides=many)  # the primary alone fits
    with pytest.raises(PlanError) as error:
        plan(big, replica("db2", 1 * GiB, 1), overrides=many)
    message = str(error.value)
    assert "db2" in message and "max_connections = 2000" in message
    assert "db1" in message and "give" in message


def test_replica_plan_differs_per_replica_host():
    result = plan(PRIMARY, APP, replica("db2", 2 * GiB), replica("db3", 4 * GiB))
    small = result.host_view("db2")["postgresql"]
    large = result.host_view("db3")["postgresql"]
    assert small["shared_buffers"] != large["shared_buffers"]
    assert result.to_dict()["replicas"]["db3"]["shared_buffers"] == large["shared_buffers"]


def _action(**changes):
    from stacktune.replicas import replica_action
    probe = dict(host="db2", slot_name="stacktune_db2", standby=True, replica_sysid=7,
                 primary_sysid="7", slot_exists=True, user_databases=1, rebuild=False)
    probe.update(changes)
    return replica_action(**probe)


def test_a_streaming_replica_is_kept_and_a_fresh_cluster_is_built():
    assert _action() == "keep"
    assert _action(rebuild=True) == "keep"
    assert _action(standby=False, user_databases=0, replica_sysid=9) == "build"


@pytest.mark.parametrize("changes, cause", [
    ({"slot_exists": False}, "slot stacktune_db2 is gone"),
    ({"replica_sysid": 8}, "standby of another cluster"),
    ({"standby": False, "user_databases": 2}, "2 database(s) of its own"),
])
def test_a_replica_that_cannot_resume_is_rebuilt_only_when_asked(changes, cause):
    with pytest.raises(PlanError) as error:
        _action(**changes)
    assert cause in str(error.value) and "postgresql_replica_rebuild=true" in str(error.value)
    assert "'db2'" in str(error.value)
    assert _action(rebuild=True, **changes) == "build"

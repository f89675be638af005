"""The plan engine (stacktune.plan): one test per rule of each planner, overrides,
invariants, the issue's "done when" checks and a multi-host stack."""

from __future__ import annotations

import json
import math
import re

import pytest

from stacktune.memory_model import postgres_memory, shared_memory_settings
from stacktune.model import (
    SUPPORTED_PG_VERSIONS,
    Host,
    HostProfile,
    PlanError,
    StackInputs,
    Storage,
    Workload,
)
from stacktune.pgtune import PgTuneInputs, pgtune_settings
from stacktune.plan import Plan, plan_stack
from stacktune.shared_memory import shared_memory_bytes
from stacktune.units import GiB, KiB, MiB, format_pg_memory, parse_pg_memory, parse_redis_memory

ALL = ("postgresql", "pgbouncer", "redis", "gunicorn")
RSS = 160 * MiB


def stack(services=ALL, memory=4 * GiB, cpus: float = 2, storage=Storage.SSD,
          app_hosts: int = 0, overrides=None, **inputs) -> StackInputs:
    """One host named 'h' with ``services``; ``app_hosts`` more Gunicorn-only hosts like it."""
    profile = HostProfile(memory_bytes=memory, cpus=cpus, storage=storage)
    hosts = [Host("h", profile, frozenset(services))]
    hosts += [Host(f"app{i}", profile, frozenset({"gunicorn"})) for i in range(app_hosts)]
    return StackInputs(hosts=tuple(hosts), overrides=overrides or {}, **inputs)


def plan(services=ALL, **kwargs) -> Plan:
    return plan_stack(stack(services, **kwargs))


def pg(p: Plan, name: str) -> str:
    return str(p.services["postgresql"][name])


def pg_bytes(p: Plan, name: str) -> int:
    return parse_pg_memory(pg(p, name))


def pg_budget(p: Plan, host: str = "h") -> int:
    return p.hosts[host].budget.postgresql_bytes


def mib_floor(num_bytes: float) -> int:
    return int(num_bytes) // MiB * MiB


def relative_gap(ours: int, theirs: int) -> float:
    return abs(ours - theirs) / theirs


# --- PostgreSQL: memory -------------------------------------------------------------------------


@pytest.mark.parametrize("services", [("postgresql",), ALL])
def test_shared_buffers_is_25_percent_of_postgresqls_budget(services):
    p = plan(services, memory=8 * GiB, cpus=4)
    assert pg_bytes(p, "shared_buffers") == mib_floor(pg_budget(p) * 0.25)
    assert "25% of PostgreSQL's" in p.reasons["postgresql.shared_buffers"]


def test_shared_buffers_follows_the_budget_not_the_host():
    dedicated = plan(("postgresql",), memory=8 * GiB)
    shared = plan(ALL, memory=8 * GiB)
    assert pg_bytes(shared, "shared_buffers") < pg_bytes(dedicated, "shared_buffers")


def test_effective_cache_size_is_75_percent_of_the_budget():
    p = plan(("postgresql", "pgbouncer"), memory=8 * GiB)
    assert pg_bytes(p, "effective_cache_size") == mib_floor(pg_budget(p) * 0.75)


@pytest.mark.parametrize(("workload", "divisor"),
                         [(Workload.WEB, 16), (Workload.OLTP, 16), (Workload.MIXED, 16),
                          (Workload.DW, 8)])
def test_maintenance_work_mem_is_a_fraction_of_the_budget(workload, divisor):
    p = plan(("postgresql", "pgbouncer"), memory=8 * GiB, workload=workload)
    assert pg_bytes(p, "maintenance_work_mem") == mib_floor(pg_budget(p) / divisor)


def test_maintenance_work_mem_cap_is_2gb():
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=4)
    assert pg_budget(p) / 16 > 2 * GiB
    assert pg(p, "maintenance_work_mem") == "2GB"


def test_autovacuum_work_mem_keeps_workers_within_an_eighth_of_the_budget():
    p = plan(("postgresql", "pgbouncer"), memory=8 * GiB, cpus=4)
    workers = int(pg(p, "autovacuum_max_workers"))
    assert workers == 3
    assert pg_bytes(p, "autovacuum_work_mem") == mib_floor(pg_budget(p) * 0.125 / 3)
    assert workers * pg_bytes(p, "autovacuum_work_mem") <= pg_budget(p) / 8


def test_autovacuum_work_mem_is_capped_at_1gb():
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=4)
    assert pg(p, "autovacuum_work_mem") == "1GB"


def test_autovacuum_work_mem_has_a_16mb_floor_within_maintenance_work_mem():
    p = plan(("postgresql",), memory=512 * MiB, cpus=1, connections=20)
    # 384 MiB budget: 1/8 over 3 workers = 16 MiB; maintenance_work_mem 24 MiB.
    assert pg(p, "autovacuum_work_mem") == "16MB"
    assert pg_bytes(p, "autovacuum_work_mem") <= pg_bytes(p, "maintenance_work_mem")


def _expected_work_mem(p: Plan, divisor: int = 1, cap: int = 256 * MiB) -> int:
    """The memory model's room, per query process: 2 sorts + 1 hash x hash_mem_multiplier."""
    figures = p.postgres
    assert figures is not None
    pg_values = p.services["postgresql"]
    fixed = postgres_memory(pg_values, p.inputs.pg_version, 0).fixed_bytes()
    per_process = (pg_budget(p) - fixed) / figures.concurrency / (2 + 1 * 2.0)
    return min(mib_floor(max(per_process / divisor, min(4 * MiB, per_process))), cap)


def test_work_mem_uses_pooled_concurrency():
    p = plan(("postgresql", "pgbouncer"), memory=4 * GiB, cpus=2)
    # 8 pooled backends + min(2 parallel workers, 8 x 1 per gather).
    assert p.postgres.concurrency == 8 + 2
    assert pg_bytes(p, "work_mem") == _expected_work_mem(p)
    assert "10 processes running queries at once (8 pooled backends" in \
        p.reasons["postgresql.work_mem"]


def test_work_mem_is_much_larger_with_pgbouncer_on_the_same_4gib_host():
    pooled = plan(("postgresql", "pgbouncer"), memory=4 * GiB, cpus=2)
    direct = plan(("postgresql",), memory=4 * GiB, cpus=2, connections=200)
    assert direct.postgres.concurrency == 200 + 2
    assert pg(direct, "work_mem") == "1MB"               # warned, see below
    assert pg_bytes(pooled, "work_mem") >= 10 * pg_bytes(direct, "work_mem")
    assert int(pg(pooled, "max_connections")) < int(pg(direct, "max_connections")) / 5


@pytest.mark.parametrize(("workload", "cap"),
                         [(Workload.WEB, "256MB"), (Workload.OLTP, "256MB"),
                          (Workload.MIXED, "512MB"), (Workload.DW, "2GB")])
def test_work_mem_cap_per_workload(workload, cap):
    p = plan(("postgresql", "pgbouncer"), memory=1024 * GiB, cpus=2, workload=workload)
    assert pg(p, "work_mem") == cap


@pytest.mark.parametrize("workload", [Workload.MIXED, Workload.DW])
def test_work_mem_halved_for_mixed_and_dw(workload):
    p = plan(("postgresql", "pgbouncer"), memory=8 * GiB, cpus=2, workload=workload)
    assert pg_bytes(p, "work_mem") == _expected_work_mem(p, divisor=2, cap=512 * MiB)


def test_small_dedicated_host_with_direct_connections_names_the_real_cause():
    """Issue 10 item 5: not work_mem 132kB, not 'use at most 0 KiB': the backends are the cause."""
    with pytest.raises(PlanError) as caught:
        plan(("postgresql", "gunicorn"), memory=2 * GiB, cpus=2, workload=Workload.OLTP,
             connections=300)
    message = str(caught.value)
    assert message.startswith("300 direct connections (--connections 300")
    assert "613 backends (x2 for graceful reloads + admin)" in message
    assert "Place PgBouncer" in message
    assert "0 KiB" not in message and not message.startswith("postgresql.work_mem")


def test_a_guessed_client_count_is_capped_to_what_a_small_host_runs():
    """No app tier, no --connections: the workload's 300 is a guess, capped with a warning."""
    p = plan(("postgresql",), memory=2 * GiB, cpus=2, workload=Workload.OLTP)
    assert pg(p, "work_mem") == "4MB"
    assert p.chain.app_clients < 300
    assert "capped at" in p.reasons["postgresql.max_connections"]
    assert any("capped at" in w for w in p.warnings)


def test_work_mem_below_4mb_on_the_direct_path_warns_with_the_cause():
    p = plan(("postgresql",), memory=4 * GiB, cpus=2, connections=200)
    work_mem = pg_bytes(p, "work_mem")
    assert 256 * KiB <= work_mem < 4 * MiB
    assert any("direct connections" in w and "Place PgBouncer" in w for w in p.warnings)
    memory = postgres_memory(p.services["postgresql"], 15, p.postgres.concurrency)
    assert memory.total_bytes <= pg_budget(p)


@pytest.mark.parametrize("memory", [4 * GiB, 64 * GiB])
def test_wal_buffers_is_capped_at_one_segment(memory):
    p = plan(("postgresql", "pgbouncer"), memory=memory)
    assert pg_bytes(p, "shared_buffers") * 3 / 100 > 16 * MiB
    assert pg(p, "wal_buffers") == "16MB"


def test_wal_buffers_between_14mb_and_16mb_rounds_up_to_a_segment():
    p = plan(("postgresql",), memory=2304 * MiB)
    assert pg(p, "shared_buffers") == "518MB"          # 3% = 15.5 MB
    assert pg(p, "wal_buffers") == "16MB"


def test_wal_buffers_is_3_percent_of_small_shared_buffers():
    p = plan(("postgresql", "pgbouncer"), memory=1 * GiB, cpus=1)
    shared = pg_bytes(p, "shared_buffers")
    assert shared == 216 * MiB
    assert pg_bytes(p, "wal_buffers") == int(shared * 3 / 100) // KiB * KiB
    assert pg(p, "wal_buffers") == "6635kB"


def test_huge_pages_and_nr_hugepages_from_2gb_shared_buffers():
    p = plan(("postgresql", "pgbouncer"), memory=16 * GiB, cpus=4)
    shared = pg_bytes(p, "shared_buffers")
    assert shared >= 2 * GiB
    assert pg(p, "huge_pages") == "try"
    wal = pg_bytes(p, "wal_buffers")
    # The whole segment PostgreSQL sizes (tests/test_shared_memory.py checks the model
    # against measured servers), not shared_buffers + wal_buffers + a fixed 64MB.
    segment = shared_memory_bytes(shared_memory_settings(p.services["postgresql"], 15), 15)
    assert segment > shared + wal
    assert p.hosts["h"].sysctl["vm.nr_hugepages"] == str(math.ceil(segment / (2 * MiB)))


def test_huge_pages_boundary_at_2gb():
    above = plan(("postgresql",), memory=9 * GiB, cpus=4)     # 8.1 GiB budget: 2073 MB
    below = plan(("postgresql",), memory=8 * GiB, cpus=4)     # 7.2 GiB budget: 1843 MB
    assert pg_bytes(above, "shared_buffers") >= 2 * GiB > pg_bytes(below, "shared_buffers")
    assert pg(above, "huge_pages") == "try"
    assert "vm.nr_hugepages" in above.hosts["h"].sysctl
    assert pg(below, "huge_pages") == "off"
    assert "vm.nr_hugepages" not in below.hosts["h"].sysctl


def test_huge_pages_off_override_reserves_no_huge_pages():
    p = plan(("postgresql",), memory=16 * GiB, overrides={"postgresql": {"huge_pages": "off"}})
    assert pg(p, "huge_pages") == "off"
    assert "vm.nr_hugepages" not in p.hosts["h"].sysctl


def test_huge_pages_on_override_reserves_huge_pages_on_a_small_host():
    # huge_pages = on without reserved pages: PostgreSQL would not start.
    p = plan(("postgresql",), memory=4 * GiB, overrides={"postgresql": {"huge_pages": "on"}})
    shared = pg_bytes(p, "shared_buffers")
    assert pg(p, "huge_pages") == "on"
    segment = shared_memory_bytes(shared_memory_settings(p.services["postgresql"], 15), 15)
    assert segment > shared
    assert int(p.hosts["h"].sysctl["vm.nr_hugepages"]) == math.ceil(segment / (2 * MiB))


# --- PostgreSQL: version gating ----------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_PG_VERSIONS)
def test_pg18_only_settings(version):
    p = plan(("postgresql", "pgbouncer"), pg_version=version)
    settings = p.services["postgresql"]
    for name in ("io_method", "io_workers", "autovacuum_vacuum_max_threshold"):
        assert (name in settings) == (version == 18)
    if version == 18:
        assert settings["io_method"] == "worker"
        assert settings["io_workers"] == "3"
        assert settings["autovacuum_vacuum_max_threshold"] == "100000000"


@pytest.mark.parametrize(("version", "value"),
                         [(13, "on"), (14, "on"), (15, "lz4"), (16, "lz4"), (17, "lz4"),
                          (18, "lz4")])
def test_wal_compression_by_version(version, value):
    assert pg(plan(("postgresql",), pg_version=version), "wal_compression") == value


@pytest.mark.parametrize(("cpus", "io_workers"), [(2, "3"), (16, "4"), (32, "8"), (128, "32")])
def test_io_workers_one_per_four_cpus(cpus, io_workers):
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=cpus, pg_version=18)
    assert pg(p, "io_workers") == io_workers


# --- PostgreSQL: parallelism, planner, WAL --------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "workload", "expected"),
    [
        # (max_worker_processes, max_parallel_workers, per_gather, maintenance)
        (1, Workload.WEB, ("8", "1", "0", "0")),
        (1.5, Workload.WEB, ("8", "1", "0", "0")),
        (2, Workload.WEB, ("8", "2", "1", "1")),
        # From 8 CPUs: 4 worker slots that parallel queries cannot take.
        (8, Workload.WEB, ("12", "8", "2", "4")),
        (8, Workload.OLTP, ("12", "8", "2", "4")),
        (8, Workload.MIXED, ("12", "8", "4", "4")),
        (8, Workload.DW, ("12", "8", "4", "4")),
        (32, Workload.DW, ("36", "32", "8", "4")),
        (32, Workload.WEB, ("36", "32", "2", "4")),
    ],
)
def test_parallel_settings(cpus, workload, expected):
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=cpus, workload=workload)
    assert (pg(p, "max_worker_processes"), pg(p, "max_parallel_workers"),
            pg(p, "max_parallel_workers_per_gather"),
            pg(p, "max_parallel_maintenance_workers")) == expected


@pytest.mark.parametrize(("storage", "cost", "io"),
                         [(Storage.HDD, "4", "2"), (Storage.SSD, "1.1", "200"),
                          (Storage.SAN, "1.1", "300"), (Storage.NVME, "1.1", "1000")])
def test_storage_sets_page_cost_and_io_concurrency(storage, cost, io):
    p = plan(("postgresql",), storage=storage)
    assert pg(p, "random_page_cost") == cost
    assert pg(p, "effective_io_concurrency") == io
    assert pg(p, "maintenance_io_concurrency") == io


@pytest.mark.parametrize(("workload", "stats", "jit", "min_wal", "max_wal"),
                         [(Workload.WEB, "100", "off", "1GB", "4GB"),
                          (Workload.OLTP, "100", "off", "2GB", "8GB"),
                          (Workload.MIXED, "100", "off", "1GB", "4GB"),
                          (Workload.DW, "500", "on", "4GB", "16GB")])
def test_workload_sets_planner_and_wal(workload, stats, jit, min_wal, max_wal):
    p = plan(("postgresql",), workload=workload, cpus=4, memory=16 * GiB)
    assert pg(p, "default_statistics_target") == stats
    assert pg(p, "jit") == jit
    assert (pg(p, "min_wal_size"), pg(p, "max_wal_size")) == (min_wal, max_wal)
    assert pg(p, "checkpoint_timeout") == "15min"
    assert pg(p, "checkpoint_completion_target") == "0.9"


def test_connection_settings_come_from_the_chain():
    p = plan(("postgresql", "pgbouncer", "gunicorn"))
    assert pg(p, "max_connections") == str(p.chain.max_connections) == "21"
    assert pg(p, "superuser_reserved_connections") == "3"
    assert pg(p, "password_encryption") == "scram-sha-256"
    assert "PgBouncer's 8 server connections" in p.reasons["postgresql.max_connections"]


# --- PostgreSQL: autovacuum ----------------------------------------------------------------------


@pytest.mark.parametrize(("cpus", "workers"), [(1, "3"), (15, "3"), (16, "4"), (20, "5"),
                                               (24, "6"), (128, "6")])
def test_autovacuum_max_workers(cpus, workers):
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=cpus)
    assert pg(p, "autovacuum_max_workers") == workers


@pytest.mark.parametrize("workload", [Workload.WEB, Workload.OLTP, Workload.MIXED])
def test_autovacuum_for_short_queries(workload):
    p = plan(("postgresql",), workload=workload)
    assert pg(p, "autovacuum_naptime") == "30s"
    assert pg(p, "autovacuum_vacuum_scale_factor") == "0.05"
    assert pg(p, "autovacuum_analyze_scale_factor") == "0.02"
    assert pg(p, "autovacuum_vacuum_insert_scale_factor") == "0.05"
    assert pg(p, "autovacuum_vacuum_threshold") == "50"
    assert pg(p, "autovacuum_vacuum_cost_delay") == "2ms"


def test_autovacuum_for_analytics():
    p = plan(("postgresql",), workload=Workload.DW)
    assert pg(p, "autovacuum_naptime") == "1min"
    assert pg(p, "autovacuum_vacuum_scale_factor") == "0.1"
    assert pg(p, "autovacuum_analyze_scale_factor") == "0.05"
    assert pg(p, "autovacuum_vacuum_insert_scale_factor") == "0.1"


@pytest.mark.parametrize(("storage", "limit"), [(Storage.HDD, "400"), (Storage.SSD, "2000"),
                                                (Storage.NVME, "2000")])
def test_autovacuum_cost_limit_by_storage(storage, limit):
    assert pg(plan(("postgresql",), storage=storage), "autovacuum_vacuum_cost_limit") == limit


# --- PostgreSQL: logging and observability -------------------------------------------------------


@pytest.mark.parametrize(("workload", "slow", "explain"),
                         [(Workload.WEB, "250ms", "1s"), (Workload.OLTP, "100ms", "400ms"),
                          (Workload.MIXED, "500ms", "2s"), (Workload.DW, "5s", "20s")])
def test_slow_statement_logging_per_workload(workload, slow, explain):
    p = plan(("postgresql",), workload=workload)
    assert pg(p, "log_min_duration_statement") == slow
    assert pg(p, "auto_explain.log_min_duration") == explain


def test_observability_settings():
    p = plan(("postgresql",))
    assert pg(p, "shared_preload_libraries") == "pg_stat_statements,auto_explain,pg_qualstats"
    assert pg(p, "pg_stat_statements.max") == "10000"
    assert pg(p, "pg_stat_statements.track") == "top"
    for name in ("log_lock_waits", "log_checkpoints", "track_io_timing"):
        assert pg(p, name) == "on"
    assert pg(p, "log_temp_files") == "0"
    assert pg(p, "log_autovacuum_min_duration") == "1s"


@pytest.mark.parametrize(("workload", "rate", "said"),
                         [(Workload.WEB, "0.01", "1 statement in 100"),
                          (Workload.OLTP, "0.01", "1 statement in 100"),
                          (Workload.DW, "1", "every statement")])
def test_pg_qualstats_samples_web_traffic_lightly(workload, rate, said):
    p = plan(("postgresql",), workload=workload)
    assert pg(p, "pg_qualstats.sample_rate") == rate
    assert said in p.reasons["postgresql.pg_qualstats.sample_rate"]


def test_pg_qualstats_costs_shared_memory_in_the_budget():
    """pg_qualstats.max entries (1000 by default) at 1337 bytes each: 1.3 MB of the segment."""
    p = plan(("postgresql",))
    settings = shared_memory_settings(p.services["postgresql"], p.inputs.pg_version)
    assert settings.pg_qualstats_max == 1000


def test_idle_in_transaction_timeout_except_for_analytics():
    assert pg(plan(("postgresql",)), "idle_in_transaction_session_timeout") == "60s"
    dw = plan(("postgresql",), workload=Workload.DW)
    assert "idle_in_transaction_session_timeout" not in dw.services["postgresql"]


def test_every_postgresql_setting_has_a_reason():
    p = plan()
    for name in p.services["postgresql"]:
        assert p.reasons[f"postgresql.{name}"]


# --- PgBouncer ------------------------------------------------------------------------------------


def test_pgbouncer_settings_from_the_chain():
    p = plan(("postgresql", "pgbouncer", "gunicorn"))
    b = p.services["pgbouncer"]
    assert b["pool_mode"] == "transaction"
    assert b["listen_port"] == "6432"
    # hba: auth_hba_file admits only the app tier, each rule scram-sha-256.
    assert b["auth_type"] == "hba"
    assert "scram-sha-256" in p.reasons["pgbouncer.auth_type"]
    assert b["max_client_conn"] == "100"           # 5 x 2 threads x 2 + 10 = 30, floor 100
    assert b["default_pool_size"] == "6"
    assert b["min_pool_size"] == "1"
    assert b["reserve_pool_size"] == "2"
    assert b["max_db_connections"] == "8"
    assert b["query_wait_timeout"] == "10"
    assert "10 app connections (5 workers x 2 threads x 1 app host(s)) x 2" in \
        p.reasons["pgbouncer.max_client_conn"]
    assert all(isinstance(v, str) for v in b.values())


def test_no_pgbouncer_section_without_pgbouncer():
    p = plan(("postgresql", "gunicorn"))
    assert "pgbouncer" not in p.services
    assert not p.chain.pooled


# --- Redis ----------------------------------------------------------------------------------------


def test_redis_settings_on_a_shared_host():
    p = plan(ALL, memory=4 * GiB)
    r = p.services["redis"]
    budget = p.hosts["h"].budget
    assert r["maxmemory"] == f"{budget.redis_maxmemory_bytes // MiB}mb" == "442mb"
    assert parse_redis_memory(r["maxmemory"]) <= budget.redis_bytes * 0.8
    assert r["maxmemory-policy"] == "allkeys-lru"
    assert r["save"] == '""'
    assert r["appendonly"] == "no"
    assert r["lazyfree-lazy-eviction"] == "yes"
    assert "share of a shared host" in p.reasons["redis.maxmemory"]


def test_redis_alone_uses_its_whole_host():
    p = plan(("redis",), memory=8 * GiB)
    budget = p.hosts["h"].budget
    assert budget.redis_bytes == 8 * GiB - budget.os_reserve_bytes
    assert p.services["redis"]["maxmemory"] == f"{int(budget.redis_bytes * 0.8) // MiB}mb"
    assert "share" not in p.reasons["redis.maxmemory"]


# --- Gunicorn -------------------------------------------------------------------------------------


def test_gunicorn_workers_are_2_cpus_plus_1():
    p = plan(("gunicorn",), memory=8 * GiB, cpus=4)
    g = p.services["gunicorn"]
    assert g["workers"] == "9"
    assert g["worker_class"] == "'gthread'"
    assert g["threads"] == "2"
    assert g["timeout"] == "30"
    assert g["backlog"] == "2048"


def test_gunicorn_workers_limited_by_memory():
    # 2 GiB next to PostgreSQL: 30% of 1.8 GiB holds 3 workers of 160 MiB, not 2 x 4 + 1.
    p = plan(("postgresql", "gunicorn"), memory=2 * GiB, cpus=4)
    assert p.services["gunicorn"]["workers"] == "3"
    assert p.hosts["h"].budget.gunicorn_workers == 3


def test_gunicorn_worker_size_estimate_changes_the_count():
    p = plan(("postgresql", "gunicorn"), memory=2 * GiB, cpus=4,
             gunicorn_worker_rss_bytes=64 * MiB)
    assert p.services["gunicorn"]["workers"] == "8"


# --- Django ---------------------------------------------------------------------------------------


def test_django_through_pgbouncer():
    d = plan(ALL).services["django"]
    assert d["DATABASE_TARGET"] == "pgbouncer"
    assert d["DATABASE_PORT"] == 6432
    assert d["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert d["CONN_MAX_AGE"] == 600
    assert d["DATABASE_POOL"] is None
    assert d["CONN_HEALTH_CHECKS"] is True


def test_django_52_without_pgbouncer_uses_its_native_pool():
    d = plan(("postgresql", "redis", "gunicorn"), django_version="5.2").services["django"]
    assert d["DATABASE_TARGET"] == "postgresql"
    assert d["DATABASE_PORT"] == 5432
    assert d["DATABASE_POOL"] == {"min_size": 1, "max_size": 2, "timeout": 10}
    assert d["CONN_MAX_AGE"] == 0
    assert d["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_django_42_without_pgbouncer_keeps_persistent_connections():
    d = plan(("postgresql", "redis", "gunicorn"), django_version="4.2").services["django"]
    assert d["CONN_MAX_AGE"] == 600
    assert d["DATABASE_POOL"] is None
    assert d["DATABASE_TARGET"] == "postgresql"


def test_django_cache_on_redis():
    d = plan(ALL).services["django"]
    assert d["CACHE_BACKEND"] == "django_redis.cache.RedisCache"
    assert d["CACHE_PORT"] == 6379
    assert d["SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"


def test_django_cache_without_redis():
    d = plan(("postgresql", "pgbouncer", "gunicorn")).services["django"]
    assert d["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert d["CACHE_PORT"] is None
    assert d["SESSION_ENGINE"] == "django.contrib.sessions.backends.db"


def test_no_django_without_gunicorn():
    p = plan(("postgresql", "pgbouncer", "redis"))
    assert "django" not in p.services
    assert "gunicorn" not in p.services


# --- sysctl ---------------------------------------------------------------------------------------


def test_sysctl_redis_with_postgresql_overcommits_and_says_why():
    p = plan(ALL)
    sysctl = p.hosts["h"].sysctl
    reasons = p.hosts["h"].sysctl_reasons
    assert sysctl["vm.overcommit_memory"] == "1"
    assert "vm.overcommit_ratio" not in sysctl
    assert "PostgreSQL" in reasons["vm.overcommit_memory"]
    assert "Redis" in reasons["vm.overcommit_memory"]
    assert sysctl["vm.swappiness"] == "1"
    assert sysctl["transparent_hugepage"] == "never"
    assert sysctl["net.core.somaxconn"] == "4096"


def test_sysctl_redis_alone():
    p = plan(("redis",))
    assert p.hosts["h"].sysctl["vm.overcommit_memory"] == "1"
    assert "no PostgreSQL" in p.hosts["h"].sysctl_reasons["vm.overcommit_memory"]


@pytest.mark.parametrize("services", [("postgresql",), ("postgresql", "pgbouncer")])
def test_sysctl_dedicated_postgresql_strict_overcommit(services):
    sysctl = plan(services).hosts["h"].sysctl
    assert sysctl["vm.overcommit_memory"] == "2"
    assert sysctl["vm.overcommit_ratio"] == "90"
    assert sysctl["vm.swappiness"] == "1"


def test_sysctl_postgresql_with_gunicorn_leaves_overcommit_alone():
    sysctl = plan(("postgresql", "gunicorn")).hosts["h"].sysctl
    assert "vm.overcommit_memory" not in sysctl
    assert sysctl["vm.swappiness"] == "1"


def test_sysctl_app_host_only_raises_the_backlog():
    assert plan(("gunicorn",)).hosts["h"].sysctl == {"net.core.somaxconn": "4096"}


# --- Overrides ------------------------------------------------------------------------------------


def test_postgresql_override_replaces_the_value_and_says_override():
    planned = plan(ALL)
    p = plan(ALL, overrides={"postgresql": {"work_mem": "16MB"}})
    assert pg(p, "work_mem") == "16MB"
    reason = p.reasons["postgresql.work_mem"]
    assert reason.startswith(f"set by you, planned {pg(planned, 'work_mem')}: ")
    assert reason.endswith(planned.reasons["postgresql.work_mem"])


def test_override_of_a_setting_stacktune_does_not_plan():
    p = plan(("postgresql",), overrides={"postgresql": {"statement_timeout": "30s"}})
    assert pg(p, "statement_timeout") == "30s"
    assert p.reasons["postgresql.statement_timeout"] == (
        "set by you; stacktune plans no value (the service's default applies)")


def test_override_values_are_normalised():
    p = plan(ALL, overrides={"postgresql": {"jit": "true", "huge_pages": "TRY"},
                             "redis": {"maxmemory": "0.25gb"}})
    assert pg(p, "jit") == "on"
    assert pg(p, "huge_pages") == "try"
    assert p.services["redis"]["maxmemory"] == "256mb"


def test_shared_buffers_override_is_used_for_work_mem():
    planned = plan(("postgresql", "pgbouncer"))
    p = plan(("postgresql", "pgbouncer"), overrides={"postgresql": {"shared_buffers": "512MB"}})
    assert pg(p, "shared_buffers") == "512MB"
    assert p.postgres.shared_buffers_bytes == 512 * MiB
    assert pg_bytes(p, "work_mem") > pg_bytes(planned, "work_mem")


def test_shared_buffers_override_over_40_percent_warns():
    p = plan(("postgresql",), overrides={"postgresql": {"shared_buffers": "2GB"}})
    assert any("over 40%" in w for w in p.warnings)


def test_pool_overrides_reach_postgresql():
    p = plan(("postgresql", "pgbouncer", "gunicorn"),
             overrides={"pgbouncer": {"default_pool_size": "8"}})
    assert p.services["pgbouncer"]["default_pool_size"] == "8"
    assert p.services["pgbouncer"]["max_db_connections"] == "10"
    assert pg(p, "max_connections") == "23"


def test_gunicorn_overrides_reach_the_chain_and_django():
    p = plan(("postgresql", "gunicorn"), overrides={"gunicorn": {"workers": "3", "threads": "4"}})
    assert p.services["gunicorn"]["workers"] == "3"
    assert p.chain.app_clients == 12
    assert p.services["django"]["DATABASE_POOL"]["max_size"] == 4
    assert pg(p, "max_connections") == str(12 * 2 + 10 + 3)   # x2 for graceful reloads


@pytest.mark.parametrize("name", ["workers", "threads"])
def test_gunicorn_zero_workers_or_threads_is_refused(name):
    # Used to be accepted: the plan said 0 while the chain was sized for the planned count.
    with pytest.raises(PlanError, match=f"gunicorn.{name} = 0: expected a whole number from 1 "):
        plan(ALL, overrides={"gunicorn": {name: "0"}})


def test_sysctl_override_applies_to_every_host():
    p = plan(ALL, overrides={"sysctl": {"vm.swappiness": "10"}})
    assert p.hosts["h"].sysctl["vm.swappiness"] == "10"
    assert p.hosts["h"].sysctl_reasons["vm.swappiness"].startswith("set by you, planned 1: ")


def test_unknown_postgresql_setting_suggests_the_name():
    with pytest.raises(PlanError, match=re.escape(
            "postgresql.shared_buffer is not a parameter stacktune knows; did you mean "
            "shared_buffers")):
        plan(ALL, overrides={"postgresql": {"shared_buffer": "1GB"}})


def test_unknown_pgbouncer_setting_suggests_the_name():
    with pytest.raises(PlanError, match=re.escape(
            "unknown setting pgbouncer.max_client_con; did you mean max_client_conn")):
        plan(ALL, overrides={"pgbouncer": {"max_client_con": "100"}})


def test_unknown_service_in_overrides():
    with pytest.raises(PlanError, match="unknown service 'mysql' in overrides"):
        plan(ALL, overrides={"mysql": {"x": "1"}})


@pytest.mark.parametrize(("name", "value"), [("work_mem", "64mb"), ("shared_buffers", "1GiB"),
                                             ("checkpoint_timeout", "15MB")])
def test_wrong_unit_names_the_setting(name, value):
    with pytest.raises(PlanError, match=f"^postgresql.{name} = '{value}': unit"):
        plan(ALL, overrides={"postgresql": {name: value}})


def test_out_of_range_value_names_the_setting():
    with pytest.raises(PlanError, match=r"postgresql\.max_connections = '0'.*below the minimum"):
        plan(ALL, overrides={"postgresql": {"max_connections": "0"}})


def test_setting_missing_in_the_version():
    with pytest.raises(PlanError,
                       match=re.escape("postgresql.io_method does not exist in PostgreSQL 17")):
        plan(ALL, pg_version=17, overrides={"postgresql": {"io_method": "worker"}})


@pytest.mark.parametrize("version", [12, 19])
def test_unsupported_version(version):
    with pytest.raises(PlanError, match=f"PostgreSQL {version} is not supported"):
        plan(ALL, pg_version=version)


# --- Overrides that break an invariant ------------------------------------------------------------


def test_work_mem_too_large_for_the_budget():
    with pytest.raises(PlanError) as caught:
        plan(("postgresql", "pgbouncer"), overrides={"postgresql": {"work_mem": "1GB"}})
    message = str(caught.value)
    assert message.startswith("postgresql.work_mem = 1GB x 10 query processes")
    assert "use at most" in message


def test_max_connections_below_the_pools():
    with pytest.raises(PlanError) as caught:
        plan(ALL, overrides={"postgresql": {"max_connections": "8"}})
    message = str(caught.value)
    assert "postgresql.max_connections = 8" in message
    assert "pgbouncer.max_db_connections" in message


def test_max_connections_below_direct_clients():
    with pytest.raises(PlanError, match=re.escape("postgresql.max_connections = 12 leaves 9")):
        plan(("postgresql", "gunicorn"), overrides={"postgresql": {"max_connections": "12"}})


@pytest.mark.parametrize(("services", "maxmemory"),
                         [(("redis",), "8gb"), (ALL, "3gb"), (("postgresql", "redis"), "4gb")])
def test_redis_maxmemory_beyond_its_budget_names_the_setting(services, maxmemory):
    with pytest.raises(PlanError) as caught:
        plan(services, overrides={"redis": {"maxmemory": maxmemory}})
    message = str(caught.value)
    assert message.startswith(f"redis.maxmemory = {maxmemory} does not fit host 'h'")
    assert "stacktune plans" in message


def test_redis_maxmemory_within_reach_takes_memory_from_postgresql():
    planned = plan(("postgresql", "redis"))
    p = plan(("postgresql", "redis"), overrides={"redis": {"maxmemory": "1gb"}})
    assert p.services["redis"]["maxmemory"] == "1gb"
    assert pg_budget(p) < pg_budget(planned)
    assert p.hosts["h"].budget.total_bytes <= 4 * GiB


def test_server_side_cursors_with_transaction_pooling():
    with pytest.raises(PlanError, match=re.escape(
            "django.DISABLE_SERVER_SIDE_CURSORS = false cannot work with PgBouncer's "
            "transaction pooling")):
        plan(ALL, overrides={"django": {"DISABLE_SERVER_SIDE_CURSORS": "false"}})


def test_server_side_cursors_with_session_pooling_is_allowed_with_a_warning():
    # Pools as large as the app's connections: session pooling then queues nobody.
    p = plan(ALL, overrides={"django": {"DISABLE_SERVER_SIDE_CURSORS": "false"},
                             "pgbouncer": {"pool_mode": "session", "default_pool_size": "10"}})
    assert p.services["django"]["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert any("pool_mode = session" in w for w in p.warnings)


def test_django_pool_with_pgbouncer_pools_twice():
    with pytest.raises(PlanError,
                       match=re.escape("django.DATABASE_POOL with PgBouncer pools twice")):
        plan(ALL, overrides={"django": {"DATABASE_POOL": "true", "CONN_MAX_AGE": "0"}})


def test_django_pool_with_persistent_connections():
    with pytest.raises(PlanError,
                       match=re.escape("django.CONN_MAX_AGE = 600 with django.DATABASE_POOL")):
        plan(("postgresql", "gunicorn"), overrides={"django": {"CONN_MAX_AGE": "600"}})


def test_shared_buffers_override_beyond_the_budget():
    with pytest.raises(PlanError, match=re.escape("postgresql.shared_buffers = 5GB is not below")):
        plan(("postgresql",), overrides={"postgresql": {"shared_buffers": "5GB"}})


# --- Input validation -----------------------------------------------------------------------------


def _hosts(*specs):
    profile = HostProfile(memory_bytes=4 * GiB, cpus=2)
    return tuple(Host(name, profile, frozenset(services)) for name, services in specs)


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ((), "no hosts to plan"),
        (_hosts(("a", ["postgresql"]), ("a", ["redis"])), "host names must be unique"),
        (_hosts(("a", ["postgresql"]), ("b", ["postgresql"])), "postgresql is placed on 2 hosts"),
        (_hosts(("a", ["pgbouncer"])), "pgbouncer is placed but postgresql is not"),
        (_hosts(("a", ["postgresql", "mysql"])), "unknown service\\(s\\) mysql"),
    ],
)
def test_bad_placements(hosts, message):
    with pytest.raises(PlanError, match=message):
        plan_stack(StackInputs(hosts=hosts))


def test_non_positive_resources():
    with pytest.raises(PlanError, match="memory and CPUs must be positive"):
        plan_stack(StackInputs(hosts=(Host("a", HostProfile(0, 2), frozenset({"redis"})),)))


def test_expected_connections_above_the_app_tier_are_planned_for():
    p = plan(("postgresql", "gunicorn"), connections=500, memory=16 * GiB)
    assert p.chain.app_clients == 500
    assert pg(p, "max_connections") == "1013"          # x2 for graceful reloads + 13


def test_expected_connections_below_the_app_tier_warn():
    p = plan(("postgresql", "gunicorn"), connections=3)
    assert p.chain.app_clients == 10
    assert any("expected connections (3) is below" in w for w in p.warnings)


def test_expected_connections_without_an_app_tier():
    p = plan(("postgresql", "pgbouncer"), connections=40)
    assert p.chain.app_clients == 40
    assert p.services["pgbouncer"]["max_client_conn"] == "100"   # 40 x 2 + 10, floor 100


@pytest.mark.parametrize(("workload", "clients"), [(Workload.WEB, 200), (Workload.OLTP, 300),
                                                   (Workload.DW, 40), (Workload.MIXED, 100)])
def test_workload_default_clients_without_an_app_tier(workload, clients):
    p = plan(("postgresql",), memory=16 * GiB, workload=workload)
    assert p.chain.app_clients == clients
    assert pg(p, "max_connections") == str(clients + 13)   # no Gunicorn reloads to allow for


def test_direct_connections_beyond_the_cpus_warn():
    """Issue 10 item 5: 8 app hosts on 96 CPUs opened 3101 direct connections silently."""
    p = plan(("postgresql", "gunicorn"), memory=512 * GiB, cpus=96, app_hosts=7)
    assert p.chain.app_clients > 4 * (2 * 96 + 2)
    assert any("direct connections" in w and "place PgBouncer" in w for w in p.warnings)


def test_container_hosts_get_a_kernel_warning():
    profile = HostProfile(memory_bytes=4 * GiB, cpus=2, in_container=True)
    p = plan_stack(StackInputs(hosts=(Host("box", profile, frozenset(ALL)),)))
    assert any("host 'box' is a container" in w for w in p.warnings)


# --- The "done when" checks ---------------------------------------------------------------


def test_dedicated_4gib_host_is_close_to_pgtune():
    p = plan(("postgresql",), memory=4 * GiB, cpus=2, storage=Storage.SSD,
             workload=Workload.WEB, pg_version=15)
    tune = pgtune_settings(PgTuneInputs(db_version=15, total_memory_bytes=4 * GiB, cpus=2,
                                        storage="ssd", db_type="web"))
    for name in ("shared_buffers", "effective_cache_size", "maintenance_work_mem"):
        ours, theirs = pg_bytes(p, name), parse_pg_memory(tune[name])
        assert relative_gap(ours, theirs) <= 0.15, (name, pg(p, name), tune[name])
    ours, theirs = pg_bytes(p, "work_mem"), parse_pg_memory(tune["work_mem"])
    assert theirs / 2 <= ours <= theirs * 2, (pg(p, "work_mem"), tune["work_mem"])
    # PGTune's 200 connections do not fit 4MB work_mem under the memory model (2MB per
    # backend, 2 sorts + 1 hash per query): the guessed 200 is capped, with a warning.
    assert 100 < p.chain.app_clients < 200
    assert any("the web default of 200, capped at" in w for w in p.warnings)


def test_all_four_on_4gib_fit_and_pool_into_more_work_mem():
    together = plan(ALL, memory=4 * GiB, cpus=2)
    dedicated = plan(("postgresql",), memory=4 * GiB, cpus=2)
    budget = together.hosts["h"].budget
    assert budget.total_bytes <= 4 * GiB
    assert budget.gunicorn_workers == 5 and budget.redis_bytes > 0 and budget.pgbouncer_bytes > 0
    assert pg_bytes(together, "work_mem") > pg_bytes(dedicated, "work_mem")
    assert pg_bytes(together, "shared_buffers") < pg_bytes(dedicated, "shared_buffers")


# --- Multi-host -----------------------------------------------------------------------------------


def three_tier() -> Plan:
    def profile(memory, cpus, storage=Storage.SSD):
        return HostProfile(memory_bytes=memory, cpus=cpus, storage=storage)

    return plan_stack(StackInputs(hosts=(
        Host("db", profile(16 * GiB, 8, Storage.NVME), frozenset({"postgresql", "pgbouncer"})),
        Host("cache", profile(4 * GiB, 2), frozenset({"redis"})),
        Host("app1", profile(8 * GiB, 4), frozenset({"gunicorn"})),
        Host("app2", profile(1 * GiB, 4), frozenset({"gunicorn"})),
    )))


def test_multi_host_gunicorn_is_sized_for_the_smaller_app_host():
    p = three_tier()
    # app1 could run 2 x 4 + 1 = 9; app2's 1 GiB holds 5 workers of 160 MiB.
    assert p.services["gunicorn"]["workers"] == "5"
    assert p.hosts["app1"].budget.gunicorn_workers == 5
    assert p.hosts["app2"].budget.gunicorn_workers == 5


def test_multi_host_chain_covers_both_app_hosts():
    p = three_tier()
    assert p.chain.app_clients == 5 * 2 * 2
    assert p.services["pgbouncer"]["max_client_conn"] == "100"   # 5 x 2 x 2 x 2 + 10, floor
    # The pool is sized for the database host: 2 x 8 CPUs + 4 (NVMe), at most the clients.
    assert p.services["pgbouncer"]["default_pool_size"] == "20"
    assert "2 app host(s)" in p.reasons["pgbouncer.max_client_conn"]


def test_multi_host_budgets_are_per_host():
    p = three_tier()
    for name, host_plan in p.hosts.items():
        assert host_plan.budget.total_bytes <= host_plan.budget.usable_bytes, name
    assert p.hosts["db"].budget.postgresql_bytes == 16 * GiB - int(1.6 * GiB) - 32 * MiB
    assert p.hosts["cache"].budget.redis_bytes == 4 * GiB - int(0.4 * GiB)
    assert p.hosts["cache"].budget.postgresql_bytes == 0
    maxmemory = int(p.hosts["cache"].budget.redis_bytes * 0.8) // MiB
    assert p.services["redis"]["maxmemory"] == f"{maxmemory}mb"


def test_multi_host_views_hold_only_their_services():
    p = three_tier()
    keys = {name: set(p.host_view(name)) - {"host", "reasons", "warnings", "sysctl"}
            for name in p.hosts}
    assert keys == {"db": {"postgresql", "postgresql_app_role", "pgbouncer"}, "cache": {"redis"},
                    "app1": {"gunicorn", "django"}, "app2": {"gunicorn", "django"}}
    db_reasons = p.host_view("db")["reasons"]
    assert all(k.split(".")[0] in ("postgresql", "postgresql_app_role", "pgbouncer", "sysctl")
               for k in db_reasons)
    assert p.host_view("app1")["host"]["services"] == ["gunicorn"]


def test_multi_host_sysctl_differs_per_host():
    p = three_tier()
    db, cache, app = (p.hosts[n].sysctl for n in ("db", "cache", "app1"))
    assert db["vm.overcommit_memory"] == "2" and db["vm.overcommit_ratio"] == "90"
    assert cache["vm.overcommit_memory"] == "1" and "vm.overcommit_ratio" not in cache
    assert app == {"net.core.somaxconn": "4096"}
    assert "vm.nr_hugepages" in db          # 16 GiB: shared_buffers above 2 GB
    assert "vm.nr_hugepages" not in cache
    assert p.host_view("db")["sysctl"] != p.host_view("cache")["sysctl"]


def test_multi_host_django_points_at_pgbouncer_and_redis():
    d = three_tier().services["django"]
    assert d["DATABASE_PORT"] == 6432
    assert d["CACHE_BACKEND"] == "django_redis.cache.RedisCache"


# --- The plan as data -----------------------------------------------------------------------------


def test_plan_to_dict_is_json_and_deterministic():
    first, second = three_tier().to_dict(), three_tier().to_dict()
    assert first == second
    data = json.loads(json.dumps(first))
    assert set(data) >= {"inputs", "hosts", "postgresql", "pgbouncer", "redis", "gunicorn",
                         "django", "chain", "reasons", "warnings"}
    assert data["chain"]["max_connections"] == int(data["postgresql"]["max_connections"])
    assert data["hosts"]["db"]["budget"]["total_bytes"] <= 16 * GiB


def test_shared_buffers_value_is_formatted_like_postgresql():
    p = plan(("postgresql",), memory=4 * GiB)
    assert pg(p, "shared_buffers") == format_pg_memory(p.postgres.shared_buffers_bytes)


# --- Legal ranges of planned values (issue 10 item 1) ---------------------------------------------


def test_2000_cpus_keep_parallel_workers_within_postgresqls_limit():
    p = plan(("postgresql", "pgbouncer"), memory=4096 * GiB, cpus=2000)
    assert pg(p, "max_parallel_workers") == "1024"
    assert "capped at PostgreSQL's limit of 1024" in p.reasons["postgresql.max_parallel_workers"]
    assert pg(p, "max_worker_processes") == "1028"


def test_300000_direct_connections_are_refused_with_the_limit_and_the_fix():
    with pytest.raises(PlanError) as caught:
        plan(("postgresql",), memory=4096 * GiB, cpus=64, connections=300000)
    message = str(caught.value)
    assert "postgresql.max_connections = 300013" in message
    assert "262143" in message and "place PgBouncer" in message


def test_300000_pooled_connections_plan_legal_values():
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=16, connections=300000)
    assert int(pg(p, "max_connections")) <= 262143
    assert p.services["pgbouncer"]["max_client_conn"] == str(300000 * 2 + 10)


def test_background_worker_slots_are_kept_on_8_or_more_cpus():
    for cpus in (8, 16, 64):
        p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=cpus)
        spare = int(pg(p, "max_worker_processes")) - int(pg(p, "max_parallel_workers"))
        assert spare >= 4, cpus


@pytest.mark.parametrize(("cpus", "min_wal", "max_wal"), [
    (1, "256MB", "1GB"), (2, "512MB", "2GB"), (4, "1GB", "4GB"), (16, "4GB", "16GB"),
    (64, "4GB", "16GB")])
def test_wal_sizes_scale_with_the_cpus_that_write_it(cpus, min_wal, max_wal):
    p = plan(("postgresql", "pgbouncer"), memory=64 * GiB, cpus=cpus)
    assert (pg(p, "min_wal_size"), pg(p, "max_wal_size")) == (min_wal, max_wal)
    assert f"{cpus:g} CPUs" in p.reasons["postgresql.max_wal_size"]


def test_dw_on_ssd_keeps_a_low_random_page_cost_with_the_reason():
    p = plan(("postgresql",), workload=Workload.DW, storage=Storage.SSD)
    assert pg(p, "random_page_cost") == "1.1"
    assert "not the workload" in p.reasons["postgresql.random_page_cost"]

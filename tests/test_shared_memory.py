"""PostgreSQL's shared memory size (stacktune.shared_memory) against measured points.

Every vector was measured, not computed: on a scratch data directory (initdb),
``postgres -D DIR -C shared_memory_size -c NAME=VALUE ...`` and the same with
``-C shared_memory_size_in_huge_pages`` (PostgreSQL 15+ reports both without
starting), in Debian containers built from stacktune/debian:bookworm
(PostgreSQL 15.20-0+deb12u1) and stacktune/debian:trixie (PostgreSQL
17.12-0+deb13u1), Debian's packages, x86_64, on 2026-11-22. Settings not listed
are PostgreSQL's defaults (wal_buffers -1 = shared_buffers/32, at most 16MB).
"""

from __future__ import annotations

import re

import pytest

from stacktune.shared_memory import SharedMemorySettings, huge_pages_for, shared_memory_bytes
from stacktune.units import MiB

# (major version, settings given with -c, shared_memory_size in MB, ... in huge pages);
# "preload" is shared_preload_libraries=pg_stat_statements,auto_explain; "qualstats" adds
# pg_qualstats (2.0.4 on 15) to it.
MEASURED = [
    (15, "shared_buffers=128MB", 143, 72),
    (15, "shared_buffers=1GB", 1074, 537),
    (15, "shared_buffers=4GB", 4213, 2107),
    (15, "shared_buffers=16GB", 16771, 8386),
    (15, "shared_buffers=64GB", 67004, 33502),
    (15, "shared_buffers=1GB max_connections=10", 1070, 535),
    (15, "shared_buffers=1GB max_connections=100", 1074, 537),
    (15, "shared_buffers=1GB max_connections=1000", 1115, 558),
    (15, "shared_buffers=1GB max_connections=10000", 1547, 774),
    (15, "shared_buffers=1GB max_locks_per_transaction=64", 1074, 537),
    (15, "shared_buffers=1GB max_locks_per_transaction=256", 1083, 542),
    (15, "shared_buffers=1GB max_locks_per_transaction=1024", 1117, 559),
    (15, "shared_buffers=1GB max_prepared_transactions=0", 1074, 537),
    (15, "shared_buffers=1GB max_prepared_transactions=100", 1078, 539),
    (15, "shared_buffers=1GB max_prepared_transactions=1000", 1121, 561),
    (15, "shared_buffers=1GB max_pred_locks_per_transaction=64", 1074, 537),
    (15, "shared_buffers=1GB max_pred_locks_per_transaction=1024", 1101, 551),
    (15, "shared_buffers=1GB wal_buffers=1MB", 1059, 530),
    (15, "shared_buffers=1GB wal_buffers=16MB", 1074, 537),
    (15, "shared_buffers=1GB wal_buffers=64MB", 1122, 561),
    (15, "shared_buffers=1GB max_worker_processes=8", 1074, 537),
    (15, "shared_buffers=1GB max_worker_processes=64", 1077, 539),
    (15, "shared_buffers=1GB autovacuum_max_workers=3", 1074, 537),
    (15, "shared_buffers=1GB autovacuum_max_workers=10", 1075, 538),
    (15, "shared_buffers=1GB max_wal_senders=10", 1074, 537),
    (15, "shared_buffers=1GB max_wal_senders=40", 1076, 538),
    (15, "shared_buffers=1GB max_replication_slots=10", 1074, 537),
    (15, "shared_buffers=1GB max_replication_slots=40", 1074, 537),
    (15, "shared_buffers=1GB preload pg_stat_statements.max=5000", 1076, 538),
    (15, "shared_buffers=1GB preload pg_stat_statements.max=10000", 1078, 539),
    (15, "shared_buffers=1GB preload pg_stat_statements.max=50000", 1092, 546),
    (15, "shared_buffers=1GB preload qualstats pg_stat_statements.max=10000", 1079, 540),
    (15, "shared_buffers=128MB qualstats pg_qualstats.max=100000", 271, 136),
    (15, "shared_buffers=128MB qualstats pg_qualstats.max=500000", 781, 391),
    (15, "shared_buffers=1GB track_activity_query_size=4096", 1074, 537),
    (15, "shared_buffers=1GB preload pg_stat_statements.max=10000 "
         "max_connections=213 max_worker_processes=8 wal_buffers=16MB", 1083, 542),
    (15, "shared_buffers=16GB preload pg_stat_statements.max=10000 "
         "max_connections=2000 max_worker_processes=64 "
         "wal_buffers=16MB max_prepared_transactions=100 "
         "max_locks_per_transaction=256", 17039, 8520),
    (15, "shared_buffers=64GB preload pg_stat_statements.max=10000 "
         "max_connections=4000 max_worker_processes=96 "
         "wal_buffers=16MB autovacuum_max_workers=6", 67203, 33602),
    (15, "shared_buffers=2GB preload pg_stat_statements.max=10000 "
         "max_connections=61 max_worker_processes=8 wal_buffers=16MB "
         "autovacuum_max_workers=3", 2122, 1061),
    (17, "shared_buffers=128MB", 143, 72),
    (17, "shared_buffers=1GB", 1079, 540),
    (17, "shared_buffers=4GB", 4246, 2123),
    (17, "shared_buffers=16GB", 16816, 8408),
    (17, "shared_buffers=64GB", 67096, 33548),
    (17, "shared_buffers=1GB max_connections=10", 1075, 538),
    (17, "shared_buffers=1GB max_connections=100", 1079, 540),
    (17, "shared_buffers=1GB max_connections=1000", 1120, 560),
    (17, "shared_buffers=1GB max_connections=10000", 1553, 777),
    (17, "shared_buffers=1GB max_locks_per_transaction=64", 1079, 540),
    (17, "shared_buffers=1GB max_locks_per_transaction=256", 1088, 544),
    (17, "shared_buffers=1GB max_locks_per_transaction=1024", 1123, 562),
    (17, "shared_buffers=1GB max_prepared_transactions=0", 1079, 540),
    (17, "shared_buffers=1GB max_prepared_transactions=100", 1084, 542),
    (17, "shared_buffers=1GB max_prepared_transactions=1000", 1126, 563),
    (17, "shared_buffers=1GB max_pred_locks_per_transaction=64", 1079, 540),
    (17, "shared_buffers=1GB max_pred_locks_per_transaction=1024", 1106, 553),
    (17, "shared_buffers=1GB wal_buffers=1MB", 1064, 532),
    (17, "shared_buffers=1GB wal_buffers=16MB", 1079, 540),
    (17, "shared_buffers=1GB wal_buffers=64MB", 1127, 564),
    (17, "shared_buffers=1GB max_worker_processes=8", 1079, 540),
    (17, "shared_buffers=1GB max_worker_processes=64", 1082, 541),
    (17, "shared_buffers=1GB autovacuum_max_workers=3", 1079, 540),
    (17, "shared_buffers=1GB autovacuum_max_workers=10", 1080, 540),
    (17, "shared_buffers=1GB max_wal_senders=10", 1079, 540),
    (17, "shared_buffers=1GB max_wal_senders=40", 1081, 541),
    (17, "shared_buffers=1GB max_replication_slots=10", 1079, 540),
    (17, "shared_buffers=1GB max_replication_slots=40", 1079, 540),
    (17, "shared_buffers=1GB preload pg_stat_statements.max=5000", 1081, 541),
    (17, "shared_buffers=1GB preload pg_stat_statements.max=10000", 1083, 542),
    (17, "shared_buffers=1GB preload pg_stat_statements.max=50000", 1100, 550),
    (17, "shared_buffers=1GB track_activity_query_size=4096", 1080, 540),
    (17, "shared_buffers=1GB preload pg_stat_statements.max=10000 "
         "max_connections=213 max_worker_processes=8 wal_buffers=16MB", 1089, 545),
    (17, "shared_buffers=16GB preload pg_stat_statements.max=10000 "
         "max_connections=2000 max_worker_processes=64 "
         "wal_buffers=16MB max_prepared_transactions=100 "
         "max_locks_per_transaction=256", 17084, 8542),
    (17, "shared_buffers=64GB preload pg_stat_statements.max=10000 "
         "max_connections=4000 max_worker_processes=96 "
         "wal_buffers=16MB autovacuum_max_workers=6", 67297, 33649),
    (17, "shared_buffers=2GB preload pg_stat_statements.max=10000 "
         "max_connections=61 max_worker_processes=8 wal_buffers=16MB "
         "autovacuum_max_workers=3", 2137, 1069),
]


def _bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(MB|GB|kB)?", text).groups()
    return int(number) * {"kB": 1024, "MB": MiB, "GB": 1024 * MiB, None: 1}[unit]


def settings_of(text: str) -> SharedMemorySettings:
    given = dict(item.split("=", 1) if "=" in item else (item, "") for item in text.split())
    shared = _bytes(given.get("shared_buffers", "128MB"))
    wal = (_bytes(given["wal_buffers"]) if "wal_buffers" in given
           else min(max(shared // 32, 64 * 1024), 16 * MiB))
    preloaded = "preload" in given
    return SharedMemorySettings(
        shared_buffers_bytes=shared, wal_buffers_bytes=wal,
        max_connections=int(given.get("max_connections", 100)),
        autovacuum_max_workers=int(given.get("autovacuum_max_workers", 3)),
        max_worker_processes=int(given.get("max_worker_processes", 8)),
        max_wal_senders=int(given.get("max_wal_senders", 10)),
        max_prepared_transactions=int(given.get("max_prepared_transactions", 0)),
        max_locks_per_transaction=int(given.get("max_locks_per_transaction", 64)),
        max_pred_locks_per_transaction=int(given.get("max_pred_locks_per_transaction", 64)),
        pg_stat_statements_max=int(given.get("pg_stat_statements.max", 5000)) if preloaded else 0,
        pg_qualstats_max=(int(given.get("pg_qualstats.max", 1000)) if "qualstats" in given
                          else 0),
    )


@pytest.mark.parametrize(("version", "given", "size_mb", "pages"), MEASURED)
def test_huge_pages_cover_what_postgresql_asks_for(version, given, size_mb, pages):
    planned = huge_pages_for(shared_memory_bytes(settings_of(given), version))
    # Never fewer pages than PostgreSQL needs (huge_pages=try would silently fall
    # back), and at most a few too many (reserved pages are locked away from the OS).
    assert pages <= planned <= pages * 1.002 + 5


@pytest.mark.parametrize(("version", "given", "size_mb", "pages"), MEASURED)
def test_size_within_a_few_mb_of_postgresqls(version, given, size_mb, pages):
    size = shared_memory_bytes(settings_of(given), version) / MiB
    assert size_mb - 1 <= size <= size_mb * 1.002 + 9


def test_64gb_needs_more_than_shared_buffers_plus_64mb():
    """Issue 10: the old rule (shared_buffers + wal_buffers + 64MB) reserved too few pages."""
    old_rule = (64 * 1024 * MiB + 16 * MiB + 64 * MiB) // (2 * MiB)
    measured = 33602                     # PG 15, 64GB, 4000 connections, pg_stat_statements
    assert old_rule < measured
    given = ("shared_buffers=64GB preload pg_stat_statements.max=10000 max_connections=4000 "
             "max_worker_processes=96 wal_buffers=16MB autovacuum_max_workers=6")
    assert huge_pages_for(shared_memory_bytes(settings_of(given), 15)) >= measured


def test_too_few_reserved_huge_pages_are_refused_with_on_and_reported_with_try():
    """huge_pages=on with fewer pages than the segment needs would not start; with try the
    reserved pages would sit unused."""
    import pytest

    from stacktune.model import Host, HostProfile, PlanError, StackInputs, Storage, Workload
    from stacktune.plan import plan_stack
    from stacktune.units import GiB

    profile = HostProfile(memory_bytes=64 * GiB, cpus=8, storage=Storage.SSD)
    host = Host("db1", profile, frozenset({"postgresql"}))

    def plan(overrides):
        return plan_stack(StackInputs(hosts=(host,), workload=Workload.WEB, pg_version=15,
                                      overrides=overrides))

    needed = int(plan({}).hosts["db1"].sysctl["vm.nr_hugepages"])
    with pytest.raises(PlanError, match=f"reserve at least {needed}"):
        plan({"postgresql": {"huge_pages": "on"}, "sysctl": {"vm.nr_hugepages": "100"}})
    warned = plan({"sysctl": {"vm.nr_hugepages": "100"}}).warnings
    assert any(f"reserve at least {needed}" in w and "huge_pages = try" in w for w in warned)
    assert not any("nr_hugepages" in w for w in plan({}).warnings)

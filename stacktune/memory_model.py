"""One memory model of PostgreSQL, used to plan work_mem and to check every plan.

The worst case PostgreSQL's settings allow, in bytes:

    shared      the main shared memory segment (stacktune.shared_memory): shared_buffers,
                WAL buffers, lock tables (max_locks_per_transaction,
                max_pred_locks_per_transaction, max_prepared_transactions), per-backend
                slots, pg_stat_statements
    backends    BACKEND_OVERHEAD_BYTES of private memory (catalog caches, stacks) per
                process: max_connections + max_worker_processes + autovacuum workers
    queries     every query process (active backends + their parallel workers) running
                SORT_NODES_PER_QUERY sorts of work_mem and HASH_NODES_PER_QUERY hashes of
                work_mem x hash_mem_multiplier at once
    maintenance autovacuum_max_workers x autovacuum_work_mem (maintenance_work_mem when
                -1; at most 1GB before PostgreSQL 17) + one maintenance_work_mem for a
                manual VACUUM / CREATE INDEX

The planner sizes work_mem so that the total fits PostgreSQL's budget; the
invariant check applies the same function to the final values, overrides
included. temp_buffers (only for temporary tables, which Django does not use) are
left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stacktune import pg_params
from stacktune.shared_memory import (
    DEFAULT_MAX_WAL_SENDERS,
    QUALSTATS_MAX_DEFAULT,
    SharedMemorySettings,
    shared_memory_bytes,
)
from stacktune.units import GiB, KiB, MiB

# Private memory of an idle backend (catalog caches, stacks), not counted in work_mem.
BACKEND_OVERHEAD_BYTES = 2 * MiB
# A query's plan may hold this many sorts and hashes at once (PGTune's factor 3: two
# sorts and one hash, the hash at work_mem x hash_mem_multiplier).
SORT_NODES_PER_QUERY = 2
HASH_NODES_PER_QUERY = 1
# One manual VACUUM, CREATE INDEX or restore at a time besides autovacuum.
MANUAL_MAINTENANCE_OPERATIONS = 1
# Before PostgreSQL 17 vacuum used at most 1GB for dead tuples, whatever the setting.
VACUUM_MEMORY_CAP_BEFORE_17 = 1 * GiB
PG_DEFAULT_HASH_MEM_MULTIPLIER = {13: 1.0, 14: 1.0}   # 2.0 from PostgreSQL 15


@dataclass(frozen=True)
class PostgresMemory:
    shared_bytes: int
    backends_bytes: int
    queries_bytes: int
    maintenance_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.shared_bytes + self.backends_bytes + self.queries_bytes \
            + self.maintenance_bytes

    def fixed_bytes(self) -> int:
        """Everything but the query memory: what work_mem cannot shrink."""
        return self.shared_bytes + self.backends_bytes + self.maintenance_bytes


def work_mem_factor(hash_mem_multiplier: float) -> float:
    """work_mem units one query process may hold: sorts + hashes x hash_mem_multiplier."""
    return SORT_NODES_PER_QUERY + HASH_NODES_PER_QUERY * hash_mem_multiplier


def _bytes(pg: Mapping[str, object], name: str, version: int, default: str) -> int:
    value = str(pg.get(name, default))
    unit = pg_params.param_for(name, version).unit
    scale = {"B": 1, "kB": KiB, "8kB": 8 * KiB, "MB": MiB}.get(unit or "B", 1)
    return int(pg_params.value_in_base_units(name, value, version) * scale)


def _int(pg: Mapping[str, object], name: str, default: int) -> int:
    return int(str(pg.get(name, default)).strip())


def shared_memory_settings(pg: Mapping[str, object], version: int) -> SharedMemorySettings:
    """The settings that size the shared segment, read from a plan's postgresql section."""
    shared = _bytes(pg, "shared_buffers", version, "128MB")
    wal = _bytes(pg, "wal_buffers", version, "-1")
    if wal < 0:   # -1: shared_buffers / 32 between 64kB and one 16MB segment
        wal = min(max(shared // 32, 64 * KiB), 16 * MiB)
    libraries = str(pg.get("shared_preload_libraries", "")).replace(" ", "").split(",")
    preloaded = "pg_stat_statements" in libraries
    return SharedMemorySettings(
        shared_buffers_bytes=shared, wal_buffers_bytes=wal,
        max_connections=_int(pg, "max_connections", 100),
        autovacuum_max_workers=_int(pg, "autovacuum_max_workers", 3),
        max_worker_processes=_int(pg, "max_worker_processes", 8),
        max_wal_senders=_int(pg, "max_wal_senders", DEFAULT_MAX_WAL_SENDERS),
        max_prepared_transactions=_int(pg, "max_prepared_transactions", 0),
        max_locks_per_transaction=_int(pg, "max_locks_per_transaction", 64),
        max_pred_locks_per_transaction=_int(pg, "max_pred_locks_per_transaction", 64),
        pg_stat_statements_max=_int(pg, "pg_stat_statements.max", 5000) if preloaded else 0,
        pg_qualstats_max=(_int(pg, "pg_qualstats.max", QUALSTATS_MAX_DEFAULT)
                          if "pg_qualstats" in libraries else 0),
    )


def hash_mem_multiplier(pg: Mapping[str, object], version: int) -> float:
    default = PG_DEFAULT_HASH_MEM_MULTIPLIER.get(version, 2.0)
    return float(str(pg.get("hash_mem_multiplier", default)))


def postgres_memory(pg: Mapping[str, object], version: int, concurrency: int) -> PostgresMemory:
    """The worst case of a postgresql section's settings, for ``concurrency`` query processes."""
    settings = shared_memory_settings(pg, version)
    processes = (settings.max_connections + settings.max_worker_processes
                 + settings.autovacuum_max_workers)
    work_mem = _bytes(pg, "work_mem", version, "4MB")
    maintenance = _bytes(pg, "maintenance_work_mem", version, "64MB")
    autovacuum = _bytes(pg, "autovacuum_work_mem", version, "-1")
    if autovacuum < 0:
        autovacuum = maintenance
    if version < 17:
        autovacuum = min(autovacuum, VACUUM_MEMORY_CAP_BEFORE_17)
    return PostgresMemory(
        shared_bytes=shared_memory_bytes(settings, version),
        backends_bytes=processes * BACKEND_OVERHEAD_BYTES,
        queries_bytes=int(concurrency * work_mem_factor(hash_mem_multiplier(pg, version))
                          * work_mem),
        maintenance_bytes=(settings.autovacuum_max_workers * autovacuum
                           + MANUAL_MAINTENANCE_OPERATIONS * maintenance),
    )

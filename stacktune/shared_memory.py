"""PostgreSQL's main shared memory segment, computed the way PostgreSQL sizes it.

PostgreSQL allocates one segment at start (ipci.c, CalculateShmemSize): the buffer
pool and its descriptors, WAL buffers, one PGPROC and friends per backend slot,
the heavyweight lock table (max_locks_per_transaction x (MaxBackends +
max_prepared_transactions)), the predicate lock table (the same with
max_pred_locks_per_transaction), and what preloaded libraries request
(pg_stat_statements: one entry per pg_stat_statements.max). With huge pages the
whole segment must fit in them, so vm.nr_hugepages follows this size, not
shared_buffers alone (shared_buffers is about 98% of it).

The coefficients were measured, not guessed: ``postgres -C shared_memory_size``
(PostgreSQL 15+) on a scratch data directory, PostgreSQL 15.x of Debian 12 and
17.x of Debian 13, x86_64, 8 kB blocks, varying one setting at a time, then
fitted by least squares and rounded up. The measured points are the vectors of
tests/test_shared_memory.py. PostgreSQL 13 and 14 cannot report the size; their
structures are those of 15. 16 follows 15, 18 follows 17 (not measured here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacktune.units import KiB, MiB

HUGE_PAGE_BYTES = 2 * MiB
BLOCK_BYTES = 8 * KiB
# PostgreSQL's defaults for the settings stacktune does not plan.
DEFAULT_MAX_WAL_SENDERS = 10
DEFAULT_AUTOVACUUM_WORKER_SLOTS_18 = 16


# Least-squares fits of the measured points (PostgreSQL 15 and 17 agree within 1% on
# each), rounded up; the base carries the fits' largest residual (2.7 MB) so the
# result is never below what PostgreSQL asks for.
BASE_BYTES = 4 * MiB                 # fixed structures, plus the residual margin
PER_BUFFER_BYTES = 8381              # 8 kB page + descriptor, I/O condition variable, mapping
PER_SLRU_BLOCK_BYTES = 33500         # the SLRU caches PostgreSQL sizes from shared_buffers
PER_BACKEND_SLOT_BYTES = 8450        # PGPROC and per-backend arrays, per slot
PER_LOCK_SLOT_BYTES = 412            # one entry of the heavyweight lock table
PER_PRED_LOCK_SLOT_BYTES = 245       # one entry of the predicate lock table
PER_PGSS_ENTRY_BYTES = 458           # one pg_stat_statements entry (texts live in a file)
# One pg_qualstats entry (predicate and constant), measured with `postgres -C
# shared_memory_size` on PostgreSQL 15 + pg_qualstats 2.0.4: pg_qualstats.max 100000 -> 271 MB,
# 500000 -> 781 MB. The default max (1000) costs 1.3 MB.
PER_QUALSTATS_ENTRY_BYTES = 1337
QUALSTATS_MAX_DEFAULT = 1000


def slru_blocks(shared_buffers_bytes: int, version: int) -> int:
    """Blocks of each SLRU cache sized from shared_buffers: NBuffers/512, bounded.

    Up to 16 PostgreSQL caps them at 128 blocks (at least 4); 17 made them settings
    whose default ('0' = auto) is NBuffers/512 between 16 and 1024 blocks.
    """
    blocks = shared_buffers_bytes // BLOCK_BYTES // 512
    return min(1024, max(16, blocks)) if version >= 17 else min(128, max(4, blocks))


@dataclass(frozen=True)
class SharedMemorySettings:
    """The settings that size the segment; defaults are PostgreSQL's."""

    shared_buffers_bytes: int
    wal_buffers_bytes: int
    max_connections: int = 100
    autovacuum_max_workers: int = 3
    max_worker_processes: int = 8
    max_wal_senders: int = DEFAULT_MAX_WAL_SENDERS
    max_prepared_transactions: int = 0
    max_locks_per_transaction: int = 64
    max_pred_locks_per_transaction: int = 64
    pg_stat_statements_max: int = 0      # 0: pg_stat_statements not preloaded
    pg_qualstats_max: int = 0            # 0: pg_qualstats not preloaded


def max_backends(s: SharedMemorySettings, version: int) -> int:
    """PostgreSQL's MaxBackends: connections + autovacuum (+ launcher) + workers + WAL senders.

    From 18 the autovacuum part is autovacuum_worker_slots (default 16), not
    autovacuum_max_workers.
    """
    autovacuum = (max(DEFAULT_AUTOVACUUM_WORKER_SLOTS_18, s.autovacuum_max_workers)
                  if version >= 18 else s.autovacuum_max_workers)
    return s.max_connections + autovacuum + 1 + s.max_worker_processes + s.max_wal_senders


def shared_memory_bytes(s: SharedMemorySettings, version: int) -> int:
    """The size of PostgreSQL's main shared memory segment (shared_memory_size)."""
    slots = max_backends(s, version) + s.max_prepared_transactions
    return (BASE_BYTES
            + s.shared_buffers_bytes // BLOCK_BYTES * PER_BUFFER_BYTES
            + slru_blocks(s.shared_buffers_bytes, version) * PER_SLRU_BLOCK_BYTES
            + s.wal_buffers_bytes
            + slots * PER_BACKEND_SLOT_BYTES
            + slots * s.max_locks_per_transaction * PER_LOCK_SLOT_BYTES
            + slots * s.max_pred_locks_per_transaction * PER_PRED_LOCK_SLOT_BYTES
            + s.pg_stat_statements_max * PER_PGSS_ENTRY_BYTES
            + s.pg_qualstats_max * PER_QUALSTATS_ENTRY_BYTES)


def huge_pages_for(num_bytes: int, page_bytes: int = HUGE_PAGE_BYTES) -> int:
    """Huge pages that hold num_bytes (shared_memory_size_in_huge_pages rounds up too)."""
    return math.ceil(num_bytes / page_bytes)

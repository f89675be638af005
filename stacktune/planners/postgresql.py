"""PostgreSQL settings, sized on PostgreSQL's own memory budget and the pooled backend count.

Sources: PostgreSQL docs (runtime-config-*), the PostgreSQL wiki "Tuning Your
PostgreSQL Server", and PGTune's formulas (shared/reference/PGTUNE.md) where
stacktune agrees with them. Each rule is a small function named for what it
returns; all arithmetic is in bytes, formatted at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacktune.chain import ConnectionChain, pool_size_for
from stacktune.memory_model import (
    BACKEND_OVERHEAD_BYTES,
    hash_mem_multiplier,
    postgres_memory,
    work_mem_factor,
)
from stacktune.model import HostProfile, PlanError, Storage, Workload
from stacktune.section import Section
from stacktune.units import GiB, KiB, MiB, format_pg_duration, format_pg_memory, human_bytes

SHARED_BUFFERS_FRACTION = 0.25          # PG docs: "a reasonable starting value is 25%"
EFFECTIVE_CACHE_FRACTION = 0.75
MAINTENANCE_WORK_MEM_DIVISOR = {Workload.WEB: 16, Workload.OLTP: 16, Workload.MIXED: 16,
                                Workload.DW: 8}
MAINTENANCE_WORK_MEM_CAP = 2 * GiB
# Before PostgreSQL 17 vacuum could not use more than 1 GB for dead tuples.
AUTOVACUUM_WORK_MEM_CAP = 1 * GiB
AUTOVACUUM_WORK_MEM_FLOOR = 16 * MiB
# All autovacuum workers together take at most this share of the budget.
AUTOVACUUM_MEMORY_FRACTION = 0.125
WAL_BUFFERS_CAP = 16 * MiB              # one WAL segment, as PostgreSQL's own -1 does
WAL_BUFFERS_FLOOR = 32 * KiB
WORK_MEM_FLOOR = 4 * MiB                # PostgreSQL's default
WORK_MEM_MIN = 64 * KiB                 # PostgreSQL's minimum
# Direct connections that leave less than this per query process are refused: every
# sort or hash of more than a few hundred rows would spill to disk. Between it and
# PostgreSQL's 4MB default the plan warns and names the cause.
DIRECT_WORK_MEM_REFUSE = 256 * KiB
# Direct connections beyond this many times the pool PgBouncer would use are warned
# about: most of them can only wait inside PostgreSQL.
DIRECT_ACTIVE_PER_POOL = 4
WORK_MEM_CAP = {Workload.WEB: 256 * MiB, Workload.OLTP: 256 * MiB, Workload.MIXED: 512 * MiB,
                Workload.DW: 2 * GiB}
WORK_MEM_WORKLOAD_DIVISOR = {Workload.WEB: 1, Workload.OLTP: 1, Workload.MIXED: 2,
                             Workload.DW: 2}
HUGE_PAGES_FROM_SHARED_BUFFERS = 2 * GiB
MAX_WORKER_PROCESSES_FLOOR = 8          # PostgreSQL's default; extensions need slots
# Background-worker slots kept free of parallel query: logical replication
# (max_logical_replication_workers defaults to 4) and extensions' workers.
BACKGROUND_WORKER_RESERVE = 4
MAX_PARALLEL_WORKER_LIMIT = 1024        # PostgreSQL's MAX_PARALLEL_WORKER_LIMIT
PARALLEL_PER_GATHER_CAP = {Workload.WEB: 2, Workload.OLTP: 2, Workload.MIXED: 4, Workload.DW: 8}
PARALLEL_MAINTENANCE_CAP = 4
# max_wal_size for a 4-CPU host; scaled with the CPUs that generate WAL (see wal_sizes).
MAX_WAL_SIZE = {Workload.WEB: 4 * GiB, Workload.OLTP: 8 * GiB, Workload.DW: 16 * GiB,
                Workload.MIXED: 4 * GiB}
WAL_REFERENCE_CPUS = 4
WAL_SCALE_MIN, WAL_SCALE_MAX = 0.25, 4.0
MAX_WAL_SIZE_FLOOR = 1 * GiB
MIN_WAL_OF_MAX = 4                      # min_wal_size = max_wal_size / 4
RANDOM_PAGE_COST = {Storage.HDD: "4", Storage.SSD: "1.1", Storage.NVME: "1.1", Storage.SAN: "1.1"}
EFFECTIVE_IO_CONCURRENCY = {Storage.HDD: 2, Storage.SSD: 200, Storage.SAN: 300, Storage.NVME: 1000}
AUTOVACUUM_COST_LIMIT = {Storage.HDD: 400, Storage.SSD: 2000, Storage.NVME: 2000,
                         Storage.SAN: 2000}
SLOW_STATEMENT_SECONDS = {Workload.WEB: 0.25, Workload.OLTP: 0.1, Workload.MIXED: 0.5,
                          Workload.DW: 5.0}
AUTO_EXPLAIN_FACTOR = 4                 # plans only for the slowest statements
PG_STAT_STATEMENTS_MAX = 10000
# pg_qualstats records the predicates of a sample of statements (pg_qualstats.sample_rate,
# 1 = every statement; its default -1 means 1/max_connections). A web page repeats the same
# few statements thousands of times an hour: 1 in 100 still records each of them and keeps
# the per-statement cost off the fast path. A warehouse runs few long statements: record all.
QUALSTATS_SAMPLE_RATE = {Workload.WEB: "0.01", Workload.OLTP: "0.01", Workload.MIXED: "0.01",
                         Workload.DW: "1"}


@dataclass(frozen=True)
class PostgresFigures:
    """The numbers other planners and the validator need, before formatting."""

    budget_bytes: int
    shared_buffers_bytes: int
    work_mem_bytes: int
    maintenance_work_mem_bytes: int
    autovacuum_work_mem_bytes: int
    autovacuum_max_workers: int
    max_parallel_workers: int
    parallel_workers_per_gather: int
    concurrency: int
    huge_pages: bool
    wal_buffers_bytes: int
    # What the memory model leaves each query process, before caps and floors.
    query_bytes_per_process: int = 0


def round_down_mib(num_bytes: float) -> int:
    """Whole MiB (whole kB below 1 MiB), so settings read as '245MB', not '251658kB'."""
    if num_bytes >= MiB:
        return int(num_bytes) // MiB * MiB
    return int(num_bytes) // KiB * KiB


def shared_buffers_bytes(budget_bytes: int) -> int:
    """25% of PostgreSQL's memory budget (PG docs, runtime-config-resource)."""
    return round_down_mib(budget_bytes * SHARED_BUFFERS_FRACTION)


def effective_cache_size_bytes(budget_bytes: int) -> int:
    """75% of the budget: shared_buffers plus the page cache PostgreSQL can expect."""
    return round_down_mib(budget_bytes * EFFECTIVE_CACHE_FRACTION)


def maintenance_work_mem_bytes(budget_bytes: int, workload: Workload) -> int:
    """Budget / 16 (dw: / 8), capped at 2 GiB (PGTune's rule, with a lower cap)."""
    return min(round_down_mib(budget_bytes / MAINTENANCE_WORK_MEM_DIVISOR[workload]),
               MAINTENANCE_WORK_MEM_CAP)


def autovacuum_max_workers(cpus: float) -> int:
    """3 (PostgreSQL's default) up to 15 CPUs, then one more per 4 CPUs, at most 6."""
    return max(3, min(6, int(cpus) // 4))


def autovacuum_work_mem_bytes(budget_bytes: int, workers: int, maintenance_bytes: int) -> int:
    """Workers together within 1/8 of the budget; each at most maintenance_work_mem, 1 GiB."""
    share = round_down_mib(budget_bytes * AUTOVACUUM_MEMORY_FRACTION / workers)
    return min(max(share, AUTOVACUUM_WORK_MEM_FLOOR), maintenance_bytes, AUTOVACUUM_WORK_MEM_CAP)


def wal_buffers_bytes(shared_buffers: int) -> int:
    """3% of shared_buffers between 32 kB and 16 MB (PGTune; like PostgreSQL's -1)."""
    value = int(shared_buffers * 3 / 100) // KiB * KiB
    if 14 * MiB < value < WAL_BUFFERS_CAP:
        value = WAL_BUFFERS_CAP
    return max(min(value, WAL_BUFFERS_CAP), WAL_BUFFERS_FLOOR)


def parallel_workers(cpus: float, workload: Workload) -> tuple[int, int, int, int]:
    """(max_worker_processes, max_parallel_workers, per_gather, maintenance).

    Parallel workers are extra backends: never more than the CPUs, and for
    short web/OLTP queries at most 2 per Gather, so that pooled backends do
    not multiply into a CPU storm.
    """
    whole_cpus = max(1, int(cpus))
    max_parallel = min(whole_cpus, MAX_PARALLEL_WORKER_LIMIT)
    per_gather = min(whole_cpus // 2, PARALLEL_PER_GATHER_CAP[workload])
    maintenance = min(whole_cpus // 2, PARALLEL_MAINTENANCE_CAP)
    worker_processes = max(MAX_WORKER_PROCESSES_FLOOR, max_parallel + BACKGROUND_WORKER_RESERVE)
    return worker_processes, max_parallel, per_gather, maintenance


def wal_sizes(cpus: float, workload: Workload) -> tuple[int, int]:
    """(min_wal_size, max_wal_size): the workload's figure for 4 CPUs, scaled with the CPUs.

    WAL written between two timed checkpoints grows with the write throughput, which
    grows with the CPUs that run the writers; a small host neither writes 8GB in 15
    minutes nor has the disk to keep it. Scale between 1/4 and 4x, max_wal_size at
    least 1GB (PostgreSQL's default), min_wal_size a quarter of it for recycling.
    """
    scale = min(max(cpus / WAL_REFERENCE_CPUS, WAL_SCALE_MIN), WAL_SCALE_MAX)
    max_wal = max(int(MAX_WAL_SIZE[workload] * scale) // GiB * GiB, MAX_WAL_SIZE_FLOOR)
    min_wal = max(max_wal // MIN_WAL_OF_MAX // (256 * MiB) * (256 * MiB), 256 * MiB)
    return min_wal, max_wal


def query_concurrency(chain: ConnectionChain, max_parallel: int, per_gather: int) -> int:
    """Processes that can run query nodes at once: active backends plus their parallel workers."""
    backends = chain.active_backends
    return backends + min(max_parallel, backends * per_gather)


def work_mem_bytes(free_bytes: int, concurrency: int, factor: float,
                   workload: Workload) -> int:
    """Memory left after shared memory, backends and maintenance (the memory model's fixed
    part), split over the processes that really run queries, each holding ``factor``
    work_mem (2 sorts + 1 hash x hash_mem_multiplier), halved for mixed and dw.

    At least PostgreSQL's default 4MB as long as that fits the model; below it,
    the largest value that fits (never under PostgreSQL's minimum 64kB: the
    caller refuses such a plan and names its real cause).
    """
    per_process = free_bytes / max(concurrency, 1) / factor
    per_node = per_process / WORK_MEM_WORKLOAD_DIVISOR[workload]
    floor = min(WORK_MEM_FLOOR, per_process)
    value = max(min(max(per_node, floor), WORK_MEM_CAP[workload]), WORK_MEM_MIN)
    return round_down_mib(value) if value >= MiB else int(value) // KiB * KiB


def plan_postgresql(
    *,
    budget_bytes: int,
    profile: HostProfile,
    workload: Workload,
    version: int,
    chain: ConnectionChain,
    shared_buffers_override: int | None = None,
    warnings: list[str] | None = None,
    clients_are_estimate: bool = False,
    adjustable: bool = False,
) -> tuple[Section, PostgresFigures]:
    """``adjustable``: the caller shrinks the chain and plans again rather than have this
    refuse a plan whose query memory is too small."""
    warnings = warnings if warnings is not None else []
    s = Section("postgresql")
    budget_text = human_bytes(budget_bytes)
    cpus = profile.cpus

    s.set("max_connections", str(chain.max_connections),
          _max_connections_reason(chain))
    s.set("superuser_reserved_connections", str(chain.superuser_reserved_connections),
          "slots kept for superusers when the application has taken every other one")
    s.set("password_encryption", "scram-sha-256",
          "SCRAM, the only password method stacktune accepts (md5 is deprecated since PG 18)")

    # Memory
    shared = shared_buffers_override or shared_buffers_bytes(budget_bytes)
    s.set("shared_buffers", format_pg_memory(shared),
          f"25% of PostgreSQL's {budget_text} budget (PostgreSQL docs' starting point)")
    s.set("effective_cache_size", format_pg_memory(effective_cache_size_bytes(budget_bytes)),
          f"75% of the {budget_text} budget: shared_buffers plus the page cache the planner "
          "can count on")
    maintenance = maintenance_work_mem_bytes(budget_bytes, workload)
    s.set("maintenance_work_mem", format_pg_memory(maintenance),
          f"budget / {MAINTENANCE_WORK_MEM_DIVISOR[workload]}, at most 2GB: faster VACUUM, "
          "CREATE INDEX and restores")
    av_workers = autovacuum_max_workers(cpus)
    av_mem = autovacuum_work_mem_bytes(budget_bytes, av_workers, maintenance)
    s.set("autovacuum_work_mem", format_pg_memory(av_mem),
          f"{av_workers} workers x this stay within 1/8 of the budget (otherwise each "
          "would take maintenance_work_mem)")
    worker_processes, max_parallel, per_gather, maintenance_parallel = parallel_workers(
        cpus, workload)
    concurrency = query_concurrency(chain, max_parallel, per_gather)
    # Sized last (below), from the memory model of every other planned value.
    s.set("work_mem", format_pg_memory(WORK_MEM_FLOOR), "")
    s.set("hash_mem_multiplier", "2.0",
          "hash joins and aggregates may use 2 x work_mem (the default from PG 15, "
          "set for 13/14 too)")
    wal_buffers = wal_buffers_bytes(shared)
    s.set("wal_buffers", format_pg_memory(wal_buffers),
          "3% of shared_buffers, at most one 16MB WAL segment")
    huge = shared >= HUGE_PAGES_FROM_SHARED_BUFFERS
    s.set("huge_pages", "try" if huge else "off",
          "shared_buffers >= 2GB: huge pages cut page-table memory per backend"
          if huge else "shared_buffers below 2GB: huge pages gain little")

    # WAL and checkpoints
    s.set("checkpoint_timeout", "15min",
          "fewer checkpoints, so fewer full-page writes; crash recovery stays short")
    s.set("checkpoint_completion_target", "0.9", "spread checkpoint writes over the interval")
    min_wal, max_wal = wal_sizes(cpus, workload)
    s.set("min_wal_size", format_pg_memory(min_wal),
          "a quarter of max_wal_size kept for recycling, so bursts do not create new segments")
    s.set("max_wal_size", format_pg_memory(max_wal),
          f"checkpoints by time, not by WAL volume: {format_pg_memory(MAX_WAL_SIZE[workload])} "
          f"for {workload.value} writes on {WAL_REFERENCE_CPUS} CPUs, scaled with the "
          f"{cpus:g} CPUs that generate WAL (1/4 to 4x, at least 1GB)")
    if version >= 15:
        s.set("wal_compression", "lz4", "cheap compression of full-page images (PG 15+)")
    else:
        s.set("wal_compression", "on", "pglz compression of full-page images (lz4 needs PG 15)")

    # Planner
    s.set("random_page_cost", RANDOM_PAGE_COST[profile.storage],
          f"{profile.storage.value}: random reads cost "
          f"{'4x' if profile.storage is Storage.HDD else 'about the same as'} sequential ones"
          + ("; the device sets it, not the workload: PGTune's 4 for dw assumes data larger "
             "than RAM on disks that seek, which an SSD does not"
             if workload is Workload.DW and profile.storage is not Storage.HDD else ""))
    io_concurrency = EFFECTIVE_IO_CONCURRENCY[profile.storage]
    s.set("effective_io_concurrency", str(io_concurrency),
          f"concurrent I/Os a {profile.storage.value} device serves well")
    s.set("maintenance_io_concurrency", str(io_concurrency),
          "same device, same concurrency for VACUUM and ANALYZE prefetch")
    s.set("default_statistics_target", "500" if workload is Workload.DW else "100",
          "finer statistics for analytic queries" if workload is Workload.DW
          else "PostgreSQL's default suits short queries")
    s.set("jit", "on" if workload is Workload.DW else "off",
          "JIT pays off for long analytic queries" if workload is Workload.DW
          else "JIT compilation costs more than it saves on short queries")
    if version >= 18:
        s.set("io_method", "worker",
              "PG 18 asynchronous I/O through worker processes; io_uring is often blocked "
              "by container seccomp profiles")
        s.set("io_workers", str(min(32, max(3, int(cpus) // 4))),
              "one I/O worker per 4 CPUs, 3 to 32")

    # Parallelism
    s.set("max_worker_processes", str(worker_processes),
          f"max_parallel_workers + {BACKGROUND_WORKER_RESERVE} slots that parallel queries "
          "cannot take (logical replication, extensions' workers), at least PostgreSQL's "
          "default 8")
    s.set("max_parallel_workers", str(max_parallel),
          f"at most one per usable CPU ({cpus:g})"
          + (f", capped at PostgreSQL's limit of {MAX_PARALLEL_WORKER_LIMIT}"
             if max_parallel < int(cpus) else ""))
    s.set("max_parallel_workers_per_gather", str(per_gather),
          f"half the CPUs, capped at {PARALLEL_PER_GATHER_CAP[workload]} for "
          f"{workload.value} queries; 0 turns parallel query off on 1 CPU")
    s.set("max_parallel_maintenance_workers", str(maintenance_parallel),
          "half the CPUs, at most 4, for CREATE INDEX and VACUUM")

    _plan_autovacuum(s, workload, profile.storage, av_workers, version)
    _plan_observability(s, workload)

    fixed = postgres_memory(s.values, version, concurrency=0).fixed_bytes()
    factor = work_mem_factor(hash_mem_multiplier(s.values, version))
    free = budget_bytes - fixed
    per_process = free / concurrency / factor
    # An oversized shared_buffers override is reported by the invariant check, by name.
    if shared_buffers_override is None and not adjustable and not clients_are_estimate \
            and per_process < (
            WORK_MEM_MIN if chain.pooled else DIRECT_WORK_MEM_REFUSE):
        raise PlanError(_too_many_backends(chain, budget_bytes, fixed, concurrency, factor,
                                           s.values))
    if per_process < WORK_MEM_FLOOR and not chain.pooled and shared_buffers_override is None \
            and not clients_are_estimate:
        warnings.append(_too_many_backends(chain, budget_bytes, fixed, concurrency, factor,
                                           s.values))
    useful = DIRECT_ACTIVE_PER_POOL * pool_size_for(cpus, profile.storage)
    if not chain.pooled and not clients_are_estimate and chain.app_clients > useful:
        warnings.append(
            f"{chain.app_clients} direct connections ({chain.client_source}) on {cpus:g} CPUs: "
            f"beyond about {useful} backends they queue for CPUs and locks inside PostgreSQL "
            f"(PostgreSQL wiki: active connections ~ 2 x cores + spindles); place PgBouncer "
            "in front of PostgreSQL (add pgbouncer to --services / the pgbouncer group)")
    work_mem = work_mem_bytes(free, concurrency, factor, workload)
    s.set("work_mem", format_pg_memory(work_mem),
          f"sized for {concurrency} processes running queries at once "
          f"({chain.active_backends} {'pooled ' if chain.pooled else ''}backends + parallel "
          f"workers), 2 sorts + 1 hash (x hash_mem_multiplier) each, in what shared memory, "
          f"backends and maintenance leave of the {budget_text} budget"
          + ("; below PostgreSQL's 4MB default because the budget cannot hold 4MB per "
             "query process: give PostgreSQL more memory"
             if work_mem < WORK_MEM_FLOOR else ""))

    figures = PostgresFigures(
        budget_bytes=budget_bytes, shared_buffers_bytes=shared, work_mem_bytes=work_mem,
        maintenance_work_mem_bytes=maintenance, autovacuum_work_mem_bytes=av_mem,
        autovacuum_max_workers=av_workers, max_parallel_workers=max_parallel,
        parallel_workers_per_gather=per_gather, concurrency=concurrency, huge_pages=huge,
        wal_buffers_bytes=wal_buffers, query_bytes_per_process=int(max(per_process, 0)),
    )
    return s, figures


def _too_many_backends(chain: ConnectionChain, budget: int, fixed: int, concurrency: int,
                       factor: float, values: dict[str, object]) -> str:
    """The real cause when query memory cannot get 4MB per process: too many backends."""
    backends = int(str(values["max_connections"]))
    backend_bytes = backends * BACKEND_OVERHEAD_BYTES
    # Backends the budget could run with 4MB work_mem each (plus their own overhead).
    without_backends = fixed - backend_bytes
    per_backend = BACKEND_OVERHEAD_BYTES + WORK_MEM_FLOOR * factor
    room = max(int((budget - without_backends) // per_backend), 0)
    per_process = max(budget - fixed, 0) / max(concurrency, 1) / factor
    left = (f"{human_bytes(int(per_process))} of work_mem (less than PostgreSQL's 4MB)"
            if per_process >= KiB else "no memory for sorts and hashes")
    if chain.pooled:
        return (f"postgresql.max_connections = {backends}: {backends} backends take "
                f"{human_bytes(backend_bytes)} of PostgreSQL's {human_bytes(budget)} budget and "
                f"leave no room for {concurrency} query processes at PostgreSQL's minimum "
                "work_mem; lower max_connections or the PgBouncer pools, or give PostgreSQL "
                "more memory")
    return (f"{chain.app_clients} direct connections ({chain.client_source}) need "
            f"{backends} backends"
            + (f" (x{chain.reload_overlap} for graceful reloads + admin), "
               if chain.reload_overlap > 1 else " (with admin), ") +
            f"{human_bytes(backend_bytes)} of PostgreSQL's {human_bytes(budget)} budget, and "
            f"leave {left} for each of {concurrency} query processes; this host runs about "
            f"{room} backends with PostgreSQL's default 4MB work_mem. "
            "Place PgBouncer in front of PostgreSQL "
            "(add pgbouncer to --services), plan for fewer connections (--connections), or "
            "give PostgreSQL more memory")


def _max_connections_reason(chain: ConnectionChain) -> str:
    if chain.pooled:
        return (f"PgBouncer's {chain.max_db_connections} server connections + "
                f"{chain.admin_connections} for administration and monitoring + "
                f"{chain.superuser_reserved_connections} superuser-reserved")
    overlap = (f" x {chain.reload_overlap} for graceful reloads (old and new workers both "
               "connected)" if chain.reload_overlap > 1 else "")
    return (f"{chain.app_clients} app connections ({chain.client_source}){overlap} "
            f"+ {chain.admin_connections} for administration + "
            f"{chain.superuser_reserved_connections} superuser-reserved")


def _plan_autovacuum(s: Section, workload: Workload, storage: Storage, workers: int,
                     version: int) -> None:
    analytic = workload is Workload.DW
    s.set("autovacuum_max_workers", str(workers),
          "3 (the default) up to 15 CPUs; more tables can be vacuumed at once on larger hosts")
    s.set("autovacuum_naptime", "1min" if analytic else "30s",
          "check busy tables twice a minute" if not analytic else "PostgreSQL's default")
    s.set("autovacuum_vacuum_scale_factor", "0.1" if analytic else "0.05",
          "vacuum after 5% of a table changed, not 20%: large tables no longer wait for "
          "millions of dead rows" if not analytic else "vacuum after 10% of a table changed")
    s.set("autovacuum_vacuum_threshold", "50", "PostgreSQL's default floor for small tables")
    s.set("autovacuum_analyze_scale_factor", "0.05" if analytic else "0.02",
          "fresh statistics after 2% of a table changed" if not analytic
          else "fresh statistics after 5% of a table changed")
    s.set("autovacuum_analyze_threshold", "50", "PostgreSQL's default floor for small tables")
    s.set("autovacuum_vacuum_insert_scale_factor", "0.1" if analytic else "0.05",
          "vacuum insert-mostly tables early, so index-only scans and freezing keep up")
    s.set("autovacuum_vacuum_insert_threshold", "1000", "PostgreSQL's default floor")
    cost_limit = AUTOVACUUM_COST_LIMIT[storage]
    s.set("autovacuum_vacuum_cost_limit", str(cost_limit),
          f"{storage.value} absorbs more vacuum I/O than the default 200 allows; shared "
          "by all workers")
    s.set("autovacuum_vacuum_cost_delay", "2ms",
          "PostgreSQL's default since 12; the cost limit sets the pace")
    if version >= 18:
        s.set("autovacuum_vacuum_max_threshold", "100000000",
              "PG 18: cap the dead-row trigger for very large tables (100M rows)")


def _plan_observability(s: Section, workload: Workload) -> None:
    slow = SLOW_STATEMENT_SECONDS[workload]
    s.set("shared_preload_libraries", "pg_stat_statements,auto_explain,pg_qualstats",
          "query statistics, plans of slow queries and the predicates the index advisor "
          "reads (pg_qualstats); needs a restart once")
    s.set("pg_stat_statements.max", str(PG_STAT_STATEMENTS_MAX),
          "room for the distinct statements of a Django app and its admin")
    s.set("pg_stat_statements.track", "top", "statements issued by clients")
    rate = QUALSTATS_SAMPLE_RATE[workload]
    sampled = "every statement" if rate == "1" else f"1 statement in {round(1 / float(rate))}"
    s.set("pg_qualstats.sample_rate", rate,
          f"record the predicates of {sampled} for {workload.value} traffic: enough for the "
          "index advisor, little overhead")
    s.set("auto_explain.log_min_duration", format_pg_duration(slow * AUTO_EXPLAIN_FACTOR),
          "log the plan of the slowest statements")
    s.set("log_min_duration_statement", format_pg_duration(slow),
          f"log statements slower than {format_pg_duration(slow)} for {workload.value} pages")
    s.set("log_lock_waits", "on", "log waits longer than deadlock_timeout (1s)")
    s.set("log_temp_files", "0", "every temporary file means a sort or hash outgrew work_mem")
    s.set("log_checkpoints", "on", "see checkpoint frequency and cause")
    s.set("log_autovacuum_min_duration", "1s", "see which tables autovacuum struggles with")
    s.set("track_io_timing", "on", "I/O time in pg_stat_statements and EXPLAIN (BUFFERS)")
    if workload is not Workload.DW:
        s.set("idle_in_transaction_session_timeout", "60s",
              "an abandoned transaction would hold a pooled server connection and block "
              "vacuum")

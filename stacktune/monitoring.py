"""Alert thresholds and Prometheus rules computed from the plan.

Every threshold follows from a planned value (max_connections, the app role's
idle_in_transaction_session_timeout, Redis maxmemory, max_wal_size, ...) or from a named
constant, and every rule carries a ``reason`` annotation saying why it fires and what
to look at. The rules read the exporters Debian packages (node, postgres, redis and
pgbouncer exporters) and the ``stacktune_pg_*`` metrics of the queries below, which the
postgres exporter runs as ``stacktune_monitor`` (pg_monitor): metric names of our own,
so the rules do not depend on the exporter's version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from stacktune.model import PlanError
from stacktune.units import parse_pg_duration, parse_pg_memory, parse_redis_memory

# Share of the client connection slots (max_connections less the superuser's reserve)
# in use past which new connections are close to being refused.
CONNECTIONS_ALERT_SHARE = 0.8
# PostgreSQL's default autovacuum_freeze_max_age, when the plan does not set it.
DEFAULT_FREEZE_MAX_AGE = 200_000_000
# Past freeze_max_age autovacuum freezes by force; 1.5x that means it is not keeping up.
XID_AGE_ALERT_FACTOR = 1.5
# Wraparound is at 2^31 transactions; PostgreSQL stops writes 3 million before it.
XID_WRAPAROUND = 2**31
# Autovacuum should vacuum a table at scale_factor dead rows; twice that, it falls behind.
DEAD_TUPLE_ALERT_FACTOR = 2.0
DEFAULT_VACUUM_SCALE_FACTOR = 0.2
# Small tables' dead ratios swing with a handful of rows: only tables this big count.
DEAD_TUPLE_MIN_ROWS = 10_000
# A transaction open this long holds back vacuum on every table (its snapshot).
LONG_TRANSACTION_SECONDS = 300
# Buffer cache hit ratio below which reads go to the disk often enough to notice.
CACHE_HIT_RATIO_MIN = {"web": 0.95, "oltp": 0.95, "mixed": 0.9, "dw": 0.8}
# Share of checkpoints started by WAL volume (max_wal_size) rather than by
# checkpoint_timeout past which max_wal_size is too small for the write load.
REQUESTED_CHECKPOINT_SHARE = 0.2
# A replica this far behind serves stale reads and slows a failover.
REPLICATION_LAG_SECONDS = 30
# A slot that holds more than this many max_wal_size of WAL is filling the disk.
SLOT_RETAINED_WAL_FACTOR = 2
# Evictions per second past which the cache is too small for its working set.
REDIS_EVICTIONS_PER_SECOND = 1.0
# Share of maxmemory past which the cache is full (allkeys-lru keeps it there).
REDIS_MEMORY_SHARE = 0.9
# Free space share under which a file system is nearly full.
DISK_FREE_SHARE = 0.1
# Default exporter ports (Debian's packages).
EXPORTER_PORTS = {"node": 9100, "postgresql": 9187, "pgbouncer": 9127, "redis": 9121}
# File systems that are not disks.
_NOT_DISKS = 'fstype!~"tmpfs|ramfs|devtmpfs|squashfs|nsfs|proc|sysfs|cgroup2?"'


@dataclass(frozen=True)
class Thresholds:
    """The numbers the rules compare with, each with the reason it has that value."""

    connections: int
    connections_reason: str
    xid_age: int
    xid_age_reason: str
    dead_tuple_ratio: float
    dead_tuple_reason: str
    idle_in_transaction_seconds: float
    idle_in_transaction_reason: str
    long_transaction_seconds: float
    cache_hit_ratio: float
    pgbouncer_waiting_for_seconds: float
    pgbouncer_waiting_reason: str
    slot_retained_bytes: int
    slot_retained_reason: str
    redis_memory_bytes: int
    redis_memory_reason: str


def _section(plan: Mapping[str, object], name: str) -> Mapping[str, object]:
    section = plan.get(name)
    return section if isinstance(section, Mapping) else {}


def thresholds(plan: Mapping[str, object]) -> Thresholds:
    """The alert thresholds of a plan (``Plan.to_dict()``: stacktune_plan_result.plan)."""
    pg = _section(plan, "postgresql")
    app_role = _section(plan, "postgresql_app_role")
    bouncer = _section(plan, "pgbouncer")
    redis = _section(plan, "redis")
    workload = str(_section(plan, "inputs").get("workload", "web"))

    max_connections = int(pg.get("max_connections", 100))
    reserved = int(pg.get("superuser_reserved_connections", 3))
    client_slots = max(1, max_connections - reserved)
    connections = max(1, math.floor(client_slots * CONNECTIONS_ALERT_SHARE))

    freeze_max_age = int(pg.get("autovacuum_freeze_max_age", DEFAULT_FREEZE_MAX_AGE))
    xid_age = min(int(freeze_max_age * XID_AGE_ALERT_FACTOR), XID_WRAPAROUND // 2)

    scale_factor = float(pg.get("autovacuum_vacuum_scale_factor", DEFAULT_VACUUM_SCALE_FACTOR))
    dead_ratio = min(0.9, scale_factor * DEAD_TUPLE_ALERT_FACTOR)

    idle_text = str(app_role.get("idle_in_transaction_session_timeout")
                    or pg.get("idle_in_transaction_session_timeout") or "60s")
    idle_seconds = parse_pg_duration(idle_text)
    if idle_seconds <= 0:
        idle_seconds = LONG_TRANSACTION_SECONDS

    query_wait = float(bouncer.get("query_wait_timeout", 120))
    max_wal = parse_pg_memory(str(pg.get("max_wal_size", "1GB")), "MB")
    maxmemory = parse_redis_memory(str(redis.get("maxmemory", "0")))

    return Thresholds(
        connections=connections,
        connections_reason=(
            f"{CONNECTIONS_ALERT_SHARE:.0%} of the {client_slots} client slots "
            f"(max_connections {max_connections} less {reserved} reserved)"),
        xid_age=xid_age,
        xid_age_reason=(
            f"{XID_AGE_ALERT_FACTOR}x autovacuum_freeze_max_age {freeze_max_age}: past it "
            "autovacuum freezes by force, so it is not keeping up; wraparound stops writes "
            f"near {XID_WRAPAROUND}"),
        dead_tuple_ratio=round(dead_ratio, 4),
        dead_tuple_reason=(
            f"{DEAD_TUPLE_ALERT_FACTOR:g}x autovacuum_vacuum_scale_factor {scale_factor:g}: "
            "autovacuum should have vacuumed the table at half this"),
        idle_in_transaction_seconds=idle_seconds,
        idle_in_transaction_reason=(
            f"the app role's idle_in_transaction_session_timeout ({idle_text}): a session "
            "idle in a transaction longer belongs to another role, which nothing stops"),
        long_transaction_seconds=LONG_TRANSACTION_SECONDS,
        cache_hit_ratio=CACHE_HIT_RATIO_MIN.get(workload, 0.9),
        pgbouncer_waiting_for_seconds=query_wait,
        pgbouncer_waiting_reason=(
            f"PgBouncer's query_wait_timeout ({query_wait:g} s): clients waiting that long "
            "are being cancelled, the pools are too small or queries too slow"),
        slot_retained_bytes=max_wal * SLOT_RETAINED_WAL_FACTOR,
        slot_retained_reason=(
            f"{SLOT_RETAINED_WAL_FACTOR}x max_wal_size ({pg.get('max_wal_size', '1GB')}): "
            "a slot no consumer advances keeps WAL until the disk fills"),
        redis_memory_bytes=int(maxmemory * REDIS_MEMORY_SHARE),
        redis_memory_reason=(
            f"{REDIS_MEMORY_SHARE:.0%} of the planned maxmemory {redis.get('maxmemory', '0')}"),
    )


def _rule(alert: str, expr: str, duration: str, severity: str, summary: str,
          reason: str) -> dict[str, object]:
    return {
        "alert": alert,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "reason": reason},
    }


def check_duration(value: object, name: str) -> str:
    """A Prometheus duration such as ``2m`` or ``30s``; a PlanError naming ``name`` else."""
    text = str(value)
    units = ("ms", "s", "m", "h", "d", "w", "y")
    digits = text.rstrip("".join(units))
    if not (digits.isascii() and digits.isdigit() and text[len(digits):] in units):
        raise PlanError(f"{name} = {text!r}: give a Prometheus duration such as 30s, 2m or 1h")
    return text


def alert_rules(plan: Mapping[str, object], target_down_for: str = "2m") -> dict[str, object]:
    """The Prometheus rules file (as data) for a plan; only the placed services' rules."""
    down_for = check_duration(target_down_for, "monitoring_target_down_for")
    t = thresholds(plan)
    rules = [
        _rule("TargetDown", "up == 0", down_for, "critical",
              "{{ $labels.job }} on {{ $labels.instance }} cannot be scraped",
              "the exporter, its service or the host is down, or a firewall drops the "
              "monitoring host"),
    ]
    if _section(plan, "postgresql"):
        rules += [
            _rule("PostgresqlDown", "pg_up == 0", "1m", "critical",
                  "PostgreSQL on {{ $labels.instance }} refuses the exporter",
                  "the server is down or refuses stacktune_monitor's login"),
            _rule("PostgresqlConnectionsNearMax",
                  f"stacktune_pg_connections_used > {t.connections}", "2m", "warning",
                  "{{ $value }} client connections on {{ $labels.instance }}",
                  t.connections_reason + ": past them new connections are refused; look for "
                  "clients that bypass PgBouncer"),
            _rule("PostgresqlTransactionIdAge",
                  f"stacktune_pg_database_xid_age > {t.xid_age}", "10m", "critical",
                  "database {{ $labels.datname }} is {{ $value | humanize }} transactions old",
                  t.xid_age_reason),
            _rule("PostgresqlDeadTuplesGrowing",
                  f"stacktune_pg_table_dead_ratio > {t.dead_tuple_ratio}", "30m", "warning",
                  "a table of {{ $labels.datname }} is {{ $value | humanizePercentage }} "
                  "dead rows",
                  t.dead_tuple_reason + f" (tables of {DEAD_TUPLE_MIN_ROWS} rows or more)"),
            _rule("PostgresqlLongTransaction",
                  'stacktune_pg_transaction_longest_seconds{state="active"} > '
                  f"{t.long_transaction_seconds:g}", "1m", "warning",
                  "a transaction has run {{ $value | humanizeDuration }}",
                  f"longer than {t.long_transaction_seconds:g} s: its snapshot holds back "
                  "vacuum on every table and it may hold locks others wait for"),
            _rule("PostgresqlIdleInTransaction",
                  'stacktune_pg_transaction_longest_seconds{state="idle in transaction"} > '
                  f"{t.idle_in_transaction_seconds:g}", "1m", "warning",
                  "a session has been idle in a transaction for {{ $value | humanizeDuration }}",
                  t.idle_in_transaction_reason + "; it holds its locks and snapshot"),
            _rule("PostgresqlCacheHitRatioLow",
                  "rate(stacktune_pg_blocks_hit[10m]) / (rate(stacktune_pg_blocks_hit[10m]) "
                  "+ rate(stacktune_pg_blocks_read[10m]) > 0) < "
                  f"{t.cache_hit_ratio:g}", "15m", "warning",
                  "buffer cache hit ratio {{ $value | humanizePercentage }}",
                  f"below {t.cache_hit_ratio:g} for this workload: the working set no longer "
                  "fits shared_buffers and the OS cache, reads go to disk"),
            _rule("PostgresqlCheckpointPressure",
                  "increase(stacktune_pg_checkpoints_requested[1h]) / "
                  "(increase(stacktune_pg_checkpoints_requested[1h]) + "
                  "increase(stacktune_pg_checkpoints_timed[1h]) > 0) > "
                  f"{REQUESTED_CHECKPOINT_SHARE:g}", "15m", "warning",
                  "{{ $value | humanizePercentage }} of checkpoints forced by WAL volume",
                  f"{pg_value(plan, 'max_wal_size')} max_wal_size fills before checkpoint_timeout "
                  f"({pg_value(plan, 'checkpoint_timeout')}): more checkpoints, more full-page "
                  "writes; raise max_wal_size"),
            _rule("PostgresqlReplicationLag",
                  f"stacktune_pg_replication_replay_lag_seconds > {REPLICATION_LAG_SECONDS}",
                  "1m", "warning",
                  "replica {{ $labels.application_name }} is {{ $value }} s behind",
                  f"more than {REPLICATION_LAG_SECONDS} s: its reads are stale and a failover "
                  "would lose or wait for that much"),
            _rule("PostgresqlReplicationSlotInactive",
                  "stacktune_pg_replication_slot_active == 0", "10m", "warning",
                  "replication slot {{ $labels.slot_name }} has no consumer",
                  "a slot nobody reads keeps WAL (and old rows for logical slots) until "
                  "the disk fills; drop it or bring its replica back"),
            _rule("PostgresqlReplicationSlotWalRetained",
                  "stacktune_pg_replication_slot_retained_bytes > "
                  f"{t.slot_retained_bytes}", "5m", "critical",
                  "slot {{ $labels.slot_name }} holds {{ $value | humanize1024 }}B of WAL",
                  t.slot_retained_reason),
        ]
    if _section(plan, "pgbouncer"):
        rules.append(
            _rule("PgbouncerClientsWaiting", "sum by (instance, database) "
                  "(pgbouncer_waiting_clients) > 0",
                  f"{t.pgbouncer_waiting_for_seconds:g}s", "warning",
                  "{{ $value }} clients waiting for a server connection to {{ $labels.database }}",
                  t.pgbouncer_waiting_reason))
    if _section(plan, "redis"):
        rules += [
            _rule("RedisDown", "redis_up == 0", "1m", "critical",
                  "Redis on {{ $labels.instance }} refuses the exporter",
                  "the cache is down (pages get slower, not errors) or refuses the "
                  "exporter's ACL user"),
            _rule("RedisEvictions",
                  f"rate(redis_evicted_keys_total[5m]) > {REDIS_EVICTIONS_PER_SECOND:g}",
                  "15m", "warning",
                  "Redis evicts {{ $value }} keys per second",
                  "the cache is smaller than what the app keeps in it: hit rate drops; raise "
                  "the cache host's memory or the app's timeouts down"),
            _rule("RedisMemoryNearMax",
                  f"redis_memory_used_bytes > {t.redis_memory_bytes}", "15m", "info",
                  "Redis uses {{ $value | humanize1024 }}B",
                  t.redis_memory_reason + ": new keys evict old ones from here on"),
        ]
    rules += [
        _rule("DiskAlmostFull",
              f"node_filesystem_avail_bytes{{{_NOT_DISKS}}} / "
              f"node_filesystem_size_bytes{{{_NOT_DISKS}}} < {DISK_FREE_SHARE:g}",
              "5m", "critical",
              "{{ $labels.mountpoint }} on {{ $labels.instance }} has "
              "{{ $value | humanizePercentage }} free",
              f"less than {DISK_FREE_SHARE:.0%} free: PostgreSQL stops when WAL cannot be "
              "written"),
        _rule("DiskFillingUp",
              f"predict_linear(node_filesystem_avail_bytes{{{_NOT_DISKS}}}[6h], 86400) < 0",
              "1h", "warning",
              "{{ $labels.mountpoint }} on {{ $labels.instance }} fills within a day",
              "at the last 6 hours' rate it is full in 24 hours"),
    ]
    return {"groups": [{"name": "stacktune", "rules": rules}]}


def pg_value(plan: Mapping[str, object], name: str) -> str:
    """A planned PostgreSQL setting as written, '' when the plan has none."""
    return str(_section(plan, "postgresql").get(name, ""))


def _metric(usage: str, description: str) -> dict[str, str]:
    return {"usage": usage, "description": description}


def postgres_exporter_queries(pg_version: int) -> dict[str, object]:
    """The postgres exporter's extra queries (``--extend.query-path``): the stacktune_pg_*
    metrics the rules read, for this PostgreSQL major version (17 moved the checkpoint
    counters to pg_stat_checkpointer)."""
    if pg_version >= 17:
        checkpoints = ("SELECT num_timed AS timed, num_requested AS requested "
                       "FROM pg_stat_checkpointer")
    else:
        checkpoints = ("SELECT checkpoints_timed AS timed, checkpoints_req AS requested "
                       "FROM pg_stat_bgwriter")
    return {
        "stacktune_pg_connections": {
            "query": "SELECT count(*) AS used FROM pg_stat_activity "
                     "WHERE backend_type = 'client backend'",
            "master": True,
            "metrics": [{"used": _metric("GAUGE", "Client backends connected")}],
        },
        "stacktune_pg_database": {
            "query": "SELECT datname, age(datfrozenxid) AS xid_age FROM pg_database "
                     "WHERE datallowconn",
            "master": True,
            "metrics": [{"datname": _metric("LABEL", "Database")},
                        {"xid_age": _metric("GAUGE", "Age of the oldest unfrozen xid")}],
        },
        "stacktune_pg_table": {
            "query": "SELECT current_database() AS datname, "
                     "COALESCE(max(n_dead_tup::float8 / (n_live_tup + n_dead_tup)), 0) "
                     "AS dead_ratio FROM pg_stat_user_tables "
                     f"WHERE n_live_tup + n_dead_tup >= {DEAD_TUPLE_MIN_ROWS}",
            "master": True,
            "metrics": [{"datname": _metric("LABEL", "Database")},
                        {"dead_ratio": _metric(
                            "GAUGE", "Largest share of dead rows in one table")}],
        },
        "stacktune_pg_transaction": {
            "query": "SELECT s.state, COALESCE(max(EXTRACT(EPOCH FROM now() - a.xact_start)), 0)"
                     " AS longest_seconds FROM (VALUES ('active'), ('idle in transaction')) "
                     "AS s(state) LEFT JOIN pg_stat_activity a ON a.state = s.state "
                     "AND a.backend_type = 'client backend' AND a.xact_start IS NOT NULL "
                     "AND a.pid <> pg_backend_pid() GROUP BY s.state",
            "master": True,
            "metrics": [{"state": _metric("LABEL", "Session state")},
                        {"longest_seconds": _metric(
                            "GAUGE", "Age of the oldest open transaction in this state")}],
        },
        "stacktune_pg": {
            "query": "SELECT sum(blks_hit) AS blocks_hit, sum(blks_read) AS blocks_read "
                     "FROM pg_stat_database",
            "master": True,
            "metrics": [{"blocks_hit": _metric("COUNTER", "Reads found in shared_buffers")},
                        {"blocks_read": _metric("COUNTER", "Reads from the OS")}],
        },
        "stacktune_pg_checkpoints": {
            "query": checkpoints,
            "master": True,
            "metrics": [{"timed": _metric("COUNTER", "Checkpoints by checkpoint_timeout")},
                        {"requested": _metric("COUNTER", "Checkpoints forced by WAL volume")}],
        },
        "stacktune_pg_replication": {
            "query": "SELECT application_name, "
                     "COALESCE(EXTRACT(EPOCH FROM replay_lag), 0) AS replay_lag_seconds "
                     "FROM pg_stat_replication",
            "master": True,
            "metrics": [{"application_name": _metric("LABEL", "Replica")},
                        {"replay_lag_seconds": _metric("GAUGE", "Replay lag")}],
        },
        "stacktune_pg_replication_slot": {
            "query": "SELECT slot_name, active::int AS active, COALESCE(pg_wal_lsn_diff("
                     "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() "
                     "ELSE pg_current_wal_lsn() END, restart_lsn), 0) AS retained_bytes "
                     "FROM pg_replication_slots",
            "master": True,
            "metrics": [{"slot_name": _metric("LABEL", "Slot")},
                        {"active": _metric("GAUGE", "1 when a consumer is connected")},
                        {"retained_bytes": _metric("GAUGE", "WAL the slot keeps")}],
        },
    }

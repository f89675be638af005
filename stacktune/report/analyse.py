"""Findings from a snapshot: pure functions, no I/O.

Each rule returns Findings (stacktune.report.findings) with the server's numbers as
evidence and the concrete fix; setting proposals (the closed loop) are returned
separately as {service: {setting: value}} in each service's own syntax, for
``stacktune_overrides``.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping
from typing import Any

from stacktune.report.findings import Finding, by_severity, finding
from stacktune.units import (
    UnitError,
    format_pg_memory,
    format_redis_memory,
    parse_pg_memory,
)

Snapshot = Mapping[str, Any]
Proposals = dict[str, dict[str, str]]

# A statement is "slow" when it holds this share of all statement time.
SLOW_SHARE = 0.20
SLOW_MEAN_MS_HIGH = 100.0
# One-off statements (a data load, a migration) are not what makes pages slow.
SLOW_MIN_CALLS = 10
# N+1 heuristic (pg_stat_statements only): cheap single-row statements whose calls dwarf the rest.
NPLUSONE_MAX_ROWS_PER_CALL = 1.0
NPLUSONE_MAX_MEAN_MS = 2.0
NPLUSONE_MIN_CALLS = 500
NPLUSONE_CALLS_FACTOR = 10.0
# OFFSET paging: worth keyset pagination once a page costs this much.
OFFSET_MEAN_MS = 5.0
OFFSET_BLOCKS_PER_ROW = 20.0
# Vacuum: dead share of a table, and xid age as a share of autovacuum_freeze_max_age.
DEAD_SHARE = 0.20
DEAD_TUPLES_MIN = 1_000
XID_AGE_SHARE = 0.5
CACHE_HIT_MIN = 0.99
CACHE_BLOCKS_MIN = 10_000
TEMP_BYTES_MIN = 1 << 20
WORK_MEM_MAX_FACTOR = 4
CHECKPOINTS_REQUESTED_MIN = 3
REDIS_HIT_MIN = 0.8
REDIS_MAXMEMORY_FACTOR = 1.5


def _section(snapshot: Snapshot, name: str) -> Any:
    value = snapshot.get(name)
    return None if not isinstance(value, (dict, list)) or (
        isinstance(value, dict) and "error" in value) else value


def _setting_bytes(snapshot: Snapshot, name: str) -> int | None:
    server = _section(snapshot, "server") or {}
    row = server.get("settings", {}).get(name)
    if not row:
        return None
    try:
        return int(float(row["setting"])) * _unit_bytes(row.get("unit") or "")
    except (TypeError, ValueError):
        return None


def _unit_bytes(unit: str) -> int:
    """pg_settings units like '8kB' (shared_buffers) as bytes."""
    match = re.fullmatch(r"(\d*)(B|kB|MB|GB|TB)", unit or "B")
    if not match:
        raise ValueError(unit)
    factor = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[match[2]]
    return int(match[1] or 1) * factor


def _short(query: str, length: int = 120) -> str:
    text = " ".join(query.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# --- statements -------------------------------------------------------------------------

def statement_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    statements = _section(snapshot, "statements") or {}
    return list(statements.get("rows", []))


def slow_query_findings(snapshot: Snapshot) -> list[Finding]:
    statements = _section(snapshot, "statements")
    if not statements:
        return []
    total = float(statements.get("summary", {}).get("total_exec_time") or 0.0)
    by_id = {row["queryid"]: row for row in statements["rows"]}
    plans = _section(snapshot, "plans") or {}
    found = []
    for queryid in statements["top"].get("total_exec_time", [])[:5]:
        row = by_id[queryid]
        share = row["total_exec_time"] / total if total else 0.0
        if share < SLOW_SHARE or row["calls"] < SLOW_MIN_CALLS:
            continue
        scans = seq_scans(plans.get(queryid, {}).get("plan"))
        fix = ("EXPLAIN (ANALYZE, BUFFERS) this statement with real values"
               + (f"; its generic plan reads {', '.join(scans)} by sequential scan: index the "
                  "filtered columns (see missing indexes)" if scans else ""))
        found.append(finding(
            "slow_query", "high" if row["mean_exec_time"] >= SLOW_MEAN_MS_HIGH or share >= 0.5
            else "medium",
            f"{share:.0%} of statement time: {_short(row['query'], 80)}", fix,
            evidence={"share_of_total_time": round(share, 3), "calls": row["calls"],
                      "total_exec_time_ms": round(row["total_exec_time"], 1),
                      "mean_exec_time_ms": round(row["mean_exec_time"], 3), "rows": row["rows"],
                      "shared_blks_read": row["shared_blks_read"], "seq_scans": scans},
            objects={"queryid": queryid, "query": row["query"]}))
    return found


def seq_scans(plan: Any) -> list[str]:
    """Relations a JSON plan reads with a Seq Scan that has a Filter."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan" and node.get("Filter"):
                name = f"{node.get('Schema', 'public')}.{node.get('Relation Name')}"
                if name not in found:
                    found.append(name)
            for key in ("Plan", "Plans"):
                if key in node:
                    walk(node[key])

    walk(plan)
    return found


# PostgreSQL's own foreign-key checks (ri_triggers.c: SELECT 1 FROM ONLY <table> x WHERE
# ... FOR KEY SHARE OF x), one per inserted or updated row: pg_stat_statements records
# them with track = all, and they look like an N+1 that no view can fix.
FOREIGN_KEY_CHECK_RE = re.compile(r"\bFROM\s+ONLY\b.*\bFOR\s+KEY\s+SHARE\s+OF\s+x\b",
                                  re.I | re.S)


def n_plus_one_statement_findings(snapshot: Snapshot) -> list[Finding]:
    """Cheap single-row statements called far more often than the typical statement."""
    rows = [r for r in statement_rows(snapshot)
            if r["calls"] and not FOREIGN_KEY_CHECK_RE.search(r["query"] or "")]
    if len(rows) < 2:
        return []
    found = []
    for row in rows:
        others = [r["calls"] for r in rows if r is not row]
        typical = statistics.median(others)
        per_call = row["rows"] / row["calls"]
        tables = re.findall(r'\bfrom\s+"?([\w.]+)"?', row["query"] or "", re.I)
        # A statement that reads no table (Django's health check SELECT 1) loads no rows
        # a view could batch.
        if (tables and row["calls"] >= NPLUSONE_MIN_CALLS and per_call <= NPLUSONE_MAX_ROWS_PER_CALL
                and row["mean_exec_time"] <= NPLUSONE_MAX_MEAN_MS
                and row["calls"] >= NPLUSONE_CALLS_FACTOR * max(typical, 1)
                and EXPLAINABLE.match(row["query"] or "")):
            found.append(finding(
                "n_plus_one_suspect", "medium",
                f"{row['calls']} calls of a one-row query ({row['calls'] / max(typical, 1):.0f}x "
                f"the typical statement): {_short(row['query'], 80)}",
                "load these rows in one query: select_related() / prefetch_related() in the "
                "Django view that loops over them (WHERE id = ANY(...) in SQL)",
                evidence={"calls": row["calls"], "rows_per_call": round(per_call, 3),
                          "mean_exec_time_ms": round(row["mean_exec_time"], 3),
                          "typical_calls": typical},
                objects={"queryid": row["queryid"], "query": row["query"],
                         "table": tables[0]}))
    return found


EXPLAINABLE = re.compile(r"^\s*(select|with)\b", re.I)
OFFSET_RE = re.compile(r"\boffset\s+(\$\d+|\d+)", re.I)


def offset_findings(snapshot: Snapshot) -> list[Finding]:
    section = _section(snapshot, "offset") or {}
    found = []
    for row in section.get("rows", []):
        match = OFFSET_RE.search(row["query"] or "")
        if not match or not row["calls"]:
            continue
        literal = int(match[1]) if match[1].isdigit() else None
        blocks_per_row = row["blocks"] / max(row["rows"], 1)
        if not (row["mean_exec_time"] >= OFFSET_MEAN_MS or blocks_per_row >= OFFSET_BLOCKS_PER_ROW
                or (literal or 0) >= 1000):
            continue
        tables = re.findall(r'\bfrom\s+"?([\w.]+)"?', row["query"], re.I)
        found.append(finding(
            "deep_offset", "high" if row["mean_exec_time"] >= SLOW_MEAN_MS_HIGH else "medium",
            f"OFFSET paging reads {blocks_per_row:.0f} blocks per row returned: "
            f"{_short(row['query'], 80)}",
            "keyset pagination: remember the last row's sort key and ask for "
            "WHERE (sort_key, id) > (%(last_key)s, %(last_id)s) ORDER BY sort_key, id LIMIT n "
            "instead of OFFSET",
            evidence={"calls": row["calls"], "mean_exec_time_ms": round(row["mean_exec_time"], 3),
                      "blocks_per_row": round(blocks_per_row, 1), "rows": row["rows"],
                      **({"offset": literal} if literal is not None else {})},
            objects={"queryid": row["queryid"], "query": row["query"],
                     **({"table": tables[0]} if tables else {})}))
    return found


# --- schema ---------------------------------------------------------------------------

def _quote_ident(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _qualified(table: str) -> str:
    schema, _, name = table.partition(".")
    return f"{_quote_ident(schema)}.{_quote_ident(name)}"


def index_findings(snapshot: Snapshot) -> list[Finding]:
    section = _section(snapshot, "indexes")
    if not section:
        return []
    found = []
    for row in section.get("unused", []):
        schema = row["table"].split(".", 1)[0]
        found.append(finding(
            "unused_index", "medium" if row["bytes"] >= 100 << 20 else "low",
            f"index {row['index']} on {row['table']} was never scanned", (
                f"DROP INDEX CONCURRENTLY {_quote_ident(schema)}.{_quote_ident(row['index'])};"
                " (after checking replicas and month-end jobs: idx_scan counts since the "
                "statistics reset)"),
            evidence={"idx_scan": row["idx_scan"], "bytes": row["bytes"]},
            objects={"table": row["table"], "index": row["index"],
                     "definition": row["definition"]}))
    for row in section.get("duplicate", []):
        schema = row["table"].split(".", 1)[0]
        extra = row["indexes"][1:]
        found.append(finding(
            "duplicate_index", "medium",
            f"indexes {', '.join(row['indexes'])} on {row['table']} are the same", " ".join(
                f"DROP INDEX CONCURRENTLY {_quote_ident(schema)}.{_quote_ident(name)};"
                for name in extra),
            evidence={"bytes": row["bytes"], "count": len(row["indexes"])},
            objects={"table": row["table"], "indexes": row["indexes"],
                     "definition": row["definition"]}))
    for row in section.get("invalid", []):
        schema = row["table"].split(".", 1)[0]
        found.append(finding(
            "invalid_index", "high",
            f"index {row['index']} on {row['table']} is invalid (a failed CREATE INDEX "
            "CONCURRENTLY): it is maintained on writes but never used",
            f"REINDEX INDEX CONCURRENTLY {_quote_ident(schema)}.{_quote_ident(row['index'])};",
            objects={"table": row["table"], "index": row["index"],
                     "definition": row["definition"]}))
    return found


def foreign_key_findings(snapshot: Snapshot) -> list[Finding]:
    section = _section(snapshot, "foreign_keys_without_index") or {}
    found = []
    for row in section.get("rows", []):
        columns = ", ".join(_quote_ident(c) for c in row["columns"])
        found.append(finding(
            "fk_without_index", "medium",
            f"foreign key {row['constraint']} on {row['table']} ({', '.join(row['columns'])}) "
            "has no index: deletes on the referenced table and joins scan it",
            f"CREATE INDEX CONCURRENTLY ON {_qualified(row['table'])} ({columns});",
            evidence={"table_bytes": row["table_bytes"]},
            objects={"table": row["table"], "column": row["columns"][0],
                     "columns": row["columns"], "constraint": row["constraint"],
                     "references": row["references"]}))
    return found


def primary_key_findings(snapshot: Snapshot) -> list[Finding]:
    section = _section(snapshot, "tables_without_pk") or {}
    return [finding(
        "table_without_pk", "medium",
        f"table {row['table']} has no primary key (no logical replication of its updates, "
        "duplicate rows possible, Django cannot address its rows)",
        f"ALTER TABLE {_qualified(row['table'])} ADD PRIMARY KEY (<unique not-null columns>); or "
        f"ALTER TABLE {_qualified(row['table'])} ADD COLUMN id bigint GENERATED ALWAYS AS "
        "IDENTITY PRIMARY KEY;",
        evidence={"estimated_rows": row["estimated_rows"], "bytes": row["bytes"]},
        objects={"table": row["table"]}) for row in section.get("rows", [])]


def vacuum_findings(snapshot: Snapshot) -> list[Finding]:
    section = _section(snapshot, "vacuum") or {}
    freeze_max = section.get("autovacuum_freeze_max_age") or 200_000_000
    found = []
    for row in section.get("rows", []):
        dead, live = row["n_dead_tup"] or 0, row["n_live_tup"] or 0
        share = dead / max(dead + live, 1)
        evidence = {k: row[k] for k in ("n_dead_tup", "n_live_tup", "last_vacuum",
                                         "last_autovacuum", "last_analyze", "last_autoanalyze",
                                         "xid_age", "bloat_bytes_estimate")}
        evidence["dead_share"] = round(share, 3)
        if dead >= DEAD_TUPLES_MIN and share >= DEAD_SHARE:
            found.append(finding(
                "vacuum_lagging", "high" if share >= 0.5 else "medium",
                f"{row['table']}: {share:.0%} of its rows are dead ({dead} dead tuples)",
                f"ALTER TABLE {_qualified(row['table'])} SET (autovacuum_vacuum_scale_factor = "
                "0.02, autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = "
                f"0.01); VACUUM (ANALYZE) {_qualified(row['table'])};",
                evidence=evidence, objects={"table": row["table"]}))
        if (row["xid_age"] or 0) >= XID_AGE_SHARE * freeze_max:
            found.append(finding(
                "xid_age", "high",
                f"{row['table']}: transaction ID age {row['xid_age']} is past "
                f"{XID_AGE_SHARE:.0%} of autovacuum_freeze_max_age ({freeze_max})",
                f"VACUUM (FREEZE, VERBOSE) {_qualified(row['table'])};",
                evidence=evidence, objects={"table": row["table"]}))
    return found


# --- server counters (cumulative; with --since, the window's deltas) ---------------------

def counters(snapshot: Snapshot) -> dict[str, float]:
    """The cumulative counters the report compares over time, flat."""
    out: dict[str, float] = {}
    database = _section(snapshot, "database_stats") or {}
    for key in ("temp_files", "temp_bytes", "blks_hit", "blks_read", "xact_commit", "deadlocks"):
        if isinstance(database.get(key), (int, float)):
            out[f"database.{key}"] = database[key]
    checkpoints = _section(snapshot, "checkpoints") or {}
    for key in ("timed", "requested", "buffers_written"):
        if isinstance(checkpoints.get(key), (int, float)):
            out[f"checkpoints.{key}"] = checkpoints[key]
    for row in statement_rows(snapshot):
        for key in ("calls", "total_exec_time", "rows", "shared_blks_read", "temp_blks_written"):
            out[f"statement.{row['queryid']}.{key}"] = row[key]
    return out


def deltas(current: Snapshot, previous: Snapshot) -> dict[str, Any]:
    """Counter increases between two snapshots; a counter that went down was reset."""
    now, before = counters(current), counters(previous)
    changed: dict[str, float] = {}
    reset: list[str] = []
    for key, value in now.items():
        if key not in before:
            continue
        if value < before[key]:
            reset.append(key)
        else:
            changed[key] = value - before[key]
    return {"from": (previous.get("server") or {}).get("collected_at"),
            "to": (current.get("server") or {}).get("collected_at"),
            "counters": changed, "reset": sorted(reset)}


def _window(snapshot: Snapshot, window: Mapping[str, Any] | None, key: str) -> float | None:
    if window is not None and key in window.get("counters", {}):
        return float(window["counters"][key])
    value = counters(snapshot).get(key)
    return None if value is None else float(value)


def _planned(plan: Mapping[str, Any] | None, service: str, name: str) -> str | None:
    if not plan:
        return None
    section = plan.get(service)
    if isinstance(section, dict) and name in section:
        return str(section[name])
    return None


def cache_findings(snapshot: Snapshot, window: Mapping[str, Any] | None) -> list[Finding]:
    hit = _window(snapshot, window, "database.blks_hit")
    read = _window(snapshot, window, "database.blks_read")
    if hit is None or read is None or hit + read < CACHE_BLOCKS_MIN:
        return []
    ratio = hit / (hit + read)
    if ratio >= CACHE_HIT_MIN:
        return []
    return [finding(
        "cache_hit_ratio", "medium",
        f"cache hit ratio {ratio:.1%} (below {CACHE_HIT_MIN:.0%}): reads go to the disk",
        "look at the statements with the most shared_blks_read first (an index often "
        "removes the reads); if the working set is larger than shared_buffers, give "
        "PostgreSQL more memory",
        evidence={"blks_hit": hit, "blks_read": read, "ratio": round(ratio, 4),
                  "shared_buffers_bytes": _setting_bytes(snapshot, "shared_buffers")})]


def temp_file_findings(snapshot: Snapshot, window: Mapping[str, Any] | None,
                       plan: Mapping[str, Any] | None,
                       proposals: Proposals) -> list[Finding]:
    files = _window(snapshot, window, "database.temp_files")
    size = _window(snapshot, window, "database.temp_bytes")
    work_mem = _setting_bytes(snapshot, "work_mem")
    if not files or not size or size < TEMP_BYTES_MIN or not work_mem:
        return []
    per_file = size / files
    # The next step that holds the average spill, at most WORK_MEM_MAX_FACTOR x today's.
    target = work_mem
    while target < work_mem + per_file and target < WORK_MEM_MAX_FACTOR * work_mem:
        target *= 2
    proposed = format_pg_memory(int(target))
    spilling = sorted((r for r in statement_rows(snapshot) if r.get("temp_blks_written")),
                      key=lambda r: -r["temp_blks_written"])[:5]
    proposals.setdefault("postgresql", {})["work_mem"] = proposed
    return [finding(
        "temp_files", "medium",
        f"{int(files)} temporary files, {int(size) >> 20} MiB: sorts and hashes spill past "
        f"work_mem ({format_pg_memory(work_mem)})",
        f"work_mem = {proposed} (stacktune_overrides.postgresql.work_mem; the plan checks it "
        "against the memory budget), or ALTER ROLE <app role> SET work_mem for the spilling "
        "queries' role only",
        evidence={"temp_files": files, "temp_bytes": size, "bytes_per_file": int(per_file),
                  "work_mem": format_pg_memory(work_mem),
                  "planned_work_mem": _planned(plan, "postgresql", "work_mem"),
                  "spilling_queryids": [r["queryid"] for r in spilling]},
        objects={"setting": "work_mem"})]


def checkpoint_findings(snapshot: Snapshot, window: Mapping[str, Any] | None,
                        plan: Mapping[str, Any] | None, proposals: Proposals) -> list[Finding]:
    timed = _window(snapshot, window, "checkpoints.timed")
    requested = _window(snapshot, window, "checkpoints.requested")
    if requested is None or timed is None or requested < CHECKPOINTS_REQUESTED_MIN \
            or requested <= timed:
        return []
    current = _setting_bytes(snapshot, "max_wal_size")
    if current:
        proposals.setdefault("postgresql", {})["max_wal_size"] = format_pg_memory(2 * current)
    view = (_section(snapshot, "checkpoints") or {}).get("view", "pg_stat_bgwriter")
    return [finding(
        "checkpoints_requested", "medium",
        f"{int(requested)} checkpoints were requested (WAL filled max_wal_size) against "
        f"{int(timed)} timed ones",
        f"max_wal_size = {format_pg_memory(2 * current) if current else 'twice today'} "
        "(stacktune_overrides.postgresql.max_wal_size)",
        evidence={"requested": requested, "timed": timed, "view": view,
                  "max_wal_size": format_pg_memory(current) if current else None,
                  "planned_max_wal_size": _planned(plan, "postgresql", "max_wal_size")},
        objects={"setting": "max_wal_size", "view": view})]


def pgbouncer_findings(snapshot: Snapshot, plan: Mapping[str, Any] | None,
                       proposals: Proposals) -> list[Finding]:
    section = _section(snapshot, "pgbouncer") or {}
    pools = section.get("pools")
    if not isinstance(pools, list):
        return []
    found = []
    for pool in pools:
        if pool.get("database") == "pgbouncer":
            continue
        waiting = int(pool.get("cl_waiting") or 0)
        maxwait = float(pool.get("maxwait") or 0) + float(pool.get("maxwait_us") or 0) / 1e6
        if not waiting and maxwait <= 0:
            continue
        servers = sum(int(pool.get(k) or 0) for k in ("sv_active", "sv_idle", "sv_used"))
        planned = _planned(plan, "pgbouncer", "default_pool_size")
        size = int(planned) if planned and planned.isdigit() else servers
        proposed = str(size + max(waiting, 1))
        proposals.setdefault("pgbouncer", {})["default_pool_size"] = proposed
        found.append(finding(
            "pgbouncer_clients_waiting", "high" if maxwait >= 1 else "medium",
            f"PgBouncer pool {pool.get('database')}/{pool.get('user')}: {waiting} clients "
            f"waiting, the oldest {maxwait:.2f} s",
            f"default_pool_size = {proposed} (stacktune_overrides.pgbouncer.default_pool_size; "
            "the plan checks it against max_connections), or find the slow statements that "
            "hold the servers",
            evidence={"cl_waiting": waiting, "maxwait_s": maxwait, "servers": servers,
                      "planned_default_pool_size": planned},
            objects={"database": pool.get("database"), "user": pool.get("user")}))
    return found


def redis_findings(snapshot: Snapshot, plan: Mapping[str, Any] | None,
                   proposals: Proposals) -> list[Finding]:
    section = _section(snapshot, "redis") or {}
    info = section.get("info")
    if not isinstance(info, dict):
        return []
    found = []
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    evicted = int(info.get("evicted_keys", 0))
    maxmemory = int(info.get("maxmemory", 0))
    if evicted and maxmemory:
        proposed = format_redis_memory(int(maxmemory * REDIS_MAXMEMORY_FACTOR))
        proposals.setdefault("redis", {})["maxmemory"] = proposed
        found.append(finding(
            "redis_evictions", "medium",
            f"Redis evicted {evicted} keys at maxmemory {format_redis_memory(maxmemory)}",
            f"maxmemory = {proposed} (stacktune_overrides.redis.maxmemory; the plan checks it "
            "against the host's memory budget), or shorter cache timeouts",
            evidence={"evicted_keys": evicted, "maxmemory": maxmemory,
                      "used_memory": info.get("used_memory"),
                      "planned_maxmemory": _planned(plan, "redis", "maxmemory")},
            objects={"setting": "maxmemory"}))
    if hits + misses >= 1000 and hits / (hits + misses) < REDIS_HIT_MIN:
        found.append(finding(
            "redis_hit_ratio", "low",
            f"Redis hit ratio {hits / (hits + misses):.0%}: most cache reads miss",
            "cache what is read more than written, with timeouts longer than the reads' interval",
            evidence={"keyspace_hits": hits, "keyspace_misses": misses}))
    return found


def plan_findings(snapshot: Snapshot, plan: Mapping[str, Any] | None) -> list[Finding]:
    """Live PostgreSQL settings that differ from the plan (a restart pending, a manual change)."""
    if not plan or not isinstance(plan.get("postgresql"), dict):
        return []
    server = _section(snapshot, "server") or {}
    found = []
    for name, row in server.get("settings", {}).items():
        planned = plan["postgresql"].get(name)
        if planned is None or row.get("unit") in (None, "") or _unit_bytes_ok(row) is None:
            continue
        live = _setting_bytes(snapshot, name)
        try:
            want = parse_pg_memory(str(planned))
        except (UnitError, ValueError):
            continue
        if live is not None and live != want:
            found.append(finding(
                "setting_differs_from_plan", "low",
                f"{name} is {format_pg_memory(live)} on the server, the plan says {planned}",
                "run site.yml (a restart may be pending: pending_restart in pg_settings)",
                evidence={"live": format_pg_memory(live), "planned": str(planned),
                          "pending_restart": row.get("pending_restart")},
                objects={"setting": name}))
    return found


def _unit_bytes_ok(row: Mapping[str, Any]) -> int | None:
    try:
        return _unit_bytes(row.get("unit") or "")
    except ValueError:
        return None


def analyse(snapshot: Snapshot, plan: Mapping[str, Any] | None = None,
            previous: Snapshot | None = None,
            extra: list[Finding] | None = None) -> dict[str, Any]:
    """Every finding of a snapshot, the setting proposals, and the window's deltas."""
    window = deltas(snapshot, previous) if previous is not None else None
    proposals: Proposals = {}
    findings: list[Finding] = [
        *slow_query_findings(snapshot), *n_plus_one_statement_findings(snapshot),
        *offset_findings(snapshot), *index_findings(snapshot),
        *foreign_key_findings(snapshot), *primary_key_findings(snapshot),
        *vacuum_findings(snapshot), *cache_findings(snapshot, window),
        *temp_file_findings(snapshot, window, plan, proposals),
        *checkpoint_findings(snapshot, window, plan, proposals),
        *pgbouncer_findings(snapshot, plan, proposals),
        *redis_findings(snapshot, plan, proposals), *plan_findings(snapshot, plan),
        *(extra or []),
    ]
    # The index advisor and the N+1 recorder bring their findings as snapshot sections.
    for name in ("missing_indexes", "nplusone"):
        section = snapshot.get(name)
        if isinstance(section, dict):
            findings.extend(section.get("findings") or [])
    errors = {name: value["error"] for name, value in snapshot.items()
              if isinstance(value, dict) and "error" in value}
    return {"findings": by_severity(findings), "proposals": proposals, "deltas": window,
            "errors": errors}


def overrides_yaml(proposals: Proposals) -> str:
    """The proposals as a vars file site.yml reads unchanged (-e @file or group_vars)."""
    lines = ["---", "# Setting proposals from `stacktune report`; the plan engine checks them",
             "# against the memory budget and the connection chain before any change."]
    if not proposals:
        return "\n".join([*lines, "stacktune_overrides: {}", ""])
    lines.append("stacktune_overrides:")
    for service in sorted(proposals):
        lines.append(f"  {service}:")
        for name in sorted(proposals[service]):
            # JSON strings are YAML double-quoted scalars: values stay strings.
            lines.append(f"    {name}: {json.dumps(str(proposals[service][name]))}")
    return "\n".join(lines) + "\n"


"""Collect a diagnostics snapshot from PostgreSQL (and optionally PgBouncer and Redis).

Stdlib + DB-API only: the same file ships as the collection's module_utils
(plugins/module_utils/stacktune_report_collect.py is a link to it), so the module runs it
on the database host with the distribution's psycopg2, and the CLI runs it on the
controller with psycopg 3.

Read-only: the session is set to ``default_transaction_read_only`` with a statement
timeout before the first query. Each section collects on its own: a missing extension
or privilege becomes ``{"error": "... how to enable ..."}`` for that section only.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

SNAPSHOT_FORMAT = 1
TOP_N = 10
STATEMENT_TIMEOUT_MS = 10_000
QUERY_TEXT_LIMIT = 2_000
# pg_stat_statements orderings the report lists ("top by ...").
STATEMENT_ORDERS = ("total_exec_time", "mean_exec_time", "calls", "rows", "shared_blks_read")
# Settings the analysis compares with the plan or quotes as evidence.
SETTINGS = (
    "server_version", "shared_buffers", "effective_cache_size", "work_mem",
    "maintenance_work_mem", "max_connections", "max_wal_size", "min_wal_size",
    "checkpoint_timeout", "checkpoint_completion_target", "random_page_cost",
    "effective_io_concurrency", "autovacuum", "autovacuum_vacuum_scale_factor",
    "autovacuum_analyze_scale_factor", "autovacuum_vacuum_cost_limit",
    "autovacuum_max_workers", "autovacuum_naptime", "track_io_timing", "track_counts",
    "shared_preload_libraries", "log_min_duration_statement", "log_temp_files",
    "pg_stat_statements.track", "pg_stat_statements.max", "plan_cache_mode",
)
PG_STAT_STATEMENTS_HINT = (
    "add pg_stat_statements to shared_preload_libraries (restart) and run "
    "CREATE EXTENSION pg_stat_statements in database {db} (the kit's postgresql role does both)")
PRIVILEGE_HINT = ("connect as a role with pg_monitor (GRANT pg_monitor TO {user}; the kit's "
                  "postgresql_monitor_user has it) or as the postgres superuser")


class CollectError(Exception):
    """The database could not be reached at all: one line naming the DSN (password masked)."""


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ***, in key=value and URI forms."""
    masked = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn, flags=re.I)
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", masked)


def connect(dsn: str, driver: Any = None) -> Any:
    """A DB-API connection to ``dsn`` with psycopg 3 or psycopg2, whichever is importable."""
    if driver is None:
        try:
            import psycopg as driver  # type: ignore[no-redef]
        except ImportError:
            try:
                import psycopg2 as driver  # type: ignore[no-redef]
            except ImportError:
                raise CollectError("no PostgreSQL driver: install psycopg (pip install "
                                   "'psycopg[binary]') or python3-psycopg2") from None
    try:
        return driver.connect(dsn, connect_timeout=10)
    except Exception as error:  # the drivers' OperationalError: no common base class
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CollectError(f"cannot connect to {mask_dsn(dsn)}: {first}") from None


def jsonable(value: Any) -> Any:
    """Server values as JSON types: Decimal -> float, timestamps -> ISO text."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, memoryview):
        return bytes(value).decode(errors="replace")
    return value


def _rows(cursor: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    names = [column[0] for column in cursor.description]
    # No zip(strict=...): the module also runs on Python 3.9 hosts (Debian 11).
    return [{name: jsonable(row[i]) for i, name in enumerate(names)}
            for row in cursor.fetchall()]


def _sqlstate(error: BaseException) -> str:
    return str(getattr(error, "sqlstate", None) or getattr(error, "pgcode", None) or "")


def _explain_error(error: BaseException, section: str, context: dict[str, str]) -> str:
    """The error of one section, with how to enable what is missing."""
    message = (str(error).strip().splitlines() or [type(error).__name__])[0]
    state = _sqlstate(error)
    if state == "42501" or "permission denied" in message:
        return f"{message}: {PRIVILEGE_HINT.format(user=context['user'])}"
    if section in ("statements", "offset") and (
            state in ("42P01", "55000") or "pg_stat_statements" in message):
        return f"{message}: {PG_STAT_STATEMENTS_HINT.format(db=context['database'])}"
    if state == "57014":
        return (f"{message}: the query ran past the report's statement_timeout "
                f"({STATEMENT_TIMEOUT_MS} ms); run the report at a quieter time")
    return message


# --- the sections -----------------------------------------------------------------------

def _server(cursor: Any, version: int) -> dict[str, Any]:
    rows = _rows(cursor, "SELECT name, setting, unit, source, pending_restart FROM pg_settings "
                 "WHERE name = ANY(%s)", (list(SETTINGS),))
    info = _rows(cursor, "SELECT current_database() AS database, current_user AS user, "
                 "version() AS version, pg_postmaster_start_time() AS started, "
                 "now() AS collected_at")[0]
    return {**info, "version_num": version,
            "settings": {row["name"]: {k: row[k] for k in ("setting", "unit", "source",
                                                             "pending_restart")}
                         for row in rows}}


# The report's own EXPLAINs, recorded when its login may not turn tracking off.
NOT_OWN_STATEMENT = ("s.query NOT LIKE 'EXPLAIN (GENERIC_PLAN, FORMAT JSON) %%' "
                     "AND s.query NOT LIKE '%%stacktune_report_plan%%'")


def _statement_select(version: int) -> tuple[str, str]:
    """The SELECT of pg_stat_statements rows of this database (columns named as on 13+),
    and the column of the total time to order by."""
    # Column names changed in 13 (total_time -> total_exec_time).
    total, mean = (("total_exec_time", "mean_exec_time") if version >= 130000
                   else ("total_time", "mean_time"))
    select = (
        "SELECT s.queryid::text AS queryid, r.rolname AS role, "
        f"left(s.query, {QUERY_TEXT_LIMIT}) AS query, s.calls, s.{total} AS total_exec_time, "
        f"s.{mean} AS mean_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read, "
        "s.temp_blks_written, s.temp_blks_read "
        "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "LEFT JOIN pg_roles r ON r.oid = s.userid "
        "WHERE d.datname = current_database() AND s.queryid IS NOT NULL "
        f"AND {NOT_OWN_STATEMENT}")
    return select, total


def _statements(cursor: Any, version: int, top_n: int) -> dict[str, Any]:
    present = _rows(cursor, "SELECT extversion FROM pg_extension WHERE extname = "
                    "'pg_stat_statements'")
    if not present:
        raise LookupError("pg_stat_statements is not installed in this database")
    select, total = _statement_select(version)
    rows: dict[str, dict[str, Any]] = {}
    top: dict[str, list[str]] = {}
    for order in STATEMENT_ORDERS:
        found = _rows(cursor, f"{select} ORDER BY {order} DESC NULLS LAST LIMIT %s", (top_n,))
        top[order] = [row["queryid"] for row in found]
        for row in found:
            rows.setdefault(row["queryid"], row)
    summary = _rows(cursor, f"SELECT count(*) AS statements, coalesce(sum(s.calls), 0) AS calls, "
                    f"coalesce(sum(s.{total}), 0) AS total_exec_time, "
                    "count(*) FILTER (WHERE s.query = '<insufficient privilege>') AS hidden "
                    "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                    "WHERE d.datname = current_database()")[0]
    return {"extversion": present[0]["extversion"], "summary": summary,
            "top": top, "rows": list(rows.values())}


def _offset_statements(cursor: Any, version: int) -> dict[str, Any]:
    """Statements that page with OFFSET (the constant is normalised away: $n or a number)."""
    total, mean = (("total_exec_time", "mean_exec_time") if version >= 130000
                   else ("total_time", "mean_time"))
    rows = _rows(cursor, (
        f"SELECT s.queryid::text AS queryid, left(s.query, {QUERY_TEXT_LIMIT}) AS query, "
        f"s.calls, s.{total} AS total_exec_time, s.{mean} AS mean_exec_time, s.rows, "
        "s.shared_blks_hit + s.shared_blks_read AS blocks "
        "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE d.datname = current_database() AND s.query ~* '\\moffset\\s+(\\$[0-9]+|[0-9]+)' "
        f"AND {NOT_OWN_STATEMENT.replace('%%', '%')} ORDER BY s.{total} DESC LIMIT 20"))
    return {"rows": rows}


# The missing-index advisor's own pool: the statements it may EXPLAIN, by total time. The
# top lists miss a filter on an unindexed column that ran a few times at a few ms each on a
# busy database (thousands of cheap calls, one-off DDL and bulk loads fill every list).
# EXPLAIN with hypothetical indexes costs milliseconds per statement; the bound keeps the
# report fast on a database with thousands of statements.
ADVISOR_POOL_SIZE = 50
# What an index can serve and EXPLAIN can plan without running it (indexes.is_explainable
# checks the text again, in Python).
ADVISOR_STATEMENT = "s.query ~* '^\\s*(select|with|update|delete)\\M'"


def _advisor_pool(cursor: Any, version: int, size: int) -> list[dict[str, Any]]:
    select, total = _statement_select(version)
    return _rows(cursor, f"{select} AND {ADVISOR_STATEMENT} "
                 f"ORDER BY s.{total} DESC NULLS LAST LIMIT %s", (size,))


def merge_statements(first: list[dict[str, Any]],
                     more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``first`` then the rows of ``more`` whose queryid is not already there, in order."""
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    for row in [*first, *more]:
        key = str(row.get("queryid"))
        if key not in seen:
            seen.add(key)
            merged.append(row)
    return merged


def advisor_statements(connection: Any, top_rows: list[dict[str, Any]],
                       size: int = ADVISOR_POOL_SIZE) -> list[dict[str, Any]]:
    """The statements the missing-index advisor tries: the report's top rows, then the
    ``size`` explainable statements of this database with the largest total time.

    Runs in the report's session (read-only, statement timeout). When the pool cannot be
    read, the top rows alone: the advisor still runs on what the report listed.
    """
    cursor = connection.cursor()
    try:
        version = int(_rows(cursor, "SELECT current_setting('server_version_num')::int "
                            "AS version")[0]["version"])
        pool = _advisor_pool(cursor, version, size)
    except Exception:
        return list(top_rows)
    finally:
        connection.rollback()
    return merge_statements(top_rows, pool)


EXPLAINABLE = re.compile(r"^\s*(select|with)\b", re.I)


def explain_generic(cursor: Any, query: str, version: int) -> Any:
    """The generic plan (JSON) of a normalised query with $n parameters.

    16+: EXPLAIN (GENERIC_PLAN). Before: PREPARE it, force the generic plan, and EXPLAIN
    EXECUTE with NULLs for the parameters (a generic plan does not look at their values).
    """
    if version >= 160000:
        return _rows(cursor, f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {query}")[0]["QUERY PLAN"]
    count = max((int(n) for n in re.findall(r"\$(\d+)", query)), default=0)
    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    cursor.execute(f"PREPARE stacktune_report_plan AS {query}")
    try:
        arguments = f"({', '.join(['NULL'] * count)})" if count else ""
        return _rows(cursor, f"EXPLAIN (FORMAT JSON) EXECUTE stacktune_report_plan{arguments}"
                     )[0]["QUERY PLAN"]
    finally:
        cursor.execute("DEALLOCATE stacktune_report_plan")


def _plans(connection: Any, statements: dict[str, Any], version: int,
           limit: int = 3) -> dict[str, Any]:
    """Generic plans of the worst read statements by total time (each in its own transaction)."""
    plans: dict[str, Any] = {}
    by_id = {row["queryid"]: row for row in statements.get("rows", [])}
    candidates = [by_id[q] for q in statements.get("top", {}).get("total_exec_time", [])
                  if q in by_id and EXPLAINABLE.match(by_id[q]["query"] or "")]
    for row in candidates[:limit]:
        cursor = connection.cursor()
        try:
            plan = explain_generic(cursor, row["query"], version)
            if isinstance(plan, str):  # a driver without a json adapter gives text
                plan = json.loads(plan)
            plans[row["queryid"]] = {"plan": plan}
        except Exception as error:
            plans[row["queryid"]] = {"error": (str(error).strip().splitlines() or ["?"])[0]}
        finally:
            connection.rollback()
    return plans


def _indexes(cursor: Any) -> dict[str, Any]:
    unused = _rows(cursor, """
        SELECT s.schemaname || '.' || s.relname AS table, s.indexrelname AS index,
               s.idx_scan, pg_relation_size(s.indexrelid) AS bytes,
               pg_get_indexdef(s.indexrelid) AS definition
        FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
        WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
        ORDER BY pg_relation_size(s.indexrelid) DESC LIMIT 50""")
    duplicate = _rows(cursor, """
        SELECT n.nspname || '.' || t.relname AS table,
               array_agg(ci.relname ORDER BY ci.relname) AS indexes,
               min(pg_get_indexdef(i.indexrelid)) AS definition,
               sum(pg_relation_size(i.indexrelid))::bigint AS bytes
        FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
        GROUP BY n.nspname, t.relname, i.indrelid, i.indkey::text, i.indclass::text,
                 coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
                 coalesce(pg_get_expr(i.indpred, i.indrelid), '')
        HAVING count(*) > 1""")
    invalid = _rows(cursor, """
        SELECT n.nspname || '.' || t.relname AS table, ci.relname AS index,
               pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE NOT i.indisvalid""")
    return {"unused": unused, "duplicate": duplicate, "invalid": invalid}


def _foreign_keys_without_index(cursor: Any) -> dict[str, Any]:
    """Foreign keys whose columns are not the leading columns of any index on the table."""
    rows = _rows(cursor, """
        SELECT n.nspname || '.' || t.relname AS table, c.conname AS constraint,
               array_agg(a.attname ORDER BY k.ord) AS columns,
               rn.nspname || '.' || rt.relname AS references,
               pg_relation_size(t.oid) AS table_bytes
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_class rt ON rt.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = rt.relnamespace
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND NOT EXISTS (
            SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid
              AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
              AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
        GROUP BY n.nspname, t.relname, t.oid, c.conname, rn.nspname, rt.relname
        ORDER BY 1, 2""")
    return {"rows": rows}


def _tables_without_pk(cursor: Any) -> dict[str, Any]:
    rows = _rows(cursor, """
        SELECT n.nspname || '.' || t.relname AS table, t.reltuples::bigint AS estimated_rows,
               pg_relation_size(t.oid) AS bytes
        FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE t.relkind IN ('r', 'p') AND NOT t.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          WHERE c.conrelid = t.oid AND c.contype = 'p')
        ORDER BY 1""")
    return {"rows": rows}


def _vacuum(cursor: Any) -> dict[str, Any]:
    """Per-table vacuum state; the bloat estimate is the dead share of the table's size."""
    rows = _rows(cursor, """
        SELECT s.schemaname || '.' || s.relname AS table, s.n_live_tup, s.n_dead_tup,
               s.n_mod_since_analyze, s.last_vacuum, s.last_autovacuum, s.last_analyze,
               s.last_autoanalyze, s.vacuum_count, s.autovacuum_count,
               age(c.relfrozenxid) AS xid_age, pg_table_size(c.oid) AS bytes,
               (pg_table_size(c.oid) * s.n_dead_tup::float8
                / greatest(s.n_live_tup + s.n_dead_tup, 1))::bigint AS bloat_bytes_estimate,
               c.reloptions AS reloptions
        FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
        ORDER BY s.n_dead_tup DESC, 1 LIMIT 50""")
    freeze = _rows(cursor, "SELECT setting::bigint AS autovacuum_freeze_max_age FROM pg_settings "
                   "WHERE name = 'autovacuum_freeze_max_age'")
    return {"rows": rows, **(freeze[0] if freeze else {})}


def _database(cursor: Any) -> dict[str, Any]:
    rows = _rows(cursor, """
        SELECT datname AS database, numbackends, xact_commit, xact_rollback, blks_read,
               blks_hit, temp_files, temp_bytes, deadlocks, stats_reset,
               (SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database())
                 AS xid_age
        FROM pg_stat_database WHERE datname = current_database()""")
    return rows[0] if rows else {}


def _checkpoints(cursor: Any, version: int) -> dict[str, Any]:
    if version >= 170000:
        row = _rows(cursor, "SELECT num_timed AS timed, num_requested AS requested, "
                    "write_time, sync_time, buffers_written, stats_reset "
                    "FROM pg_stat_checkpointer")[0]
        return {"view": "pg_stat_checkpointer", **row}
    row = _rows(cursor, "SELECT checkpoints_timed AS timed, checkpoints_req AS requested, "
                "checkpoint_write_time AS write_time, checkpoint_sync_time AS sync_time, "
                "buffers_checkpoint AS buffers_written, buffers_backend, stats_reset "
                "FROM pg_stat_bgwriter")[0]
    return {"view": "pg_stat_bgwriter", **row}


# --- PgBouncer and Redis ----------------------------------------------------------------

def collect_pgbouncer(connection: Any) -> dict[str, Any]:
    """SHOW POOLS and SHOW STATS from PgBouncer's admin console (an autocommit connection)."""
    result: dict[str, Any] = {}
    for command in ("POOLS", "STATS"):
        try:
            cursor = connection.cursor()
            result[command.lower()] = _rows(cursor, f"SHOW {command}")
        except Exception as error:
            result[command.lower()] = {"error": (
                f"{(str(error).strip().splitlines() or ['?'])[0]}: connect to the admin "
                "console (database pgbouncer) as a user in admin_users or stats_users")}
    return result


def parse_redis_url(url: str) -> tuple[str, int, str | None, str | None]:
    """host, port, username, password of redis://[user:password@]host[:port][/db]."""
    parts = urlsplit(url if "://" in url else f"redis://{url}")
    if parts.scheme not in ("redis", "") or not parts.hostname:
        raise ValueError(f"--redis {url!r}: write it as redis://[:password@]host[:port]")
    return (parts.hostname, parts.port or 6379, unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


def _resp_command(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_reply(stream: Any) -> str:
    line = stream.readline().rstrip(b"\r\n")
    if line.startswith(b"-"):
        raise ConnectionError(line[1:].decode(errors="replace"))
    if line.startswith(b"$"):
        length = int(line[1:])
        return "" if length < 0 else stream.read(length + 2)[:-2].decode(errors="replace")
    return line[1:].decode(errors="replace")


def parse_redis_info(text: str) -> dict[str, Any]:
    """INFO's 'key:value' lines as a dict, numbers as numbers."""
    info: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        try:
            info[key] = int(value)
        except ValueError:
            try:
                info[key] = float(value)
            except ValueError:
                info[key] = value
    return info


def collect_redis(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Redis INFO stats and memory (stdlib socket, RESP)."""
    host, port, user, password = parse_redis_url(url)
    shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            stream = sock.makefile("rwb")
            if password:
                stream.write(_resp_command("AUTH", *([user] if user else []), password))
                stream.flush()
                _resp_reply(stream)
            info: dict[str, Any] = {}
            for section in ("stats", "memory"):
                stream.write(_resp_command("INFO", section))
                stream.flush()
                info.update(parse_redis_info(_resp_reply(stream)))
            return {"info": info}
    except (OSError, ConnectionError) as error:
        return {"error": f"cannot read INFO from Redis at {shown}: {error}"}


# --- the snapshot -----------------------------------------------------------------------

def collect(connection: Any, top_n: int = TOP_N,
            statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> dict[str, Any]:
    """The snapshot of the database ``connection`` is on (a DB-API connection, not autocommit)."""
    cursor = connection.cursor()
    # The report's own statements would join the statistics it reads; only a superuser
    # may turn that off (pg_stat_statements.track is superuser-settable).
    try:
        cursor.execute("SET pg_stat_statements.track = 'none'")
        connection.commit()
    except Exception:
        connection.rollback()
    # Read-only and bounded before anything else; committed so that they outlive rollbacks.
    cursor.execute("SET default_transaction_read_only = on")
    cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
    cursor.execute("SET lock_timeout = 1000")
    connection.commit()
    head = _rows(cursor, "SELECT current_setting('server_version_num')::int AS version, "
                 "current_database() AS database, current_user AS user")[0]
    connection.rollback()
    version, context = head["version"], {"database": head["database"], "user": head["user"]}
    snapshot: dict[str, Any] = {"format": SNAPSHOT_FORMAT, "database": head["database"],
                                "user": head["user"]}

    def section(name: str, run: Any) -> None:
        try:
            snapshot[name] = run()
        except Exception as error:
            if isinstance(error, LookupError):
                hint = PG_STAT_STATEMENTS_HINT.format(db=head["database"])
                snapshot[name] = {"error": f"{error.args[0]}: {hint}"}
            else:
                snapshot[name] = {"error": _explain_error(error, name, context)}
        finally:
            connection.rollback()

    section("server", lambda: _server(connection.cursor(), version))
    section("statements", lambda: _statements(connection.cursor(), version, top_n))
    if "error" not in snapshot["statements"]:
        snapshot["plans"] = _plans(connection, snapshot["statements"], version)
        section("offset", lambda: _offset_statements(connection.cursor(), version))
    else:
        missing = snapshot["statements"]["error"]
        snapshot["plans"] = {"error": f"no statements to explain: {missing}"}
        snapshot["offset"] = {"error": missing}
    section("indexes", lambda: _indexes(connection.cursor()))
    section("foreign_keys_without_index", lambda: _foreign_keys_without_index(connection.cursor()))
    section("tables_without_pk", lambda: _tables_without_pk(connection.cursor()))
    section("vacuum", lambda: _vacuum(connection.cursor()))
    section("database_stats", lambda: _database(connection.cursor()))
    section("checkpoints", lambda: _checkpoints(connection.cursor(), version))
    return snapshot

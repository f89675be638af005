"""The missing-index advisor: hypothetical indexes tried against the slow statements.

The approach of Dexter and PoWA: candidate columns come from the predicates the slow
statements filter on (pg_qualstats when it is installed, and always from the Filter of the
table scans of the statement's generic plan), each candidate becomes a hypothetical
index (HypoPG: visible only to this session's planner, nothing is written), and the
statement's EXPLAIN cost is compared with and without it. A candidate is kept only when the
planner uses the index and the cost falls to at most half (COST_RATIO_KEPT).

Read-only: EXPLAIN never runs the statement, PREPARE only plans it, HypoPG's indexes live
in this backend's memory and are removed (hypopg_reset) before returning. Only
``apply_index`` writes, and only the CREATE INDEX CONCURRENTLY this module built.

Stdlib and DB-API only (a psycopg2 or psycopg cursor), so it can ship as module_utils.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Keep a hypothetical index when the planner uses it and the cost after is at most this
# fraction of the cost before (a drop of 50% or more): smaller gains are within the noise
# of the cost model and do not pay for an index's write and storage cost.
COST_RATIO_KEPT = 0.5
# Severity: the served statements' total time (ms) and how far the cost falls.
HIGH_TOTAL_MS = 1000.0
HIGH_RATIO = 0.1
LOW_TOTAL_MS = 100.0
MAX_CANDIDATES_PER_STATEMENT = 12
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
MAX_IDENTIFIER_BYTES = 63

EQUALITY_OPERATORS = frozenset({"="})
RANGE_OPERATORS = frozenset({"<", "<=", ">", ">="})
# Statements whose plan EXPLAIN can show without running them and an index can serve.
_EXPLAINABLE = re.compile(r"^\s*(select|with|update|delete)\b", re.IGNORECASE)
_PARAM = re.compile(r"\$(\d+)")
_SIMPLE_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")
# "(col = $1)", "((t.col >= $2) AND ...)": a column (maybe qualified, maybe quoted) on the
# left of a comparison operator.
_FILTER_PREDICATE = re.compile(
    r"""(?:^|[\s(])
        (?:(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\.)?   # alias.
        ("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)            # column
        (?:\)?::[A-Za-z_ ]+?)?                             # a cast of the column
        \s*(=|<=|>=|<|>)\s""",
    re.VERBOSE,
)

# SQL key words PostgreSQL reserves (Appendix C, "reserved" and "reserved (can be function
# or type)"): as identifiers they need double quotes.
RESERVED_WORDS = frozenset({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "binary", "both", "case", "cast", "check", "collate", "collation", "column",
    "concurrently", "constraint", "create", "cross", "current_catalog", "current_date",
    "current_role", "current_schema", "current_time", "current_timestamp", "current_user",
    "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "false", "fetch",
    "for", "foreign", "freeze", "from", "full", "grant", "group", "having", "ilike", "in",
    "initially", "inner", "intersect", "into", "is", "isnull", "join", "lateral", "leading",
    "left", "like", "limit", "localtime", "localtimestamp", "natural", "not", "notnull", "null",
    "offset", "on", "only", "or", "order", "outer", "overlaps", "placing", "primary",
    "references", "returning", "right", "select", "session_user", "similar", "some", "symmetric",
    "system_user", "table", "tablesample", "then", "to", "trailing", "true", "union", "unique",
    "user", "using", "variadic", "verbose", "when", "where", "window", "with",
})


class IndexAdvisorError(RuntimeError):
    """The advisor cannot run here: the message says what is missing and how to add it."""


def quote_ident(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident() writes it: bare when it can be."""
    if _SIMPLE_IDENTIFIER.match(name) and name not in RESERVED_WORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def _unquote(name: str) -> str:
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def index_name(table: str, columns: Sequence[str]) -> str:
    """A stable name: ``<table>_<col>_<col>_idx``, shortened with a hash past 63 bytes."""
    name = f"{table}_{'_'.join(columns)}_idx"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    keep = MAX_IDENTIFIER_BYTES - len(f"_{digest}_idx")
    head = name.encode()[:keep].decode(errors="ignore")
    return f"{head}_{digest}_idx"


def create_index_statement(schema: str, table: str, columns: Sequence[str]) -> str:
    """The CREATE INDEX CONCURRENTLY that the finding proposes (and apply_index runs)."""
    if not columns:
        raise ValueError("an index needs at least one column")
    cols = ", ".join(quote_ident(c) for c in columns)
    return (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(index_name(table, columns))} "
            f"ON {quote_ident(schema)}.{quote_ident(table)} ({cols})")


# --- Candidates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Predicate:
    """A column a statement filters on, and how (``=`` or a range operator)."""

    schema: str
    table: str
    column: str
    operator: str


@dataclass
class _Scan:
    schema: str
    table: str
    equality: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)

    def add(self, column: str, operator: str) -> None:
        bucket = self.equality if operator in EQUALITY_OPERATORS else self.ranges
        if (operator in EQUALITY_OPERATORS or operator in RANGE_OPERATORS) and column not in bucket:
            bucket.append(column)


def predicates_from_filter(schema: str, table: str, condition: str) -> list[Predicate]:
    """The ``column op`` pairs of a plan's Filter text, such as ``((a = $1) AND (b > $2))``.

    Only comparisons a B-tree serves (=, <, <=, >, >=); the caller checks the column exists.
    """
    found: list[Predicate] = []
    for match in _FILTER_PREDICATE.finditer(condition):
        column, operator = _unquote(match.group(1)), match.group(2)
        if column.lower() in ("and", "or", "not"):
            continue
        found.append(Predicate(schema, table, column, operator))
    return found


# Scans whose Filter holds the rows' conditions that no index served: a sequential scan, or
# an index chosen for another condition or for the ORDER BY (the Index Cond is served).
FILTERED_SCANS = frozenset({"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"})


def predicates_from_plan(plan: Any) -> list[Predicate]:
    """Predicates of the Filter of every table scan (FILTERED_SCANS) in an EXPLAIN (FORMAT
    JSON) result."""
    root = plan[0]["Plan"] if isinstance(plan, list) else plan.get("Plan", plan)
    found: list[Predicate] = []
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.get("Plans", [])))
        if node.get("Node Type") in FILTERED_SCANS and node.get("Filter"):
            found.extend(predicates_from_filter(
                node.get("Schema", "public"), node["Relation Name"], node["Filter"]))
    return found


Candidates = dict[tuple[str, str], list[tuple[str, ...]]]


def candidate_column_lists(predicates: Iterable[Predicate]) -> Candidates:
    """Per table, the column lists worth trying as an index, simplest first.

    Each column alone; all equality columns together; equality columns then the first range
    column (a B-tree serves ``a = ? AND b > ?`` from one index on (a, b), not (b, a)).
    """
    scans: dict[tuple[str, str], _Scan] = {}
    for p in predicates:
        scans.setdefault((p.schema, p.table), _Scan(p.schema, p.table)).add(p.column, p.operator)
    result: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for key, scan in scans.items():
        lists: list[tuple[str, ...]] = [(c,) for c in scan.equality + scan.ranges]
        if len(scan.equality) > 1:
            lists.append(tuple(scan.equality))
        if scan.equality and scan.ranges:
            lists.append((*scan.equality, scan.ranges[0]))
        unique = list(dict.fromkeys(lists))[:MAX_CANDIDATES_PER_STATEMENT]
        if unique:
            result[key] = unique
    return result


def plan_cost(plan: Any) -> float:
    root = plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"]
    return float(root["Total Cost"])


def plan_uses_index(plan: Any, name: str) -> bool:
    """True when a node of the plan scans the index ``name`` (HypoPG's names included)."""
    root = plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"]
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", []))
        if name in str(node.get("Index Name", "")):
            return True
    return False


def parameter_count(query: str) -> int:
    return max((int(n) for n in _PARAM.findall(query)), default=0)


def is_explainable(query: str) -> bool:
    """One SELECT/WITH/UPDATE/DELETE statement: no second statement hides after a ';'."""
    body = query.strip().rstrip(";")
    return bool(_EXPLAINABLE.match(body)) and ";" not in body


def severity(total_ms: float, ratio: float) -> str:
    if total_ms >= HIGH_TOTAL_MS and ratio <= HIGH_RATIO:
        return "high"
    if total_ms < LOW_TOTAL_MS:
        return "low"
    return "medium"


# --- Talking to the server -----------------------------------------------------------


def _rows(cursor: Any, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    return list(cursor.fetchall())


def _installed_extensions(cursor: Any) -> set[str]:
    return {row[0] for row in _rows(cursor, "SELECT extname FROM pg_extension")}


def _explain(cursor: Any, query: str, version: int) -> Any:
    """The generic plan of a normalized statement ($1, $2 ... placeholders), as JSON.

    PostgreSQL 16+ has EXPLAIN (GENERIC_PLAN). Before, PREPARE the statement and EXPLAIN
    EXECUTE it with NULLs under plan_cache_mode=force_generic_plan: the plan is built for
    unknown values, as GENERIC_PLAN does. Prepared again each time, so a new hypothetical
    index is seen.
    """
    body = query.strip().rstrip(";")
    count = parameter_count(body)
    if version >= 16 or count == 0:
        option = "GENERIC_PLAN, " if count and version >= 16 else ""
        (plan,), = _rows(cursor, f"EXPLAIN ({option}FORMAT JSON) {body}")
    else:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE stacktune_advisor AS {body}")
        try:
            nulls = ", ".join(["NULL"] * count)
            (plan,), = _rows(cursor, f"EXPLAIN (FORMAT JSON) EXECUTE stacktune_advisor({nulls})")
        finally:
            cursor.execute("DEALLOCATE stacktune_advisor")
            cursor.execute("RESET plan_cache_mode")
    return json.loads(plan) if isinstance(plan, str) else plan


def _qualstats_predicates(cursor: Any, queryids: Sequence[int]) -> dict[int, list[Predicate]]:
    """pg_qualstats' predicates evaluated as filters (not by an index) for these statements."""
    rows = _rows(cursor, """
        SELECT DISTINCT qs.queryid, n.nspname, c.relname, a.attname, o.oprname
        FROM pg_qualstats qs
        JOIN pg_class c ON c.oid = qs.lrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = qs.lrelid AND a.attnum = qs.lattnum
        JOIN pg_operator o ON o.oid = qs.opno
        WHERE qs.eval_type = 'f' AND qs.queryid = ANY(%s)
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        """, (list(queryids),))
    found: dict[int, list[Predicate]] = {}
    for queryid, schema, table, column, operator in rows:
        found.setdefault(int(queryid), []).append(Predicate(schema, table, column, operator))
    return found


def _existing_columns(cursor: Any, schema: str, table: str) -> set[str]:
    rows = _rows(cursor, """
        SELECT a.attname FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'm')
        """, (schema, table))
    return {row[0] for row in rows}


@dataclass
class _Trial:
    schema: str
    table: str
    columns: tuple[str, ...]
    cost_before: float
    cost_after: float


def _try_candidates(cursor: Any, query: str, version: int,
                    candidates: Candidates,
                    cost_before: float) -> list[_Trial]:
    """The best kept candidate per table for one statement."""
    kept: list[_Trial] = []
    for (schema, table), column_lists in candidates.items():
        best: _Trial | None = None
        for columns in column_lists:
            ddl = (f"CREATE INDEX ON {quote_ident(schema)}.{quote_ident(table)} "
                   f"({', '.join(quote_ident(c) for c in columns)})")
            try:
                (_oid, hypothetical), = _rows(
                    cursor, "SELECT indexrelid, indexname FROM hypopg_create_index(%s)", (ddl,))
                plan = _explain(cursor, query, version)
                cursor.execute("SELECT hypopg_reset()")
            except Exception:  # a candidate HypoPG or the planner refuses is skipped
                _recover(cursor)
                continue
            after = plan_cost(plan)
            if not plan_uses_index(plan, hypothetical) or after > cost_before * COST_RATIO_KEPT:
                continue
            # Fewer columns win unless more columns lower the cost by a further 10%.
            if best is None or after < best.cost_after * 0.9:
                best = _Trial(schema, table, columns, cost_before, after)
        if best is not None:
            kept.append(best)
    return kept


def _statement_candidates(cursor: Any, plan: Any, from_qualstats: list[Predicate]) -> Candidates:
    predicates = from_qualstats + predicates_from_plan(plan)
    columns_by_table: dict[tuple[str, str], set[str]] = {}
    checked: list[Predicate] = []
    for p in predicates:
        key = (p.schema, p.table)
        if key not in columns_by_table:
            columns_by_table[key] = _existing_columns(cursor, p.schema, p.table)
        if p.column in columns_by_table[key]:
            checked.append(p)
    return candidate_column_lists(checked)


def missing_index_findings(cursor: Any, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Findings (kind ``missing_index``) for the statements a new index makes much cheaper.

    ``statements``: pg_stat_statements rows as dicts (queryid, query, calls, total_exec_time,
    mean_exec_time, rows), the slow ones first. Raises IndexAdvisorError when HypoPG is not
    installed in this database. Leaves no hypothetical index and no prepared statement behind.
    """
    extensions = _installed_extensions(cursor)
    if "hypopg" not in extensions:
        raise IndexAdvisorError(
            "the index advisor needs HypoPG in this database: install the package "
            "postgresql-<major>-hypopg and run CREATE EXTENSION hypopg (the stacktune "
            "postgresql role does both)")
    (version_num,), = _rows(cursor, "SELECT current_setting('server_version_num')::int")
    version = int(version_num) // 10000
    usable = [s for s in statements if s.get("query") and is_explainable(str(s["query"]))]
    qualstats: dict[int, list[Predicate]] = {}
    if "pg_qualstats" in extensions and usable:
        qualstats = _qualstats_predicates(cursor, [int(s["queryid"]) for s in usable])

    served: dict[tuple[str, str, tuple[str, ...]], list[dict[str, Any]]] = {}
    sources: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    try:
        _quiet(cursor)
        cursor.execute("SELECT hypopg_reset()")
        for statement in usable:
            query = str(statement["query"])
            try:
                plan = _explain(cursor, query, version)
            except Exception:  # a statement the planner refuses is skipped, not fatal
                _recover(cursor)
                continue
            from_qualstats = qualstats.get(int(statement["queryid"]), [])
            candidates = _statement_candidates(cursor, plan, from_qualstats)
            for trial in _try_candidates(cursor, query, version, candidates, plan_cost(plan)):
                key = (trial.schema, trial.table, trial.columns)
                served.setdefault(key, []).append({
                    "queryid": statement["queryid"], "query": query,
                    "calls": statement.get("calls"),
                    "mean_exec_time": statement.get("mean_exec_time"),
                    "total_exec_time": statement.get("total_exec_time"),
                    "cost_before": round(trial.cost_before, 2),
                    "cost_after": round(trial.cost_after, 2),
                })
                qualstats_columns = {(p.schema, p.table, p.column) for p in from_qualstats}
                from_pg_qualstats = any((trial.schema, trial.table, c) in qualstats_columns
                                        for c in trial.columns)
                sources.setdefault(key, set()).add("pg_qualstats" if from_pg_qualstats else "plan")
    finally:
        cursor.execute("SELECT hypopg_reset()")
        _unquiet(cursor)
    return [_finding(key, rows, sources[key]) for key, rows in _covering_first(served)]


def _covering_first(served: dict[tuple[str, str, tuple[str, ...]], list[dict[str, Any]]]
                    ) -> list[tuple[tuple[str, str, tuple[str, ...]], list[dict[str, Any]]]]:
    """Findings ordered by the total time of the statements they serve, largest first."""
    return sorted(served.items(),
                  key=lambda item: -sum(float(r["total_exec_time"] or 0) for r in item[1]))


def _is_superuser(cursor: Any) -> bool:
    return bool(_rows(cursor, "SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper"))


def _quiet(cursor: Any) -> None:
    """Keep the advisor's own statements out of pg_stat_statements when this role may.

    Its EXPLAINs (utility statements, recorded with track_utility on) and, before 16, the
    PREPAREd statement (recorded under the PREPARE text) would show up in the next report.
    Only a superuser can set pg_stat_statements.track for a session.
    """
    if _is_superuser(cursor):
        cursor.execute("SET pg_stat_statements.track = none")


def _unquiet(cursor: Any) -> None:
    """Undo _quiet; RESET of that parameter is refused to other roles, as SET is."""
    if _is_superuser(cursor):
        cursor.execute("RESET pg_stat_statements.track")


def _recover(cursor: Any) -> None:
    """After a failed EXPLAIN, leave the aborted transaction (the advisor wrote nothing in
    it) and drop what a rollback keeps: the hypothetical indexes and the prepared statement.
    """
    connection = getattr(cursor, "connection", None)
    if connection is not None and not getattr(connection, "autocommit", True):
        connection.rollback()
    cursor.execute("SELECT hypopg_reset()")
    if _rows(cursor, "SELECT 1 FROM pg_prepared_statements WHERE name = 'stacktune_advisor'"):
        cursor.execute("DEALLOCATE stacktune_advisor")
    cursor.execute("RESET plan_cache_mode")
    _quiet(cursor)  # the rollback undid the SET


def _finding(key: tuple[str, str, tuple[str, ...]], statements: list[dict[str, Any]],
             sources: set[str]) -> dict[str, Any]:
    schema, table, columns = key
    before = sum(s["cost_before"] for s in statements)
    after = sum(s["cost_after"] for s in statements)
    ratio = after / before if before else 1.0
    total_ms = sum(float(s["total_exec_time"] or 0) for s in statements)
    statement = create_index_statement(schema, table, columns)
    column_text = ", ".join(columns)
    return {
        "kind": "missing_index",
        "severity": severity(total_ms, ratio),
        "title": f"Missing index on {schema}.{table} ({column_text})",
        "evidence": {
            "table": f"{schema}.{table}",
            "columns": list(columns),
            "cost_before": round(before, 2),
            "cost_after": round(after, 2),
            "cost_drop_percent": round(100 * (1 - ratio), 1),
            "total_exec_time_ms": round(total_ms, 1),
            "candidates_from": sorted(sources),
            "statements": statements,
        },
        "fix": statement,
        "objects": {
            "schema": schema, "table": table, "columns": list(columns),
            "index": index_name(table, columns),
            "queryids": [s["queryid"] for s in statements],
        },
    }


def apply_index(cursor: Any, finding: dict[str, Any]) -> None:
    """Run the finding's CREATE INDEX CONCURRENTLY (outside a transaction, as it must be).

    Refuses anything but the statement this module builds for the finding's objects, and
    fails when the build left an invalid index (CONCURRENTLY can), saying how to retry.
    """
    if finding.get("kind") != "missing_index":
        raise ValueError(f"apply_index applies missing_index findings, not {finding.get('kind')!r}")
    objects = finding.get("objects") or {}
    try:
        expected = create_index_statement(objects["schema"], objects["table"], objects["columns"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"finding objects lack schema/table/columns: {error}") from None
    if finding.get("fix") != expected:
        raise ValueError(f"refusing to run {finding.get('fix')!r}: not the advisor's statement "
                         f"{expected!r}")
    connection = cursor.connection
    previous = connection.autocommit
    try:
        connection.autocommit = True
    except Exception as error:
        raise IndexAdvisorError(
            "CREATE INDEX CONCURRENTLY cannot run inside a transaction: commit or roll back "
            f"the connection's transaction first ({error})") from None
    try:
        cursor.execute(expected)
        (valid,), = _rows(cursor, """
            SELECT i.indisvalid FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s
            """, (objects["schema"], objects["index"]))
    finally:
        connection.autocommit = previous
    if not valid:
        raise IndexAdvisorError(
            f"index {objects['schema']}.{objects['index']} exists but is invalid (an earlier "
            f"concurrent build failed): DROP INDEX CONCURRENTLY "
            f"{quote_ident(objects['schema'])}.{quote_ident(objects['index'])}; then apply again")

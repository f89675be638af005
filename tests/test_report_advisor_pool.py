"""The statements the missing-index advisor tries: the report's top rows plus its own pool.

The pool itself is read from a real server in molecule/postgresql/tests/
test_index_advisor_pool.py; here, the merge and the fallback when the pool cannot be read.
"""

from __future__ import annotations

from typing import Any

import pytest

from stacktune.report.collect import ADVISOR_POOL_SIZE, advisor_statements, merge_statements


def row(queryid: str, query: str = "SELECT 1", total: float = 1.0) -> dict[str, Any]:
    return {"queryid": queryid, "query": query, "calls": 1, "total_exec_time": total,
            "mean_exec_time": total, "rows": 1}


def test_merge_keeps_the_top_rows_first_and_adds_the_pool_without_duplicates():
    top = [row("1", total=900.0), row("2", total=5.0)]
    pool = [row("1", total=900.0), row("3", total=80.0), row("2", total=5.0), row("4")]
    merged = merge_statements(top, pool)
    assert [r["queryid"] for r in merged] == ["1", "2", "3", "4"]
    # The top list's own row is kept (not the pool's copy of it).
    assert merged[0] is top[0]
    assert merge_statements([], pool[1:2]) == [pool[1]]
    assert merge_statements(top, []) == top


class Cursor:
    """Answers the version query, then the pool query with the given rows, or raises."""

    def __init__(self, pool: list[dict[str, Any]] | Exception, version: int):
        self.pool, self.version = pool, version
        self.description: list[tuple[str]] = []
        self.answer: list[tuple[Any, ...]] = []
        self.executed: list[tuple[str, Any]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.executed.append((sql, params))
        if "server_version_num" in sql:
            self.description, self.answer = [("version",)], [(self.version,)]
            return
        if isinstance(self.pool, Exception):
            raise self.pool
        names = list(self.pool[0]) if self.pool else ["queryid"]
        self.description = [(name,) for name in names]
        self.answer = [tuple(r[n] for n in names) for r in self.pool]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.answer


class Connection:
    def __init__(self, pool: list[dict[str, Any]] | Exception, version: int = 150000):
        self.cursor_ = Cursor(pool, version)
        self.rollbacks = 0

    def cursor(self) -> Cursor:
        return self.cursor_

    def rollback(self) -> None:
        self.rollbacks += 1


def test_the_pool_query_reads_explainable_statements_by_total_time_bounded():
    connection = Connection([row("7", "SELECT a FROM t WHERE b = $1", 3.0)])
    merged = advisor_statements(connection, [row("1")])
    assert [r["queryid"] for r in merged] == ["1", "7"]
    sql, params = connection.cursor_.executed[-1]
    assert params == (ADVISOR_POOL_SIZE,)
    assert "ORDER BY s.total_exec_time DESC" in sql
    assert "(select|with|update|delete)" in sql
    # The report's own statements stay out, as in the top lists.
    assert "stacktune_report_plan" in sql
    # Nothing is left open in the report's session.
    assert connection.rollbacks == 1


def test_before_13_the_pool_reads_total_time_and_mean_time():
    connection = Connection([], version=120000)
    advisor_statements(connection, [])
    sql, _ = connection.cursor_.executed[-1]
    assert "ORDER BY s.total_time DESC" in sql
    assert "s.total_time AS total_exec_time" in sql and "s.mean_time AS mean_exec_time" in sql


@pytest.mark.parametrize("error", [RuntimeError("canceling statement due to statement timeout"),
                                   PermissionError("permission denied for view")])
def test_when_the_pool_cannot_be_read_the_advisor_gets_the_top_rows(error):
    top = [row("1"), row("2")]
    connection = Connection(error)
    assert advisor_statements(connection, top) == top
    # The failed query's transaction is rolled back, so the advisor can run on the session.
    assert connection.rollbacks == 1

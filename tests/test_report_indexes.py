"""The index advisor's pure parts: candidates from plans and quals, names, statements."""

from __future__ import annotations

import pytest

from stacktune.report import indexes
from stacktune.report.indexes import (
    Predicate,
    apply_index,
    candidate_column_lists,
    create_index_statement,
    index_name,
    is_explainable,
    parameter_count,
    plan_uses_index,
    predicates_from_filter,
    predicates_from_plan,
    quote_ident,
    severity,
)

# EXPLAIN (FORMAT JSON) of "SELECT ... FROM shop_order o JOIN shop_customer c ... WHERE
# o.status = $1 AND o.created > $2 AND c.email = $3", as PostgreSQL 15 prints it.
JOIN_PLAN = [{"Plan": {
    "Node Type": "Hash Join", "Total Cost": 4210.5,
    "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "shop_order", "Schema": "public",
         "Alias": "o", "Total Cost": 3900.0,
         "Filter": "((created > $2) AND ((status)::text = $1))"},
        {"Node Type": "Hash", "Total Cost": 250.0, "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "shop_customer", "Schema": "public",
             "Alias": "c", "Total Cost": 250.0, "Filter": "((email)::text = $3)"}]},
    ]}}]


def test_filter_text_gives_columns_and_operators():
    condition = '((a = $1) AND (t."Mixed Case" >= $2) AND (b ~~ $3))'
    found = predicates_from_filter("public", "t", condition)
    assert found == [Predicate("public", "t", "a", "="),
                     Predicate("public", "t", "Mixed Case", ">=")]


def test_filter_text_sees_through_a_cast_of_the_column():
    assert predicates_from_filter("public", "t", "((status)::text = $1)") == [
        Predicate("public", "t", "status", "=")]


def test_plan_gives_the_filtered_columns_of_each_seq_scan():
    assert predicates_from_plan(JOIN_PLAN) == [
        Predicate("public", "shop_order", "created", ">"),
        Predicate("public", "shop_order", "status", "="),
        Predicate("public", "shop_customer", "email", "="),
    ]


def test_the_filter_of_an_index_scan_gives_its_columns():
    """An index chosen for the ORDER BY, the WHERE left to a Filter: the plan the demo's
    naive comments page gets on the cluster (43 ms a call, 'Index Scan Backward using
    publishing_comment_created_at' with 'Filter: author_name = $1')."""
    plan = [{"Plan": {"Node Type": "Limit", "Total Cost": 306.65, "Plans": [
        {"Node Type": "Index Scan", "Relation Name": "publishing_comment", "Schema": "public",
         "Index Name": "publishing_comment_created_at_b6ede75e", "Total Cost": 2623.98,
         "Filter": "((author_name)::text = $1)"}]}}]
    assert predicates_from_plan(plan) == [
        Predicate("public", "publishing_comment", "author_name", "=")]


def test_index_scans_give_no_candidates():
    plan = [{"Plan": {"Node Type": "Index Scan", "Relation Name": "t", "Schema": "public",
                      "Index Name": "t_pkey", "Total Cost": 8.3, "Index Cond": "(id = $1)"}}]
    assert predicates_from_plan(plan) == []


def test_candidates_put_equality_before_range_columns():
    lists = candidate_column_lists(predicates_from_plan(JOIN_PLAN))
    assert lists[("public", "shop_order")] == [("status",), ("created",), ("status", "created")]
    assert lists[("public", "shop_customer")] == [("email",)]


def test_candidates_combine_several_equality_columns():
    preds = [Predicate("s", "t", "a", "="), Predicate("s", "t", "b", "="),
             Predicate("s", "t", "a", "="), Predicate("s", "t", "c", "<")]
    assert candidate_column_lists(preds)[("s", "t")] == [
        ("a",), ("b",), ("c",), ("a", "b"), ("a", "b", "c")]


def test_operators_a_btree_cannot_serve_give_no_candidate():
    assert candidate_column_lists([Predicate("s", "t", "a", "~~"),
                                   Predicate("s", "t", "b", "<>")]) == {}


@pytest.mark.parametrize(("name", "quoted"), [
    ("email", "email"), ("user", '"user"'), ("order", '"order"'), ("Email", '"Email"'),
    ('we"ird', '"we""ird"'), ("has space", '"has space"'), ("_x$1", "_x$1"),
])
def test_quote_ident_matches_postgresql(name, quoted):
    assert quote_ident(name) == quoted


def test_statement_is_concurrent_idempotent_and_quoted():
    assert create_index_statement("public", "order", ["user", "created"]) == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS order_user_created_idx '
        'ON public."order" ("user", created)')


def test_index_name_is_stable_and_fits_63_bytes():
    short = index_name("shop_order", ["status", "created"])
    assert short == "shop_order_status_created_idx"
    long_columns = [f"column_number_{i}" for i in range(6)]
    long = index_name("a_rather_long_table_name", long_columns)
    assert len(long.encode()) <= 63
    assert long == index_name("a_rather_long_table_name", long_columns)
    assert long != index_name("a_rather_long_table_name", [*long_columns[:5], "other"])
    assert long.endswith("_idx")


def test_hypothetical_index_use_is_found_by_name():
    plan = [{"Plan": {"Node Type": "Index Scan", "Total Cost": 8.4,
                      "Index Name": "<13741>btree_public_t_email"}}]
    assert plan_uses_index(plan, "<13741>btree_public_t_email")
    assert not plan_uses_index(JOIN_PLAN, "<13741>btree_public_t_email")


@pytest.mark.parametrize(("query", "ok"), [
    ("SELECT * FROM t WHERE a = $1", True),
    ("  with x as (select 1) select * from x", True),
    ("UPDATE t SET a = $1 WHERE b = $2", True),
    ("DELETE FROM t WHERE b = $1;", True),
    ("INSERT INTO t VALUES ($1)", False),
    ("VACUUM t", False),
    ("SELECT 1; DROP TABLE t", False),
])
def test_only_single_explainable_statements_are_planned(query, ok):
    assert is_explainable(query) is ok


def test_parameter_count_is_the_highest_placeholder():
    assert parameter_count("SELECT * FROM t WHERE a = $2 AND b = $10 OR c = $1") == 10
    assert parameter_count("SELECT 1") == 0


@pytest.mark.parametrize(("total_ms", "ratio", "expected"), [
    (5000.0, 0.01, "high"), (5000.0, 0.4, "medium"), (500.0, 0.01, "medium"), (50.0, 0.01, "low"),
])
def test_severity(total_ms, ratio, expected):
    assert severity(total_ms, ratio) == expected


class _RefusingCursor:
    """apply_index must refuse before it touches the connection."""

    @property
    def connection(self):
        raise AssertionError("apply_index touched the connection")

    def execute(self, *args):
        raise AssertionError("apply_index executed SQL")


def _finding(fix: str) -> dict:
    return {"kind": "missing_index", "fix": fix, "objects": {
        "schema": "public", "table": "t", "columns": ["email"], "index": "t_email_idx"}}


@pytest.mark.parametrize("fix", [
    "DROP TABLE t",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_email_idx ON public.t (email); DROP TABLE t",
    "CREATE INDEX t_email_idx ON public.t (email)",
])
def test_apply_index_refuses_anything_but_its_own_statement(fix):
    with pytest.raises(ValueError, match="refusing"):
        apply_index(_RefusingCursor(), _finding(fix))


def test_apply_index_refuses_other_kinds():
    finding = _finding(create_index_statement("public", "t", ["email"]))
    finding["kind"] = "unused_index"
    with pytest.raises(ValueError, match="missing_index"):
        apply_index(_RefusingCursor(), finding)


def test_advisor_without_hypopg_says_how_to_install_it():
    class Cursor:
        def execute(self, sql, params=None):
            self.sql = sql

        def fetchall(self):
            return [("plpgsql",), ("pg_stat_statements",)]

    with pytest.raises(indexes.IndexAdvisorError, match="postgresql-<major>-hypopg"):
        indexes.missing_index_findings(Cursor(), [{"queryid": 1, "query": "SELECT 1"}])

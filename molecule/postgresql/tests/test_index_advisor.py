"""The missing-index advisor against the real server: HypoPG, pg_qualstats, the fix applied.

The advisor module runs on the host (python3-psycopg2 is there) as the postgres superuser,
on a table this test creates in the app database and drops at the end.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from conftest import PRIMARY
from stacktune_testlib import psql, show

import stacktune.report.indexes as advisor_module

testinfra_hosts = [PRIMARY]

TABLE = "advisor_demo"
ROWS = 200_000
RUNS = 200
REMOTE_DIR = "/tmp/stacktune-advisor"
# Finds, applies, or reads pg_stat_statements for the statements on TABLE; prints JSON.
DRIVER = f"""
import json, sys
import psycopg2
sys.path.insert(0, {REMOTE_DIR!r})
from indexes import apply_index, missing_index_findings

connection = psycopg2.connect(dbname="app")
cursor = connection.cursor()

def statements():
    cursor.execute(
        "SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
        "WHERE datname = current_database()) AND query LIKE '%%{TABLE}%%' "
        "ORDER BY total_exec_time DESC")
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]

if sys.argv[1] == "find":
    # A statement the planner refuses (its table is gone) is skipped, not fatal.
    gone = {{"queryid": 1, "query": "SELECT * FROM {TABLE}_gone WHERE a = $1", "calls": 1,
            "total_exec_time": 1e6, "mean_exec_time": 1e6, "rows": 1}}
    findings = missing_index_findings(cursor, [gone] + statements())
    cursor.execute("SELECT count(*) FROM hypopg()")
    left = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM pg_prepared_statements")
    prepared = cursor.fetchone()[0]
    connection.rollback()
    print(json.dumps({{"findings": findings, "hypothetical_left": left,
                      "prepared_left": prepared}}, default=str))
elif sys.argv[1] == "apply":
    finding = json.loads(sys.stdin.read())
    connection.rollback()
    apply_index(cursor, finding)
    print(json.dumps({{"applied": finding["fix"]}}))
else:
    print(json.dumps(statements(), default=str))
"""


def advisor(host, action: str, stdin: str = "") -> object:
    source = Path(advisor_module.__file__).read_text()
    for name, text in (("indexes.py", source), ("driver.py", DRIVER)):
        encoded = base64.b64encode(text.encode()).decode()
        host.check_output("mkdir -p %s && echo %s | base64 -d > %s/%s",
                          REMOTE_DIR, encoded, REMOTE_DIR, name)
    command = f"runuser -u postgres -- python3 {REMOTE_DIR}/driver.py {action}"
    if stdin:
        command = f"echo {base64.b64encode(stdin.encode()).decode()} | base64 -d | {command}"
    result = host.run(command)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def run_filter_queries(host, where: str, sample_rate: str) -> None:
    """RUNS statements of one shape (different constants), each a client statement."""
    lines = "\n".join(f"SELECT id FROM {TABLE} WHERE {where.format(i=i)};" for i in range(RUNS))
    encoded = base64.b64encode(lines.encode()).decode()
    result = host.run(
        "echo %s | base64 -d | PGOPTIONS=%s runuser -u postgres -- psql -XAtq -d app "
        "-v ON_ERROR_STOP=1 >/dev/null", encoded, f"-c pg_qualstats.sample_rate={sample_rate}")
    assert result.rc == 0, result.stderr


def mean_ms(host, fragment: str) -> float:
    rows = [r for r in advisor(host, "statements") if fragment in r["query"]]
    assert len(rows) == 1, rows
    return float(rows[0]["mean_exec_time"])


@pytest.fixture(scope="module")
def demo_table(host):
    psql(host, f"DROP TABLE IF EXISTS {TABLE}", db="app")
    psql(host, f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, email text NOT NULL, "
               "code integer NOT NULL, note text)", db="app")
    psql(host, f"INSERT INTO {TABLE} (email, code, note) SELECT 'user' || i || '@example.com', "
               f"i % 50000, repeat('x', 40) FROM generate_series(1, {ROWS}) AS i", db="app")
    psql(host, f"ANALYZE {TABLE}", db="app")
    psql(host, "SELECT pg_stat_statements_reset()", db="app")
    psql(host, "SELECT pg_qualstats_reset()", db="app")
    # email: recorded by pg_qualstats (every statement sampled for the test);
    # code: not sampled at all, so only the generic plan's Filter can name it.
    run_filter_queries(host, "email = 'user{i}@example.com'", "1")
    run_filter_queries(host, "code = {i}", "0")
    yield TABLE
    psql(host, f"DROP TABLE IF EXISTS {TABLE}", db="app")
    host.run("rm -rf %s", REMOTE_DIR)


def test_hypopg_and_pg_qualstats_are_installed_in_the_app_database(host):
    installed = psql(host, "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension",
                     db="app").split(",")
    assert {"hypopg", "pg_qualstats", "pg_stat_statements"} <= set(installed)


def test_pg_qualstats_is_preloaded_with_the_planned_sample_rate(host, plan):
    assert "pg_qualstats" in show(host, "shared_preload_libraries").split(",")
    assert show(host, "pg_qualstats.sample_rate") == plan.services["postgresql"][
        "pg_qualstats.sample_rate"]


def test_advisor_finds_the_missing_indexes_and_leaves_nothing_behind(host, demo_table):
    result = advisor(host, "find")
    assert result["hypothetical_left"] == 0
    assert result["prepared_left"] == 0
    by_columns = {tuple(f["objects"]["columns"]): f for f in result["findings"]
                  if f["objects"]["table"] == demo_table}
    assert set(by_columns) == {("email",), ("code",)}, result["findings"]
    email, code = by_columns[("email",)], by_columns[("code",)]
    assert "pg_qualstats" in email["evidence"]["candidates_from"]
    assert code["evidence"]["candidates_from"] == ["plan"]
    for finding in (email, code):
        assert finding["kind"] == "missing_index"
        evidence = finding["evidence"]
        assert evidence["cost_after"] <= 0.5 * evidence["cost_before"], evidence
        assert len(finding["objects"]["queryids"]) == 1
        assert evidence["statements"][0]["calls"] == RUNS
    assert email["fix"] == ("CREATE INDEX CONCURRENTLY IF NOT EXISTS advisor_demo_email_idx "
                            "ON public.advisor_demo (email)")
    # The advisor's EXPLAINs (as superuser) are not among the statements the next report reads.
    assert psql(host, "SELECT count(*) FROM pg_stat_statements WHERE query ILIKE 'explain%' "
                      "OR query LIKE '%stacktune_advisor%'", db="app") == "0"
    # Read-only: no index was created by looking.
    assert psql(host, f"SELECT count(*) FROM pg_indexes WHERE tablename = '{TABLE}'",
                db="app") == "1"


def test_applying_the_index_makes_the_statement_faster(host, demo_table):
    findings = advisor(host, "find")["findings"]
    email = next(f for f in findings if f["objects"]["columns"] == ["email"])
    before = mean_ms(host, "email =")
    advisor(host, "apply", json.dumps(email))
    assert psql(host, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                      "'advisor_demo_email_idx'::regclass", db="app") == "t"
    psql(host, f"SELECT pg_stat_statements_reset(0, 0, {email['objects']['queryids'][0]})",
         db="app")
    run_filter_queries(host, "email = 'user{i}@example.com'", "0")
    after = mean_ms(host, "email =")
    print(f"mean time of the email filter over {ROWS} rows: {before:.3f} ms -> {after:.3f} ms")
    assert after < before / 5, (before, after)
    # The advisor no longer proposes what exists; applying again changes nothing.
    again = advisor(host, "find")["findings"]
    assert [f["objects"]["columns"] for f in again] == [["code"]]
    advisor(host, "apply", json.dumps(email))

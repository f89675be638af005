"""The index advisor finds a filter that none of the report's top-10 lists holds.

A busy history, as a demo database has one: heavy aggregates (top by total and mean time and
by shared-block reads), cheap indexed lookups called many times (top by calls and rows), and
a filter on an unindexed column with a few calls of a few ms and no rows. That filter is in
none of the five lists; the advisor reads its own pool from pg_stat_statements and still
names its index, on the module's path (playbooks/report.yml) and on the CLI's (collect_from).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from conftest import PRIMARY
from stacktune_testlib import REPO, extra_vars, psql, run_playbook

testinfra_hosts = [PRIMARY]

# In public: the advisor reads the table of a plan's Filter as public's (plain EXPLAIN
# names no schema), as on the demo's tables.
PREFIX = "advisor_pool"
REMOTE_DIR = "/tmp/stacktune-advisor-pool"
COMMENTS = 20_000
TABLES = ", ".join(f"{PREFIX}_{name}" for name in ("busy", "lookup", "comment"))
FILTER_CALLS = 3
LOOKUP_CALLS = 6
# More than the 10 of each top list.
SHAPES = 11
# Heavy aggregates over one table, each its own statement (its own queryid).
AGGREGATES = [f"{f}({c})" for c in ("a", "id") for f in ("min", "max", "sum", "avg", "count")]
AGGREGATES.append("count(*)")
# The busy table's rows are padded to about 8 a page.
ROWS_PER_PAGE = 8
FILTER = f"FROM {PREFIX}_comment WHERE author = "
FIX = (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {PREFIX}_comment_author_idx "
       f"ON public.{PREFIX}_comment (author)")
# The report's CLI path, run on the host as the postgres superuser (python3-psycopg2).
DRIVER = f"""
import json, sys
sys.path.insert(0, {REMOTE_DIR!r})
from stacktune.report.run import collect_from

snapshot = collect_from("dbname=app")
print(json.dumps({{"rows": snapshot["statements"]["rows"],
                  "missing_indexes": snapshot["missing_indexes"]}}, default=str))
"""


def run_sql(host, sql: str) -> None:
    encoded = base64.b64encode(sql.encode()).decode()
    result = host.run("echo %s | base64 -d | runuser -u postgres -- psql -XAtq -d app "
                      "-v ON_ERROR_STOP=1 >/dev/null", encoded)
    assert result.rc == 0, result.stderr


@pytest.fixture(scope="module")
def history(host):
    assert len(AGGREGATES) == SHAPES
    # A seq scan of a table larger than a quarter of shared_buffers reads through a small
    # ring of buffers, so each aggregate reads blocks (shared_blks_read > 0) while the
    # filter's small table stays in shared buffers (0 read).
    buffers = int(psql(host, "SELECT setting FROM pg_settings WHERE name = 'shared_buffers'"))
    busy_rows = (buffers // 4 + buffers // 16) * ROWS_PER_PAGE
    run_sql(host, f"""
        DROP TABLE IF EXISTS {TABLES};
        CREATE UNLOGGED TABLE {PREFIX}_busy AS
            SELECT i AS id, i % 1000 AS a, repeat('x', 900) AS pad
            FROM generate_series(1, {busy_rows}) AS i;
        CREATE TABLE {PREFIX}_lookup (id int PRIMARY KEY,
            {", ".join(f"c{k} int" for k in range(SHAPES))});
        INSERT INTO {PREFIX}_lookup SELECT i, {", ".join(["i"] * SHAPES)}
            FROM generate_series(1, 100) AS i;
        CREATE TABLE {PREFIX}_comment (id serial PRIMARY KEY, author text NOT NULL,
                                        body text NOT NULL);
        INSERT INTO {PREFIX}_comment (author, body)
            SELECT 'author ' || (i % 500), repeat('b', 100) FROM generate_series(1, {COMMENTS}) i;
        ANALYZE {PREFIX}_busy, {PREFIX}_lookup, {PREFIX}_comment;
        """)
    assert int(psql(host, f"SELECT pg_relation_size('{PREFIX}_busy') / 8192",
                    db="app")) > buffers // 4
    psql(host, "SELECT pg_stat_statements_reset()", db="app")
    traffic = [f"SELECT {aggregate} FROM {PREFIX}_busy;" for aggregate in AGGREGATES]
    traffic += [f"SELECT c{k} FROM {PREFIX}_lookup WHERE id = {1 + (k + i) % 100};"
                for k in range(SHAPES) for i in range(LOOKUP_CALLS)]
    traffic += [f"SELECT id {FILTER}'nobody {i}';" for i in range(FILTER_CALLS)]
    run_sql(host, "\n".join(traffic))
    yield
    psql(host, f"DROP TABLE IF EXISTS {TABLES}", db="app")
    host.run("rm -rf %s", REMOTE_DIR)


def the_filter(rows: list[dict]) -> list[dict]:
    return [r for r in rows if FILTER in (r.get("query") or "")]


def assert_outside_the_top_lists(rows: list[dict]) -> None:
    """The report's top rows do not hold the filter: the advisor's pool must find it."""
    assert rows and not the_filter(rows), the_filter(rows)


def assert_the_filters_index(missing_indexes: dict) -> None:
    assert "findings" in missing_indexes, missing_indexes
    found = [f for f in missing_indexes["findings"]
             if f["objects"]["table"] == f"{PREFIX}_comment"]
    assert [(f["objects"]["columns"], f["fix"]) for f in found] == [(["author"], FIX)], \
        missing_indexes["findings"]
    [statement] = found[0]["evidence"]["statements"]
    assert FILTER in statement["query"] and statement["calls"] == FILTER_CALLS
    assert found[0]["evidence"]["cost_after"] <= 0.5 * found[0]["evidence"]["cost_before"]


def test_the_module_finds_the_index_of_a_filter_outside_the_top_lists(host, history, tmp_path):
    result = run_playbook(*extra_vars(stacktune_report_dir=str(tmp_path),
                                      stacktune_report_formats=["json"]),
                          playbook="playbooks/report.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    name = host.backend.get_hostname()
    snapshot = json.loads((tmp_path / f"{name}.snapshot.json").read_text())
    assert_outside_the_top_lists(snapshot["statements"]["rows"])
    assert_the_filters_index(snapshot["missing_indexes"])
    findings = json.loads((tmp_path / f"{name}.json").read_text())["analysis"]["findings"]
    assert FIX in [f["fix"] for f in findings if f["kind"] == "missing_index"]
    # Read-only: the index was proposed, not created.
    assert psql(host, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                f"'{PREFIX}_comment_author_idx'", db="app") == "0"


def test_the_cli_path_finds_the_index_of_a_filter_outside_the_top_lists(host, history):
    package = REPO / "stacktune"
    files = {"stacktune/__init__.py": "", "driver.py": DRIVER}
    for path in sorted((package / "report").glob("*.py")):
        files[f"stacktune/report/{path.name}"] = path.read_text()
    for name, text in files.items():
        encoded = base64.b64encode(text.encode()).decode()
        host.check_output("mkdir -p %s && echo %s | base64 -d > %s",
                          str(Path(REMOTE_DIR, name).parent), encoded, f"{REMOTE_DIR}/{name}")
    result = host.run("runuser -u postgres -- python3 %s/driver.py", REMOTE_DIR)
    assert result.rc == 0, result.stderr
    report = json.loads(result.stdout)
    assert_outside_the_top_lists(report["rows"])
    assert_the_filters_index(report["missing_indexes"])

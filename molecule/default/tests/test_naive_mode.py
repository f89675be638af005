"""Naive mode and the query recorder on the converged stack.

The app play turns on the demo's naive mode (django_settings_extra) and the query
recorder at a sample rate of 1; traffic through the N+1 page goes through Gunicorn's
workers, PgBouncer and PostgreSQL; the recorder's totals are read back from the real
Redis with the app's own ACL user (stacktune.report.nplusone.read_records, run with
the app's Python inside the container) and the report's N+1 finding names the view,
the repeated SQL and its count. The module ends by running the app play with the
defaults again, so the other tests see the stack as converged.

The last test is the closed loop, end to end: naive traffic on all three pages, the
`stacktune report` CLI run as an operator runs it (from the controller, through a port
forward to the host's loopback, with the app's logins), its JSON naming each problem,
`--apply` creating the proposed index, the same traffic again, and the filter's mean
time falling. It drops the index it created, so the stack is as converged again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from stacktune_testlib import (
    REPO,
    LoopbackTunnel,
    extra_vars,
    get_statuses,
    http_get,
    inventory_vars,
    psql,
    run_playbook,
)

from stacktune.report.nplusone import n_plus_one_findings

APP_URL = "http://127.0.0.1:8000"
APP_PYTHON = "/srv/app/venv/bin/python"
# The module's functions, without its script entry (which prints the report's section).
NPLUSONE_SOURCE = (REPO / "stacktune" / "report" / "nplusone.py").read_text().split(
    '\nif __name__ == "__main__":')[0]
PAGE_SIZE = 20  # publishing.views.PAGE_SIZE
ARTICLES_REQUESTS = 12
KEY_PREFIX = "stacktune:queries"


def _app_play(**variables: object) -> str:
    result = run_playbook(*extra_vars(**variables), playbook="playbooks/app.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def naive_stack(host):
    _app_play(django_settings_query_recorder=True, django_settings_query_sample_rate=1.0,
              django_settings_extra={"DEMO_NAIVE": True})
    yield
    _app_play(django_settings_query_recorder=False, django_settings_extra={})
    # Back to the defaults: naive mode is off again and the module configures no recorder.
    assert _get(host, "/naive/articles/")[0] == 404
    module = host.file("/srv/app/src/demo_site/stacktune_settings.py").content_string
    assert "STACKTUNE_MIDDLEWARE = []" in module and "DEMO_NAIVE" not in module


def _redis_url(plan) -> str:
    password = inventory_vars()["redis_app_password"]
    return f"redis://app:{password}@127.0.0.1:{plan.services['django']['CACHE_PORT']}/0"


def _records(host, plan) -> dict[str, dict]:
    script = NPLUSONE_SOURCE + (
        "\nimport json, sys\nprint(json.dumps(read_records(sys.argv[1])))\n")
    out = host.check_output("%s -c %s %s", APP_PYTHON, script, _redis_url(plan))
    return {record["view"]: record for record in json.loads(out)}


def _redis_as_app(host, plan, *command: str) -> str:
    """One command as the app's ACL user, through the redis package the app uses."""
    script = (
        "import sys, redis\n"
        "client = redis.Redis.from_url(sys.argv[1])\n"
        "try:\n"
        "    print(client.execute_command(*sys.argv[2:]))\n"
        "except redis.exceptions.NoPermissionError as error:\n"
        "    print('NOPERM', error)\n"
    )
    return host.check_output("%s -c %s %s" + " %s" * len(command), APP_PYTHON, script,
                             _redis_url(plan), *command)


def _get(host, path: str) -> tuple[int, str]:
    return http_get(host, APP_URL + path, {"X-Forwarded-Proto": "https"})


def _delta(after: dict, before: dict, view: str, field: str) -> int:
    return after[view][field] - before.get(view, {}).get(field, 0)


def test_the_n_plus_one_page_is_recorded_per_view_in_redis(host, plan, naive_stack):
    settings_module = host.file("/srv/app/src/demo_site/stacktune_settings.py")
    assert host.file("/srv/app/src/demo_site/stacktune_queries.py").exists
    assert settings_module.exists
    before = _records(host, plan)
    for _ in range(ARTICLES_REQUESTS):
        status, body = _get(host, "/naive/articles/")
        assert status == 200, body[:500]
        assert len(json.loads(body)["results"]) == PAGE_SIZE
    assert _get(host, "/naive/archive/?page=400")[0] == 200
    after = _records(host, plan)

    articles = after["naive-articles"]
    per_request = 1 + 2 * PAGE_SIZE  # the page, then one author and one categories query a row
    assert _delta(after, before, "naive-articles", "requests") == ARTICLES_REQUESTS
    assert _delta(after, before, "naive-articles", "queries") == ARTICLES_REQUESTS * per_request
    assert articles["max_queries"] == per_request
    assert articles["lost_samples"] == 0
    shapes = {shape["sql"]: shape for shape in articles["shapes"]}
    author_sql = next(sql for sql in shapes if 'FROM "publishing_author"' in sql)
    assert author_sql.endswith('WHERE "publishing_author"."id" = ? LIMIT ?')
    old_author = next((s for s in before.get("naive-articles", {}).get("shapes", [])
                       if s["sql"] == author_sql), {"count": 0})
    assert shapes[author_sql]["count"] - old_author["count"] == ARTICLES_REQUESTS * PAGE_SIZE
    assert shapes[author_sql]["max_per_request"] == PAGE_SIZE
    # One query a request, nothing repeated.
    assert _delta(after, before, "naive-archive", "queries") == 1
    assert after["naive-archive"]["shapes"] == []

    findings = {f["objects"]["sql"]: f for f in n_plus_one_findings(list(after.values()))}
    author = findings[author_sql]
    assert author["objects"]["view"] == "naive-articles"
    assert author["severity"] == "high"
    assert author["evidence"]["repeats_per_request"] == PAGE_SIZE
    assert author["evidence"]["max_queries_per_request"] == per_request
    assert author["fix"].startswith('select_related("author")')
    categories = next(f for sql, f in findings.items() if "publishing_article_categories" in sql)
    assert categories["fix"].startswith('prefetch_related("categories")')
    assert "naive-archive" not in {f["objects"]["view"] for f in findings.values()}


def test_the_app_acl_allows_the_recorder_keys_and_nothing_outside_the_prefix(
        host, plan, naive_stack):
    assert _redis_as_app(host, plan, "HINCRBY", f"{KEY_PREFIX}:acl-probe", "n", "1") != ""
    assert _redis_as_app(host, plan, "DEL", f"{KEY_PREFIX}:acl-probe") == "1"
    assert _redis_as_app(host, plan, "HINCRBY", "elsewhere:acl-probe", "n", "1").startswith(
        "NOPERM")


def _view_totals(host, plan, view: str) -> dict:
    return _records(host, plan).get(view, {"requests": 0, "lost_samples": 0})


def test_a_redis_outage_costs_the_recorder_samples_never_a_request(host, plan, naive_stack):
    host.check_output("systemctl stop redis-server")
    try:
        statuses = [_get(host, "/naive/articles/")[0] for _ in range(6)]
    finally:
        host.check_output("systemctl start redis-server")
    assert statuses == [200] * 6
    # The cache's Redis keeps nothing across a restart (the plan's save ""): the totals
    # start again from what it holds now.
    before = _view_totals(host, plan, "naive-articles")
    # Each worker adds the samples it lost to its next write; requests land on workers
    # unevenly, so go on until all six are counted (or give up after 120 requests).
    sent = 0
    while sent < 120:
        for _ in range(10):
            assert _get(host, "/naive/articles/")[0] == 200
        sent += 10
        after = _view_totals(host, plan, "naive-articles")
        if after["lost_samples"] - before["lost_samples"] >= 6:
            break
    assert after["lost_samples"] - before["lost_samples"] == 6
    assert after["requests"] - before["requests"] == sent
    # The restart lost the SQL texts with the totals: the workers send them again, so the
    # shapes recorded since still have their SQL for the report.
    shapes = _records(host, plan)["naive-articles"]["shapes"]
    assert len(shapes) == 2, shapes  # the author and the categories of each row
    assert not [shape["sql"] for shape in shapes if shape["sql"].startswith("<unknown")]


# The closed loop. Requests per phase: enough for pg_stat_statements' means and for the
# recorder's per-view totals (sample rate 1), and a few seconds of traffic.
COMMENTS_REQUESTS = 30
ARCHIVE_REQUESTS = 8
ARCHIVE_PAGE = 200  # OFFSET 3980: a deep page that still has rows
NAIVE_INDEX = "publishing_comment_author_name_idx"

def _naive_traffic(host, authors: list[str]) -> None:
    paths = (["/naive/articles/"] * ARTICLES_REQUESTS
             + [f"/naive/comments/?author={authors[i % len(authors)].replace(' ', '+')}"
                for i in range(COMMENTS_REQUESTS)]
             + [f"/naive/archive/?page={ARCHIVE_PAGE}"] * ARCHIVE_REQUESTS)
    assert get_statuses(host, APP_URL, paths) == [200] * len(paths)


def _stacktune_report(dsn: str, redis_url: str, out: Path, *extra: str) -> dict:
    """`stacktune report --format json` as an operator runs it; the parsed report."""
    command = [str(Path(sys.executable).parent / "stacktune"), "report", "--dsn", dsn,
               "--redis", redis_url, "--format", "json", "--out", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def _findings(report: dict, kind: str) -> list[dict]:
    return [f for f in report["analysis"]["findings"] if f["kind"] == kind]


def _statement_stats(host, queryids: list[int]) -> tuple[int, float]:
    """Calls and mean time (ms) of the statements, from pg_stat_statements."""
    ids = ", ".join(str(int(q)) for q in queryids)
    calls, mean = psql(host, "SELECT sum(calls), sum(total_exec_time) / sum(calls) "
                       f"FROM pg_stat_statements WHERE queryid IN ({ids})", db="app").split("|")
    return int(calls), float(mean)


def test_the_report_names_each_naive_problem_and_its_index_makes_the_filter_faster(
        host, plan, naive_stack, tmp_path):
    password = inventory_vars()["postgresql_app_password"]
    cache_password = inventory_vars()["redis_app_password"]
    container = host.backend.get_hostname()
    authors = psql(host, "SELECT DISTINCT author_name FROM publishing_comment "
                   "ORDER BY author_name LIMIT 6", db="app").splitlines()
    assert len(authors) == 6
    psql(host, f"DROP INDEX IF EXISTS {NAIVE_INDEX}", db="app")
    psql(host, "SELECT pg_stat_statements_reset()", db="app")
    _naive_traffic(host, authors)

    with LoopbackTunnel(container, int(psql(host, "SHOW port"))) as pg_port, \
            LoopbackTunnel(container, int(plan.services["django"]["CACHE_PORT"])) as redis_port:
        dsn = f"host=127.0.0.1 port={pg_port} dbname=app user=app password={password}"
        redis_url = f"redis://app:{cache_password}@127.0.0.1:{redis_port}/0"
        try:
            report = _stacktune_report(dsn, redis_url, tmp_path / "before.json", "--apply")

            # The N+1 view: the recorder's per-view totals, read from Redis by the report.
            n_plus_one = {f["objects"]["sql"]: f for f in _findings(report, "n_plus_one")}
            author_sql = next(sql for sql in n_plus_one if 'FROM "publishing_author"' in sql)
            assert n_plus_one[author_sql]["objects"]["view"] == "naive-articles"
            assert n_plus_one[author_sql]["evidence"]["repeats_per_request"] == PAGE_SIZE
            assert n_plus_one[author_sql]["evidence"]["max_queries_per_request"] == (
                1 + 2 * PAGE_SIZE)

            # The missing index, on the filtered column, tried with HypoPG and applied.
            [index] = [f for f in _findings(report, "missing_index")
                       if f["objects"]["table"] == "publishing_comment"]
            assert index["objects"]["columns"] == ["author_name"]
            assert index["objects"]["index"] == NAIVE_INDEX
            assert index["fix"] == (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAIVE_INDEX} "
                                    "ON public.publishing_comment (author_name)")
            assert index["evidence"]["cost_after"] < index["evidence"]["cost_before"] / 2
            assert report["snapshot"]["missing_indexes"]["applied"] == [index["fix"]]

            # The deep OFFSET page.
            offsets = [f for f in _findings(report, "deep_offset")
                       if f["objects"].get("table") == "publishing_article"]
            assert len(offsets) == 1, _findings(report, "deep_offset")
            assert offsets[0]["evidence"]["calls"] == ARCHIVE_REQUESTS
            assert "OFFSET" in offsets[0]["objects"]["query"].upper()

            queryids = index["objects"]["queryids"]
            calls_before, mean_before = _statement_stats(host, queryids)
            assert calls_before == COMMENTS_REQUESTS
            assert psql(host, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                        f"'public.{NAIVE_INDEX}'::regclass", db="app") == "t"

            # The same traffic on the indexed table.
            psql(host, "SELECT pg_stat_statements_reset()", db="app")
            _naive_traffic(host, authors)
            calls_after, mean_after = _statement_stats(host, queryids)
            print(f"\nnaive filter on publishing_comment.author_name, mean per call "
                  f"(pg_stat_statements, {calls_before} and {calls_after} calls): "
                  f"{mean_before:.3f} ms before {NAIVE_INDEX}, {mean_after:.3f} ms after")
            assert calls_after == COMMENTS_REQUESTS
            assert mean_after < mean_before / 2

            again = _stacktune_report(dsn, redis_url, tmp_path / "after.json")
            assert not [f for f in _findings(again, "missing_index")
                        if f["objects"]["table"] == "publishing_comment"]
            assert "findings" in again["snapshot"]["missing_indexes"]
        finally:
            psql(host, f"DROP INDEX IF EXISTS {NAIVE_INDEX}", db="app")

"""playbooks/report.yml on the cluster: the database host's statistics and the query
recorder's N+1 records, which only the app tier may read (the cache host's firewall admits
nothing else), in one report fetched to the controller in all three formats.

The cluster runs the recorder at a sample rate of 1 with the demo's naive pages on
(molecule.yml); the test sends naive traffic through both app hosts' Gunicorn, runs the
playbook as an operator does, and reads the files it wrote on the controller.
"""

from __future__ import annotations

import json
import re

import pytest
from stacktune_testlib import extra_vars, get_statuses, psql, run_playbook

DB = "stacktune-db"
APPS = ("stacktune-app1", "stacktune-app2")
PAGE_SIZE = 20  # publishing.views.PAGE_SIZE
ARTICLES_REQUESTS = 6  # per app host
COMMENTS_REQUESTS = 15
ARCHIVE_REQUESTS = 4
FORMATS = ["md", "json", "html"]

def _traffic(host, paths: list[str]) -> None:
    assert get_statuses(host, "http://127.0.0.1:8000", paths) == [200] * len(paths)


@pytest.fixture(scope="module")
def reports(nodes, tmp_path_factory) -> dict:
    """Naive traffic through both app hosts, then report.yml in all three formats."""
    authors = psql(nodes[DB], "SELECT DISTINCT author_name FROM publishing_comment "
                   "ORDER BY author_name LIMIT 5", db="app").splitlines()
    assert authors
    for app in APPS:
        _traffic(nodes[app], ["/naive/articles/"] * ARTICLES_REQUESTS)
    _traffic(nodes[APPS[0]],
             [f"/naive/comments/?author={authors[i % len(authors)].replace(' ', '+')}"
              for i in range(COMMENTS_REQUESTS)]
             + ["/naive/archive/?page=200"] * ARCHIVE_REQUESTS)
    out = tmp_path_factory.mktemp("reports")
    result = run_playbook(*extra_vars(stacktune_report_dir=str(out),
                                      stacktune_report_formats=FORMATS),
                          playbook="playbooks/report.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {"files": {path.name: path for path in out.iterdir()}, "output": result.stdout}


def _report_json(reports) -> dict:
    return json.loads(reports["files"][f"{DB}.json"].read_text())


def test_the_reports_are_fetched_for_the_database_host_only(reports):
    assert set(reports["files"]) == {f"{DB}.{ext}" for ext in
                                     (*FORMATS, "snapshot.json", "overrides.yml")}
    # The records were read on the first app host, not on the database or the cache host.
    assert re.search(r"TASK \[Read the query recorder's N\+1 records on an app host\] \**\n"
                     r"ok: \[stacktune-db -> stacktune-app1\]", reports["output"])


def test_the_json_holds_the_servers_values_and_the_recorders_n_plus_one(nodes, reports):
    data = _report_json(reports)
    snapshot, findings = data["snapshot"], data["analysis"]["findings"]
    assert snapshot["server"]["version"] == psql(nodes[DB], "SELECT version()")
    assert snapshot["server"]["settings"]["max_connections"]["setting"] == psql(
        nodes[DB], "SHOW max_connections")
    assert "nplusone" not in data["analysis"]["errors"], data["analysis"]["errors"]
    n_plus_one = [f for f in findings if f["kind"] == "n_plus_one"
                  and 'FROM "publishing_author"' in f["objects"]["sql"]]
    assert len(n_plus_one) == 1
    author = n_plus_one[0]
    assert author["objects"]["view"] == "naive-articles"
    # Both app hosts record into the one Redis: at least this test's requests of both.
    assert author["evidence"]["requests"] >= len(APPS) * ARTICLES_REQUESTS
    assert author["evidence"]["repeats_per_request"] == PAGE_SIZE
    assert author["evidence"]["max_queries_per_request"] == 1 + 2 * PAGE_SIZE
    [index] = [f for f in findings if f["kind"] == "missing_index"
               if f["objects"]["table"] == "publishing_comment"]
    assert index["objects"]["columns"] == ["author_name"]
    assert index["fix"] == ("CREATE INDEX CONCURRENTLY IF NOT EXISTS "
                            "publishing_comment_author_name_idx "
                            "ON public.publishing_comment (author_name)")
    assert [f for f in findings if f["kind"] == "deep_offset"
            and f["objects"].get("table") == "publishing_article"]
    # The report only read: the index it proposes does not exist.
    assert psql(nodes[DB], "SELECT count(*) FROM pg_indexes WHERE indexname = "
                "'publishing_comment_author_name_idx'", db="app") == "0"


def test_the_markdown_has_each_section_and_the_findings(reports):
    text = reports["files"][f"{DB}.md"].read_text()
    assert text.startswith("# stacktune report\n")
    headings = re.findall(r"^## (.+)$", text, re.M)
    for section in ("Findings", "Top statements by total_exec_time", "Counters", "Settings"):
        assert section in headings, headings
    assert "N+1 in view naive-articles: the same query 20 times per request" in text
    assert "publishing_comment_author_name_idx ON public.publishing_comment (author_name)" in text


def test_the_html_is_one_self_contained_page(reports):
    page = reports["files"][f"{DB}.html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</body></html>")
    assert "<table>" in page and "<h2>Findings</h2>" in page
    assert "N+1 in view naive-articles" in page
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b|@import|url\(", page, re.I)
    assert re.findall(r"\b(?:src|href)\s*=", page, re.I) == []

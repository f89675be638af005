"""N+1 suspects from the query recorder's per-view records (the records' shape is what
stacktune.report.nplusone.read_records returns; molecule reads them from a real Redis)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stacktune.report.nplusone import (
    RECORDER_OFF_HINT,
    REPEATS_PER_REQUEST_MIN,
    n_plus_one_findings,
    relation_fix,
)

AUTHOR_SQL = (
    'SELECT "publishing_author"."id", "publishing_author"."name", "publishing_author"."slug", '
    '"publishing_author"."bio" FROM "publishing_author" WHERE "publishing_author"."id" = ? LIMIT ?'
)
CATEGORIES_SQL = (
    'SELECT "publishing_category"."id", "publishing_category"."name", '
    '"publishing_category"."slug" FROM "publishing_category" INNER JOIN '
    '"publishing_article_categories" ON ("publishing_category"."id" = '
    '"publishing_article_categories"."category_id") WHERE '
    '"publishing_article_categories"."article_id" = ? ORDER BY "publishing_category"."name" ASC'
)
COMMENTS_SQL = (
    'SELECT "publishing_comment"."id" FROM "publishing_comment" WHERE '
    '"publishing_comment"."article_id" = ? ORDER BY "publishing_comment"."created_at" DESC'
)
SESSION_SQL = 'SELECT "django_session"."session_data" FROM "django_session" WHERE "x" = ?'


def _record(view, requests, queries, max_queries, shapes):
    return {
        "view": view, "requests": requests, "queries": queries, "max_queries": max_queries,
        "lost_samples": 0,
        "shapes": [
            {"sql": sql, "count": count, "requests": requests, "max_per_request": most}
            for sql, count, most in shapes
        ],
    }  # fmt: skip


NAIVE = _record("naive-articles", 10, 410, 41, [(AUTHOR_SQL, 200, 20), (CATEGORIES_SQL, 200, 20)])


def test_the_naive_list_gives_one_finding_per_repeated_shape_with_its_evidence():
    findings = n_plus_one_findings([NAIVE])
    assert [f["objects"] for f in findings] == [
        {"view": "naive-articles", "sql": AUTHOR_SQL},
        {"view": "naive-articles", "sql": CATEGORIES_SQL},
    ]
    author = findings[0]
    assert set(author) == {"kind", "severity", "title", "evidence", "fix", "objects"}
    assert author["kind"] == "n_plus_one"
    assert author["severity"] == "high"  # 20 per request
    assert author["evidence"] == {
        "requests": 10,
        "mean_queries_per_request": 41.0,
        "max_queries_per_request": 41,
        "repeated_sql": AUTHOR_SQL,
        "repeats_per_request": 20.0,
        "max_repeats_per_request": 20,
        "lost_samples": 0,
    }
    assert "naive-articles" in author["title"] and "20 times per request" in author["title"]


def test_the_fix_names_the_relation_the_sql_shape_shows():
    assert relation_fix(AUTHOR_SQL).startswith('select_related("author")')
    assert '"publishing_author"' in relation_fix(AUTHOR_SQL)
    assert relation_fix(CATEGORIES_SQL).startswith('prefetch_related("categories")')
    assert "article" in relation_fix(CATEGORIES_SQL)
    reverse = relation_fix(COMMENTS_SQL)
    assert reverse.startswith("prefetch_related on the reverse relation from article")
    assert "comment_set" in reverse
    assert "in bulk" in relation_fix("SELECT 1")


def test_below_the_threshold_is_no_suspect_and_severity_grows_with_repeats():
    just_below = REPEATS_PER_REQUEST_MIN * 10 - 1
    records = [
        _record("settings-lookups", 10, 80, 8, [(SESSION_SQL, just_below, 5)]),
        _record("ten-rows", 10, 110, 11, [(AUTHOR_SQL, 100, 10)]),
        _record("five-rows", 4, 24, 6, [(COMMENTS_SQL, 20, 5)]),
        _record("nothing-sampled", 0, 0, 0, [(AUTHOR_SQL, 0, 0)]),
    ]
    findings = n_plus_one_findings(records)
    assert [(f["objects"]["view"], f["severity"]) for f in findings] == [
        ("ten-rows", "medium"),
        ("five-rows", "low"),
    ]
    assert findings[1]["evidence"]["repeats_per_request"] == 5.0


def test_no_records_no_findings():
    assert n_plus_one_findings([]) == []
    assert n_plus_one_findings([_record("ok", 5, 15, 3, [])]) == []


# --- the app host's side of playbooks/report.yml (nplusone.py run as a script) ---------

NPLUSONE_SCRIPT = Path(__file__).resolve().parent.parent / "stacktune" / "report" / "nplusone.py"


def _run_script(*args: str) -> dict:
    result = subprocess.run([sys.executable, str(NPLUSONE_SCRIPT), *args], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _project(tmp_path: Path, settings: str) -> Path:
    package = tmp_path / "src" / "mysite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('finding the package imports it')\n")
    (package / "stacktune_settings.py").write_text(settings)
    return tmp_path / "src"


def test_the_script_says_the_recorder_is_off_and_how_to_turn_it_on(tmp_path):
    source = _project(tmp_path, "STACKTUNE_MIDDLEWARE = []\n")
    section = _run_script("--package", "mysite", str(source))
    settings = source / "mysite" / "stacktune_settings.py"
    assert section == {"error": f"the query recorder is off in {settings}: {RECORDER_OFF_HINT}"}
    assert "django_settings_query_recorder: true" in RECORDER_OFF_HINT


def test_the_script_names_an_unreachable_redis_without_its_password(tmp_path):
    source = _project(tmp_path, (
        'STACKTUNE_QUERY_RECORDER = {"SAMPLE_RATE": 1.0, "KEY_PREFIX": "x:queries",\n'
        '    "REDIS_URL": "redis://app:s3cret@127.0.0.1:1/0"}\n'
        'STACKTUNE_MIDDLEWARE = [(__package__ + "." if __package__ else "") + "q.M"]\n'))
    section = _run_script(str(source / "mysite" / "stacktune_settings.py"))
    assert section["error"].startswith("cannot read the N+1 records from the recorder's Redis: ")
    assert "s3cret" not in section["error"]


def test_the_script_names_a_missing_package_or_settings_module(tmp_path):
    assert _run_script("--package", "nosuchsite", str(tmp_path)) == {
        "error": "cannot find the app's settings module: no package 'nosuchsite' in "
                 f"{tmp_path} or the app's virtualenv"}
    section = _run_script(str(tmp_path / "stacktune_settings.py"))
    assert section["error"].startswith(
        f"cannot read the app's settings module {tmp_path}/stacktune_settings.py (")

"""The demo Django app in demo/: data loader, views, caching, settings.

Django is configured once per process and cannot be unconfigured, so the tests
that need a configured Django run in a child pytest process: this same file,
collected with ``-o python_functions=child_test_*`` and the environment of the
demo's fallback settings (SQLite in tmp_path, the local-memory cache, a random
SECRET_KEY). The parent process collects only ``test_*``: it starts the child,
and runs ``manage.py`` as a command for what the command line and the
settings module show. No PostgreSQL or Redis is needed.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
# The query recorder the django_settings role installs beside stacktune_settings.py.
RECORDER_DIR = ROOT / "templates"
CHILD_ENV = "STACKTUNE_DEMO_APP_CHILD"
IN_CHILD = os.environ.get(CHILD_ENV) == "1"
SMALL = {"authors": 20, "categories": 8, "articles": 200, "comments": 800}


def _secret_key():
    return secrets.token_urlsafe(64)  # 86 characters, check --deploy's W009 is satisfied


def _demo_env(tmp_path, **extra):
    """The environment of a process that runs the demo with its fallback settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(DEMO), env.get("PYTHONPATH")])),
        DJANGO_SETTINGS_MODULE="demo_site.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
    )
    env.update(extra)
    return env


def _run(args, env, cwd=DEMO, timeout=120):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


# --- the parent process ---------------------------------------------------------------------


def test_views_and_loader_in_a_django_child_process(tmp_path):
    env = _demo_env(tmp_path, DJANGO_SECRET_KEY=_secret_key(), **{CHILD_ENV: "1"})
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(RECORDER_DIR)])
    result = _run(
        [
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "python_functions=child_test_*",
            "-o", "addopts=", "--rootdir", str(ROOT), str(Path(__file__)),
        ],
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert " passed" in output and "skipped" not in output, output[-2000:]


def test_check_deploy_passes_with_a_real_key_and_flags_the_dev_key(tmp_path):
    check = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    ok = _run(check, _demo_env(tmp_path, DJANGO_SECRET_KEY=_secret_key()))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no issues" in ok.stdout
    dev = _run(check, _demo_env(tmp_path))
    assert dev.returncode != 0
    assert "security.W009" in dev.stdout + dev.stderr


def _copy_demo(tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    (copy / "demo_site" / "stacktune_settings.py").unlink(missing_ok=True)
    return copy


SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "prefix": s.CACHES["default"]["KEY_PREFIX"],
    "session": s.SESSION_ENGINE,
    "secret": s.SECRET_KEY,
    "hosts": s.ALLOWED_HOSTS,
}))
"""


def test_the_rendered_stacktune_settings_module_wins(tmp_path):
    demo = _copy_demo(tmp_path)
    key = _secret_key()
    rendered = demo / "demo_site" / "stacktune_settings.py"
    rendered.write_text(
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3',"
        f" 'NAME': {str(tmp_path / 'st.sqlite3')!r}}}}}\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache',"
        " 'KEY_PREFIX': 'from-the-plan', 'TIMEOUT': 300}}\n"
        "SESSION_ENGINE = 'django.contrib.sessions.backends.cached_db'\n"
        f"SECRET_KEY = {key!r}\n"
        "ALLOWED_HOSTS = ['app.example.test']\n"
    )
    # The environment's fallbacks are not even evaluated: a bad DATABASE_URL is ignored.
    env = _demo_env(tmp_path, DATABASE_URL="nosuchdb://x", PYTHONPATH=str(demo))
    shown = _run(["-c", SHOW_SETTINGS], env, cwd=demo)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout.strip().splitlines()[-1]) == {
        "engine": "django.db.backends.sqlite3",
        "prefix": "from-the-plan",
        "session": "django.contrib.sessions.backends.cached_db",
        "secret": key,
        "hosts": ["app.example.test"],
    }
    check = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, cwd=demo)
    assert check.returncode == 0, check.stdout + check.stderr

    # Rendered without a key and none in the environment: refuse to start.
    rendered.write_text(rendered.read_text().replace(f"SECRET_KEY = {key!r}\n", ""))
    keyless = _run(["manage.py", "check"], env, cwd=demo)
    assert keyless.returncode != 0
    assert "SECRET_KEY is empty" in keyless.stderr


# --- the child process: Django configured for the whole process -----------------------------

if IN_CHILD:
    import io

    import django

    django.setup()

    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from publishing import views
    from publishing.models import Article, Category, Comment

    setup_test_environment()


def _load(**options):
    out = io.StringIO()
    call_command("load_demo_data", stdout=out, **{**SMALL, **options})
    return out.getvalue()


@pytest.fixture(scope="session")
def demo_data():
    call_command("migrate", verbosity=0)
    return _load()


@pytest.fixture
def client(demo_data):
    cache.clear()
    return Client()


@pytest.fixture
def https(demo_data):
    """A client whose requests come through the TLS-terminating proxy.

    Gunicorn (forwarded_allow_ips + secure_scheme_headers) turns the trusted proxy's
    X-Forwarded-Proto into wsgi.url_scheme; Django reads only that.
    """
    cache.clear()

    class HttpsClient(Client):
        def generic(self, *args, **kwargs):
            return super().generic(*args, **{**kwargs, "secure": True})

    return HttpsClient()


def _get(client, url, **extra):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **extra)
    return response, len(queries.captured_queries)


def _snapshot():
    return {
        "articles": list(
            Article.objects.order_by("slug").values_list(
                "slug", "id", "title", "author__slug", "published_at", "word_count", "summary"
            )
        ),
        "links": sorted(
            Article.categories.through.objects.values_list("article__slug", "category__slug")
        ),
        "comments": sorted(
            Comment.objects.values_list("article__slug", "author_name", "created_at", "body")
        ),
    }


def child_test_loader_prints_counts_and_is_idempotent(demo_data):
    assert "Loaded 20 authors, 8 categories, 200 articles" in demo_data
    assert "800 comments in " in demo_data
    again = _load()
    assert "already present" in again and "--reset" in again
    assert (Article.objects.count(), Comment.objects.count()) == (200, 800)
    assert Category.objects.count() == 8


def child_test_loader_is_deterministic(demo_data):
    first = _snapshot()
    assert len(first["articles"]) == 200 and len(first["comments"]) == 800
    _load(reset=True)
    assert _snapshot() == first  # ids too: --reset restarts the sequences
    _load(reset=True, seed=7)
    other = _snapshot()
    assert [a[2] for a in other["articles"]] != [a[2] for a in first["articles"]]  # titles
    _load(reset=True)  # back to the data the other tests expect
    assert _snapshot() == first


def child_test_article_list(https):
    response, _ = _get(https, "/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Latest articles" in html
    assert html.count("<article>") == views.PAGE_SIZE
    newest = Article.objects.first()
    assert newest.title in html and newest.author.name in html
    assert "200 articles, page 1 of 10" in html
    assert "Popular categories" in html
    last, _ = _get(https, "/?page=10")
    assert last.status_code == 200 and "page 10 of 10" in last.content.decode()


def child_test_article_detail(https):
    busiest = max(Article.objects.all(), key=lambda a: a.comments.count())
    total = busiest.comments.count()
    response, queries = _get(https, f"/articles/{busiest.slug}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert busiest.title in html and busiest.author.name in html
    for category in busiest.categories.all():
        assert category.name in html
    assert html.count('class="comment"') == min(total, views.LATEST_COMMENTS)
    assert f"{total} comments" in html
    latest = busiest.comments.order_by("-created_at").first()
    assert latest.body in html
    assert queries <= 3
    missing, _ = _get(https, "/articles/no-such-article/")
    assert missing.status_code == 404


def child_test_category_page(https):
    category = Category.objects.get(slug="technology")
    expected = Article.objects.filter(categories=category).count()
    response, _ = _get(https, "/categories/technology/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Technology</h1>" in html
    assert f"{expected} articles, page 1" in html
    newest = Article.objects.filter(categories=category).first()
    assert newest.title in html
    missing, _ = _get(https, "/categories/no-such-category/")
    assert missing.status_code == 404


def child_test_json_api(https):
    response, _ = _get(https, "/api/articles/?page=2")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "max-age=60" in response["Cache-Control"]
    data = json.loads(response.content)
    assert data["count"] == 200 and data["num_pages"] == 10 and data["page"] == 2
    assert data["next"] == "/api/articles/?page=3"
    assert data["previous"] == "/api/articles/?page=1"
    assert len(data["results"]) == views.PAGE_SIZE
    expected = list(Article.objects.all()[20:40])
    for item, article in zip(data["results"], expected):  # noqa: B905 (Python 3.9 runs this too)
        assert set(item) == {
            "id", "title", "slug", "author", "categories", "published_at", "comment_count",
        }  # fmt: skip
        assert item["id"] == article.id and item["slug"] == article.slug
        assert item["title"] == article.title
        assert item["author"] == {"name": article.author.name, "slug": article.author.slug}
        assert item["categories"] == [
            {"name": c.name, "slug": c.slug} for c in article.categories.order_by("name")
        ]
        assert item["comment_count"] == article.comments.count()
        assert item["published_at"].startswith(article.published_at.strftime("%Y-%m-%dT%H:%M"))
    for bad in ("999", "0", "abc"):
        assert https.get(f"/api/articles/?page={bad}").status_code == 404


def child_test_json_api_pages_are_cached(https):
    _, cold = _get(https, "/api/articles/?page=3")
    warm_response, warm = _get(https, "/api/articles/?page=3")
    assert cold >= 2 and warm == 0
    assert json.loads(warm_response.content)["page"] == 3


@pytest.mark.parametrize(
    ("url", "most"),
    [
        # COUNT, the page (author joined), the categories prefetch, the page's comment
        # counts, and the sidebar on "/" (the cache is cold) or the category itself.
        ("/", 5),
        ("/?page=4", 5),
        ("/categories/technology/", 5),
        ("/api/articles/", 4),
        ("/api/articles/?page=4", 4),
    ],
)
def child_test_query_counts_are_bounded_and_independent_of_page_size(https, monkeypatch, url, most):
    counts = {}
    for size in (1, 5, 20, 50):
        monkeypatch.setattr(views, "PAGE_SIZE", size)
        cache.clear()
        response, counts[size] = _get(https, url)
        assert response.status_code == 200
    assert set(counts.values()) == {counts[20]}, counts
    assert counts[20] <= most


def child_test_list_page_with_warm_cache_does_not_recompute_the_sidebar(https):
    _, cold = _get(https, "/")
    _, warm = _get(https, "/")
    assert warm == cold - 1 and warm <= 4


def child_test_a_request_to_the_front_page_writes_the_popular_categories_key(https):
    assert cache.get("popular-categories") is None
    assert https.get("/").status_code == 200
    popular = cache.get("popular-categories")
    assert popular and {"name", "slug", "article_count"} <= set(popular[0])
    counts = [row["article_count"] for row in popular]
    assert counts == sorted(counts, reverse=True)
    top = Category.objects.get(slug=popular[0]["slug"])
    assert popular[0]["article_count"] == top.articles.count()
    # The key under the configured prefix, as Redis would store it.
    assert settings.CACHES["default"]["KEY_PREFIX"] == "stacktune"
    assert cache.make_key("popular-categories") == "stacktune:1:popular-categories"
    assert "stacktune:1:popular-categories" in cache._cache  # the locmem store itself


def child_test_plain_http_is_redirected_to_https_but_healthz_answers(client):
    for url in ("/", "/articles/x/", "/api/articles/?page=2"):
        response = client.get(url)
        assert response.status_code == 301
        assert response["Location"] == f"https://testserver{url}"
    with CaptureQueriesContext(connection) as queries:
        health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "cache": "ok"}
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 1"]
    # A probe by IP address, not in ALLOWED_HOSTS, still gets its answer.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").json()["status"] == "ok"
    assert client.get("/", HTTP_HOST="10.1.2.3:8000").status_code == 400


def child_test_https_through_the_proxy(https):
    response = https.get("/")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    assert https.get("/healthz").json()["status"] == "ok"


def child_test_healthz_reports_a_cache_that_keeps_nothing_as_degraded(client):
    """A cache that answers every call with a miss (what django-redis does while Redis is
    down, IGNORE_EXCEPTIONS) is degraded: 200, the site still serves pages."""
    from django.test import override_settings

    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=dummy):
        health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "database": "ok", "cache": "degraded"}
    assert health["Cache-Control"] == "no-store"


def child_test_healthz_is_503_when_the_database_fails(client, monkeypatch):
    from django.db import OperationalError
    from publishing import middleware

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(middleware.connection, "cursor", refuse)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json() == {"status": "down", "database": "down", "cache": "ok"}


def child_test_forwarded_proto_alone_does_not_make_a_request_secure(client):
    # Only Gunicorn decides the scheme, from a trusted proxy's header; Django must not
    # take the header from whoever sends it.
    response = client.get("/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/"


def child_test_a_bad_host_header_logs_one_warning_line(client):
    import logging

    stream = io.StringIO()
    handler = logging.getLogger("django.security.DisallowedHost").handlers[0]
    old_stream = handler.setStream(stream)
    try:
        assert client.get("/", HTTP_HOST="attacker.example").status_code == 400
    finally:
        handler.setStream(old_stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, stream.getvalue()
    assert "WARNING django.security.DisallowedHost" in lines[0]
    assert "attacker.example" in lines[0]


def child_test_check_deploy_passes():
    assert len(settings.SECRET_KEY) >= 50
    assert settings.DEBUG is False
    call_command("check", deploy=True, fail_level="WARNING", stdout=io.StringIO())


# --- naive mode and the query recorder ---------------------------------------------------

RECORDER = "stacktune_queries.QueryShapeMiddleware"


def _recorder_settings(rate):
    return {
        "MIDDLEWARE": [*settings.MIDDLEWARE, RECORDER],
        "STACKTUNE_QUERY_RECORDER": {"SAMPLE_RATE": rate, "KEY_PREFIX": f"test-{rate}"},
    }


def _recorded(rate):
    import stacktune_queries

    store = stacktune_queries.store_for({"KEY_PREFIX": f"test-{rate}"})
    return {row["view"]: row for row in store.records()}


@pytest.mark.parametrize("url", ["/naive/articles/", "/naive/comments/", "/naive/archive/"])
def child_test_naive_pages_are_404_unless_naive_mode_is_on(https, url):
    assert settings.DEMO_NAIVE is False
    assert https.get(url).status_code == 404


def child_test_naive_articles_runs_one_query_per_row_for_author_and_categories(https):
    from django.test import override_settings

    with override_settings(DEMO_NAIVE=True):
        response, queries = _get(https, "/naive/articles/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == views.PAGE_SIZE
    newest = Article.objects.first()
    assert results[0]["author"] == newest.author.name
    assert results[0]["categories"] == [c.name for c in newest.categories.order_by("name")]
    # The page, then per row one author and one categories query: N+1 twice.
    assert queries == 1 + 2 * views.PAGE_SIZE


def child_test_naive_comments_filter_on_the_unindexed_author_name(https):
    from django.test import override_settings

    name = Comment.objects.order_by("id").values_list("author_name", flat=True).first()
    expected = Comment.objects.filter(author_name=name).count()
    with override_settings(DEMO_NAIVE=True), CaptureQueriesContext(connection) as queries:
        response = https.get("/naive/comments/", {"author": name})
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(expected, views.LATEST_COMMENTS) > 0
    (query,) = queries.captured_queries
    assert '"author_name" =' in query["sql"]
    indexed = {
        tuple(index["columns"])
        for index in connection.introspection.get_constraints(
            connection.cursor(), Comment._meta.db_table
        ).values()
    }
    assert not any(columns[:1] == ("author_name",) for columns in indexed)


def child_test_naive_archive_pages_with_an_unbounded_offset(https):
    from django.test import override_settings

    with override_settings(DEMO_NAIVE=True):
        with CaptureQueriesContext(connection) as queries:
            response = https.get("/naive/archive/", {"page": "9"})
        (query,) = queries.captured_queries  # read before the next request resets the log
        assert https.get("/naive/archive/", {"page": "x"}).status_code == 404
    assert response.status_code == 200, response.content
    assert "OFFSET 160" in query["sql"]
    ordered = list(Article.objects.order_by("-word_count", "-id").values_list("id", flat=True))
    assert [row["id"] for row in response.json()["results"]] == ordered[160:180]


def child_test_fixed_articles_same_rows_in_two_queries_whatever_the_page_size(https):
    from django.test import override_settings

    with override_settings(DEMO_NAIVE=True):
        naive, naive_queries = _get(https, "/naive/articles/")
        fixed, fixed_queries = _get(https, "/naive/articles/fixed/")
        original = views.PAGE_SIZE
        views.PAGE_SIZE = 5
        try:
            with CaptureQueriesContext(connection) as captured:
                small = https.get("/naive/articles/fixed/")
        finally:
            views.PAGE_SIZE = original
    assert fixed.status_code == 200, fixed.content
    assert fixed.json() == naive.json()
    assert len(fixed.json()["results"]) == views.PAGE_SIZE
    assert naive_queries == 1 + 2 * views.PAGE_SIZE
    # The page with its authors joined, then the page's categories: 2, not 1 + 2 per row.
    assert fixed_queries == 2
    assert len(small.json()["results"]) == 5 and len(captured.captured_queries) == 2
    sql = [query["sql"] for query in captured.captured_queries]
    assert 'JOIN "publishing_author"' in sql[0]
    assert '"publishing_article_categories"."article_id" IN' in sql[1]


def child_test_fixed_articles_is_404_unless_naive_mode_is_on(https):
    assert https.get("/naive/articles/fixed/").status_code == 404
    assert https.get("/naive/archive/keyset/").status_code == 404


def child_test_keyset_archive_same_rows_as_offset_pages_without_offset(https):
    from django.test import override_settings

    ordered = list(
        Article.objects.order_by("-word_count", "-id").values_list("id", "word_count")
    )
    with override_settings(DEMO_NAIVE=True):
        first = https.get("/naive/archive/keyset/")
        assert first.status_code == 200, first.content
        assert first.json()["results"] == https.get("/naive/archive/").json()["results"]
        # Page 9 by the key of page 8's last row, as OFFSET 160 serves it.
        last_id, last_words = ordered[159]
        with CaptureQueriesContext(connection) as queries:
            deep = https.get("/naive/archive/keyset/", {"after": f"{last_words},{last_id}"})
        (query,) = queries.captured_queries
        offset = https.get("/naive/archive/", {"page": "9"}).json()["results"]
        assert https.get("/naive/archive/keyset/", {"after": "x"}).status_code == 404
        # Following "next" from the first page walks the same pages as ?page=2, 3.
        second = https.get(first.json()["next"])
        third = https.get(second.json()["next"])
        pages = [https.get("/naive/archive/", {"page": n}).json()["results"] for n in (2, 3)]
    assert deep.status_code == 200, deep.content
    assert deep.json()["results"] == offset
    assert [row["id"] for row in offset] == [row_id for row_id, _ in ordered[160:180]]
    assert "OFFSET" not in query["sql"].upper()
    assert '"word_count" <' in query["sql"]
    end_id, end_words = ordered[179]
    assert deep.json()["next"] == f"/naive/archive/keyset/?after={end_words},{end_id}"
    assert [second.json()["results"], third.json()["results"]] == pages


def child_test_recorder_counts_queries_and_repeated_shapes_per_view(https):
    from django.test import override_settings

    with override_settings(DEMO_NAIVE=True, **_recorder_settings(1.0)):
        for _ in range(3):
            assert https.get("/naive/articles/").status_code == 200
        assert https.get("/naive/archive/", {"page": "2"}).status_code == 200
    recorded = _recorded(1.0)
    assert set(recorded) == {"naive-articles", "naive-archive"}
    articles = recorded["naive-articles"]
    per_request = 1 + 2 * views.PAGE_SIZE
    assert articles["requests"] == 3
    assert articles["queries"] == 3 * per_request
    assert articles["max_queries"] == per_request
    shapes = {shape["sql"]: shape for shape in articles["shapes"]}
    assert len(shapes) == 2, shapes  # the author lookup and the categories lookup
    author = next(sql for sql in shapes if 'FROM "publishing_author"' in sql)
    assert author.endswith('WHERE "publishing_author"."id" = ? LIMIT ?')
    assert shapes[author] == {
        "sql": author, "count": 3 * views.PAGE_SIZE, "requests": 3,
        "max_per_request": views.PAGE_SIZE,
    }  # fmt: skip
    categories = next(sql for sql in shapes if sql != author)
    assert '"publishing_article_categories"."article_id" = ?' in categories
    # One query per request, nothing repeated: counted, no shapes.
    archive = recorded["naive-archive"]
    assert (archive["requests"], archive["queries"], archive["shapes"]) == (1, 1, [])


def child_test_recorder_at_rate_zero_records_nothing(https):
    from django.test import override_settings

    with override_settings(DEMO_NAIVE=True, **_recorder_settings(0.0)):
        for _ in range(3):
            assert https.get("/naive/articles/").status_code == 200
    assert _recorded(0.0) == {}


def child_test_recorder_samples_about_the_configured_share(https):
    from django.test import override_settings

    random_state = __import__("random").getstate()
    __import__("random").seed(11)
    try:
        with override_settings(DEMO_NAIVE=True, **_recorder_settings(0.25)):
            for _ in range(200):
                assert https.get("/naive/archive/").status_code == 200
    finally:
        __import__("random").setstate(random_state)
    requests = _recorded(0.25)["naive-archive"]["requests"]
    assert 30 <= requests <= 70, requests


def child_test_normalized_shapes_strip_literals_and_in_lists():
    from stacktune_queries import normalize_sql

    assert normalize_sql(
        "SELECT  \"t\".\"id\" FROM \"t\" WHERE \"t\".\"a\" = 'x''y' AND \"t\".\"b\" IN (%s, %s, %s)"
        " AND \"t2\".\"c\" > 42 LIMIT 21"
    ) == 'SELECT "t"."id" FROM "t" WHERE "t"."a" = ? AND "t"."b" IN (...) AND "t2"."c" > ? LIMIT ?'

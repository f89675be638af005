"""The django section and its settings module: a cache outage degrades; old Django works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacktune.cli import main

HOST = ["--memory", "4GiB", "--cpus", "2", "--storage", "ssd", "--host-name", "web1"]


def rendered_settings(capsys, tmp_path: Path, *argv: str) -> tuple[str, dict]:
    """The settings module `render` writes, as text and as the names it defines."""
    status = main(["render", "--out", str(tmp_path), *HOST, *argv])
    captured = capsys.readouterr()
    assert (status, captured.err) == (0, "")
    text = (tmp_path / "stacktune_settings.py").read_text()
    names: dict[str, object] = {}
    exec(compile(text, "stacktune_settings.py", "exec"), names)
    return text, names


def django_plan(capsys, *argv: str) -> dict:
    assert main(["plan", *HOST, "--format", "json", *argv]) == 0
    return json.loads(capsys.readouterr().out)["django"]


def test_a_redis_outage_reads_as_cache_misses(capsys, tmp_path):
    _, settings = rendered_settings(capsys, tmp_path)
    cache = settings["CACHES"]["default"]
    assert cache["BACKEND"] == "django_redis.cache.RedisCache"
    assert cache["OPTIONS"]["IGNORE_EXCEPTIONS"] is True
    # Each cache call gives up within a second while Redis is unreachable or hung.
    assert 0 < cache["OPTIONS"]["SOCKET_CONNECT_TIMEOUT"] <= 1
    assert 0 < cache["OPTIONS"]["SOCKET_TIMEOUT"] <= 1
    # Sessions survive the outage: cached_db reads them from the database.
    assert settings["SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"


def test_every_cache_setting_has_its_reason(capsys):
    assert main(["plan", *HOST, "--format", "json"]) == 0
    reasons = json.loads(capsys.readouterr().out)["reasons"]
    for name in ("CACHE_BACKEND", "CACHE_IGNORE_EXCEPTIONS", "CACHE_SOCKET_CONNECT_TIMEOUT",
                 "CACHE_SOCKET_TIMEOUT", "SESSION_ENGINE"):
        assert reasons[f"django.{name}"], name


def test_without_redis_no_redis_options(capsys, tmp_path):
    _, settings = rendered_settings(capsys, tmp_path, "--services", "postgresql,pgbouncer,gunicorn")
    cache = settings["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert "OPTIONS" not in cache and "LOCATION" not in cache


@pytest.mark.parametrize("version", ["3.2", "4.0"])
def test_django_before_41_gets_no_setting_it_does_not_know(capsys, tmp_path, version):
    """CONN_HEALTH_CHECKS came in Django 4.1 and the built-in Redis backend in 4.0."""
    text, settings = rendered_settings(capsys, tmp_path, "--django-version", version)
    assert "CONN_HEALTH_CHECKS" not in text
    assert "django.core.cache.backends.redis" not in text
    assert "CONN_HEALTH_CHECKS" not in settings["DATABASES"]["default"]
    assert "OPTIONS" not in settings["DATABASES"]["default"]     # no native pool before 5.1
    assert django_plan(capsys, "--django-version", version)["CONN_HEALTH_CHECKS"] is None


@pytest.mark.parametrize("version", ["4.2", "5.2"])
def test_supported_django_keeps_health_checks(capsys, tmp_path, version):
    _, settings = rendered_settings(capsys, tmp_path, "--django-version", version)
    assert settings["DATABASES"]["default"]["CONN_HEALTH_CHECKS"] is True


def test_cache_options_can_be_overridden(capsys, tmp_path):
    _, settings = rendered_settings(capsys, tmp_path, "--set", "django.CACHE_SOCKET_TIMEOUT=1.5")
    assert settings["CACHES"]["default"]["OPTIONS"]["SOCKET_TIMEOUT"] == 1.5


def test_a_cache_timeout_of_the_wrong_type_is_refused(capsys):
    assert main(["plan", *HOST, "--set", "django.CACHE_SOCKET_TIMEOUT=fast"]) == 2
    assert "django.CACHE_SOCKET_TIMEOUT" in capsys.readouterr().err


def _module_from_the_template(tmp_path: Path, **context: object) -> dict:
    """The settings module as the django_settings role renders it, executed as a package
    member (demo_site.stacktune_settings), with the role's query recorder variables."""
    from stacktune.model import SERVICES, Host, HostProfile, StackInputs, Storage, Workload
    from stacktune.plan import plan_stack
    from stacktune.render import render_service

    profile = HostProfile(memory_bytes=4 * 2**30, cpus=2.0, storage=Storage.SSD)
    plan = plan_stack(StackInputs(hosts=(Host("web1", profile, frozenset(SERVICES)),),
                                  workload=Workload.WEB, pg_version=15))
    text = render_service("django", plan.host_view("web1"), context)
    names: dict[str, object] = {"__package__": "demo_site"}
    exec(compile(text, "stacktune_settings.py", "exec"), names)
    return names


def test_the_query_recorder_is_off_unless_the_role_turns_it_on(tmp_path):
    names = _module_from_the_template(tmp_path)
    assert names["STACKTUNE_MIDDLEWARE"] == []
    assert "STACKTUNE_QUERY_RECORDER" not in names and "DEMO_NAIVE" not in names


def test_the_query_recorder_and_extra_settings_as_the_role_renders_them(tmp_path):
    names = _module_from_the_template(
        tmp_path, django_query_recorder=True, django_query_sample_rate=0.25,
        django_query_key_prefix="stacktune:queries",
        django_extra_settings={"DEMO_NAIVE": True, "PAGE_LIMIT": 40})
    assert names["STACKTUNE_MIDDLEWARE"] == ["demo_site.stacktune_queries.QueryShapeMiddleware"]
    # The recorder writes with the cache's own ACL user, under the cache's key prefix.
    assert names["STACKTUNE_QUERY_RECORDER"] == {
        "SAMPLE_RATE": 0.25,
        "REDIS_URL": names["CACHES"]["default"]["LOCATION"],
        "KEY_PREFIX": "stacktune:queries",
    }
    assert names["STACKTUNE_QUERY_RECORDER"]["KEY_PREFIX"].startswith(
        names["CACHES"]["default"]["KEY_PREFIX"] + ":")
    assert (names["DEMO_NAIVE"], names["PAGE_LIMIT"]) == (True, 40)

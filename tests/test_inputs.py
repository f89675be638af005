"""Overrides read and reported honestly, ports that follow each other, and render-time guards."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stacktune.cli import main
from stacktune.guard import UnsafeText
from stacktune.model import Host, HostProfile, StackInputs, Storage
from stacktune.plan import plan_stack
from stacktune.render import render_service
from stacktune.units import GiB

ALL = frozenset({"postgresql", "pgbouncer", "redis", "gunicorn"})


def plan(overrides=None, services=ALL, name="web1"):
    host = Host(name, HostProfile(memory_bytes=4 * GiB, cpus=2, storage=Storage.SSD), services)
    return plan_stack(StackInputs(hosts=(host,), overrides=overrides or {}))


def test_bare_shared_buffers_is_read_in_8kb_pages():
    # PostgreSQL reads shared_buffers = 128 as 128 buffers of 8kB: 1MB, not 128kB.
    p = plan({"postgresql": {"shared_buffers": "128"}})
    assert p.services["postgresql"]["shared_buffers"] == "128"
    assert p.postgres is not None
    assert p.postgres.shared_buffers_bytes == 128 * 8192


def test_override_reason_names_the_value_planned_without_overrides():
    planned = plan()
    p = plan({"postgresql": {"shared_buffers": "256MB"}})
    before = planned.services["postgresql"]["shared_buffers"]
    assert before != "256MB"
    assert p.reasons["postgresql.shared_buffers"] == (
        f"set by you, planned {before}: {planned.reasons['postgresql.shared_buffers']}")


def test_override_of_pool_size_reports_the_planned_pool_size():
    planned = plan()
    p = plan({"pgbouncer": {"default_pool_size": "9"}})
    assert p.reasons["pgbouncer.default_pool_size"].startswith(
        f"set by you, planned {planned.services['pgbouncer']['default_pool_size']}: ")


def test_django_follows_pgbouncer_listen_port():
    p = plan({"pgbouncer": {"listen_port": "6433"}})
    assert p.services["django"]["DATABASE_PORT"] == 6433
    assert p.reasons["django.DATABASE_PORT"] == "pgbouncer.listen_port = 6433"


def test_django_follows_postgresql_port_without_pgbouncer():
    p = plan({"postgresql": {"port": "5433"}}, services=frozenset({"postgresql", "gunicorn"}))
    assert p.services["django"]["DATABASE_PORT"] == 5433


def test_app_hosts_bound_fails_fast(capsys):
    started = time.monotonic()
    status = main(["plan", "--memory", "4GiB", "--cpus", "2", "--storage", "ssd",
                   "--host-name", "web1", "--app-hosts", "100000000"])
    assert status == 2
    assert time.monotonic() - started < 2
    assert "--app-hosts" in capsys.readouterr().err


INJECTED = "x\nlisten_addresses = '*'"


@pytest.mark.parametrize(("service", "context"), [
    ("pgbouncer", {"pgbouncer_listen_addr": INJECTED}),
    ("pgbouncer", {"pgbouncer_admin_users": INJECTED}),
    ("pgbouncer", {"pgbouncer_databases": [{"name": "app", "host": "db auth_type=trust",
                                            "port": 5432, "dbname": "app"}]}),
    ("redis", {"redis_bind": "127.0.0.1\nreplicaof 10.0.0.1 6379"}),
    ("redis", {"redis_aclfile": "/etc/redis/users.acl\rprotected-mode no"}),
    ("postgresql", {"postgresql_listen_addresses": INJECTED}),
])
def test_render_refuses_a_value_that_would_inject_a_line(service, context):
    view = plan().host_view("web1")
    with pytest.raises(UnsafeText):
        render_service(service, view, context)


@pytest.mark.parametrize("service", ["postgresql", "pgbouncer", "redis", "gunicorn", "django",
                                     "sysctl"])
def test_render_refuses_a_host_name_with_a_line_break(service):
    # The Ansible path takes host names from the inventory; the guard stops them in every file.
    view = plan(name="web1").host_view("web1")
    view["host"] = {**view["host"], "name": "web1\nimport os"}  # type: ignore[dict-item]
    with pytest.raises(UnsafeText):
        render_service(service, view)


def test_render_refuses_a_non_literal_gunicorn_value():
    view = plan().host_view("web1")
    view["gunicorn"] = {**view["gunicorn"], "worker_class": "__import__('os').system('id')"}  # type: ignore[dict-item]
    with pytest.raises(UnsafeText):
        render_service("gunicorn", view)


def test_ansible_filters_are_the_renderers_guards():
    """The filters as Ansible loads them from the collection (the checkout, linked in by
    scripts/setup) are the renderer's guards."""
    from ansible.plugins.loader import filter_loader, init_plugin_loader

    from stacktune import render

    init_plugin_loader([str(Path(__file__).resolve().parent.parent / ".cache" / "collections")])
    for name in ("conf_value", "conf_comment", "connstr_word", "py_literal", "pg_quote"):
        guard = filter_loader.get(f"stacktune.stacktune.{name}").j2_function
        assert guard is getattr(render, name)
        with pytest.raises(UnsafeText):
            guard("a\nb")


@pytest.mark.parametrize(("name", "value"), [
    ("redis_app_key_prefix", "app ~* +@all"),
    ("postgresql_app_database", "app\nhost all all 0.0.0.0/0 trust"),
    ("pgbouncer_listen_addr", "127.0.0.1\nauth_type = trust"),
    ("django_settings_allowed_hosts", ["example.com", "x\nimport os"]),
    ("postgresql_app_networks", "10.0.0.0/8"),
])
def test_deployment_variables_are_checked_before_any_change(name, value):
    from stacktune.guard import check_deployment_vars
    from stacktune.model import PlanError

    with pytest.raises(PlanError, match=f"host 'db1': {name}"):
        check_deployment_vars("db1", {name: value})


@pytest.mark.parametrize(("template", "variables"), [
    ("pg_hba", {"postgresql_app_database": "app all 0.0.0.0/0 trust"}),
    ("acl", {"redis_app_key_prefix": "app ~* +@all"}),
])
def test_role_templates_refuse_a_field_with_spaces(template, variables):
    from stacktune.render import environment

    roles = Path(__file__).resolve().parent.parent / "roles"
    path = {"pg_hba": roles / "postgresql" / "templates" / "pg_hba.conf.j2",
            "acl": roles / "redis" / "templates" / "users.acl.j2"}[template]
    env = environment()
    env.filters.update({"stacktune.stacktune.stacktune_comment": lambda text: f"# {text}",
                        "hash": lambda text, kind: text})
    context = {"stacktune_managed_header": "h", "postgresql_app_database": "app",
               "postgresql_app_user": "app", "postgresql_app_networks": [],
               "postgresql_hba_extra": [], "redis_app_user": "app", "redis_app_password": "p",
               "redis_app_key_prefix": "stacktune", "redis_admin_user": "admin",
               "redis_admin_password": "p", **variables}
    with pytest.raises(UnsafeText):
        env.from_string(path.read_text()).render(context)

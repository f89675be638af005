"""Render the plan through the repository's templates (the same files the roles use).

Templates print values; they never compute. The deployment context (listen
addresses, paths, user names) is data from the caller: the CLI passes the
defaults below, the roles pass their variables, so the CLI's output and what
Ansible deploys are byte-identical for the same inputs.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import jinja2

from stacktune.guard import UnsafeText, check_line, check_word
from stacktune.plan import Plan

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
# The Ansible collection the roles, plugins and filters ship in (galaxy.yml).
COLLECTION = "stacktune.stacktune"
MANAGED_HEADER = "Managed by stacktune; edits are overwritten on the next run"

# One output file per service: (template, file name written by `stacktune render`).
OUTPUTS = {
    "postgresql": ("postgresql.conf.j2", "postgresql.stacktune.conf"),
    "pgbouncer": ("pgbouncer.ini.j2", "pgbouncer.ini"),
    "redis": ("redis.conf.j2", "redis.conf"),
    "gunicorn": ("gunicorn.conf.py.j2", "gunicorn.conf.py"),
    "django": ("stacktune_settings.py.j2", "stacktune_settings.py"),
    "sysctl": ("sysctl.conf.j2", "sysctl.stacktune.conf"),
    "nginx": ("nginx.conf.j2", "nginx.conf"),
}

# Where the CLI pretends to deploy: everything on one host, on loopback.
DEFAULT_CONTEXT: dict[str, object] = {
    "postgresql_listen_addresses": "localhost",
    "pgbouncer_listen_addr": "127.0.0.1",
    "pgbouncer_auth_file": "/etc/pgbouncer/userlist.txt",
    "pgbouncer_auth_hba_file": "/etc/pgbouncer/pgbouncer_hba.conf",
    "pgbouncer_admin_users": "stacktune_admin",
    "pgbouncer_stats_users": "stacktune_stats",
    "pgbouncer_databases": [{"name": "app", "host": "127.0.0.1", "port": 5432, "dbname": "app"}],
    "redis_bind": "127.0.0.1 -::1",
    "redis_port": 6379,
    "redis_aclfile": "/etc/redis/users.acl",
    "gunicorn_bind": "127.0.0.1:8000",
    "django_db_name": "app",
    "django_db_user": "app",
    "django_db_password": "<set by the django_settings role from Vault>",
    "django_db_host": "127.0.0.1",
    "django_secret_key": "<set by the django_settings role from Vault>",
    "django_allowed_hosts": ["localhost", "127.0.0.1"],
    "django_cache_location": "redis://app:<password>@127.0.0.1:6379/0",
    "django_static_root": "/srv/app/static",
    "nginx_upstream_servers": ["127.0.0.1"],
    "nginx_upstream_port": 8000,
    "nginx_server_name": "_",
    "nginx_http_port": 80,
    "nginx_https_port": 443,
    "nginx_tls_certificate_path": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
    "nginx_tls_key_path": "/etc/ssl/private/ssl-cert-snakeoil.key",
    "nginx_static_root": "/srv/app/static",
    "nginx_static_url": "/static/",
}


def comment(text: str, decoration: str = "# ") -> str:
    """Ansible's `comment` filter with its defaults: the text framed by bare '#' lines."""
    body = "\n".join(f"{decoration}{line}".rstrip() for line in str(text).splitlines())
    return f"#\n{body}\n#"


# Render-time guards, one per file syntax: the last line of defence when a value that reached
# a template (from the plan, an inventory variable or a role default) would break its line.
# Inputs are validated where they enter; these make sure no template can emit an injected line.


def pg_quote(value: object) -> str:
    """A postgresql.conf value in single quotes (PostgreSQL accepts every type quoted)."""
    return "'" + check_line("postgresql.conf value", value).replace("'", "''") + "'"


def py(value: object) -> str:
    """A Python literal for a JSON value (True, None, {'min_size': 1}); repr escapes any text."""
    return repr(plain(value))


def py_literal(value: object) -> str:
    """A value that is already a Python literal (gunicorn's '2', "'gthread'"), checked as one."""
    text = check_line("gunicorn.conf.py value", value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UnsafeText(f"gunicorn.conf.py value {text!r} is not a Python literal") from None
    return text


def conf_comment(value: object) -> str:
    """Text after a comment sign ('#' or ';'): one line."""
    return check_line("comment", value)


def conf_value(value: object) -> str:
    """A value in a line-based file (pgbouncer.ini, redis.conf, sysctl.conf): one line."""
    return check_line("config value", value)


def conf_word(value: object) -> str:
    """One field of a whitespace-separated line (pg_hba.conf, a Redis ACL rule)."""
    return check_word("config field", value)


def connstr_word(value: object) -> str:
    """One word of a PgBouncer [databases] line (`name = host=... port=... dbname=...`)."""
    text = check_line("pgbouncer.ini [databases] value", value)
    if not text or any(char in text for char in " \t='\";#\\"):
        raise UnsafeText(f"pgbouncer.ini [databases] value {text!r}: use a name without "
                         "spaces, quotes, '=', ';' or '#'")
    return text


def plain(value: object) -> object:
    """Built-in types only: Ansible passes tagged str/dict subclasses whose repr differs."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        # Ansible's template module defaults, so both render the same bytes.
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=False,
    )
    env.filters["comment"] = comment
    # The templates name the guards as Ansible does: by the collection's FQCN.
    env.filters.update({f"{COLLECTION}.{name}": guard for name, guard in {
        "pg_quote": pg_quote, "py": py, "py_literal": py_literal, "conf_comment": conf_comment,
        "conf_value": conf_value, "conf_word": conf_word, "connstr_word": connstr_word,
    }.items()})
    return env


def render_service(service: str, view: Mapping[str, object],
                   context: Mapping[str, object] | None = None) -> str:
    """Render one service's file from a host view of the plan (Plan.host_view)."""
    template_name, _ = OUTPUTS[service]
    variables = {**DEFAULT_CONTEXT, **(context or {}),
                 "stacktune_header": MANAGED_HEADER, "plan": view}
    return environment().get_template(template_name).render(variables)


def render_host(plan: Plan, host_name: str, out_dir: Path,
                context: Mapping[str, object] | None = None) -> list[Path]:
    """Write every file of one host's plan into out_dir; return the paths written.

    Every file is rendered before the first is written: a value a guard refuses leaves
    nothing behind.
    """
    view = plan.host_view(host_name)
    rendered = {
        out_dir / file_name: render_service(service, view, context)
        for service, (_, file_name) in OUTPUTS.items()
        if service in view and (view[service] or service == "sysctl")
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, text in rendered.items():
        path.write_text(text)
    return list(rendered)

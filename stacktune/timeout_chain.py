"""The timeout chain of one request, shortest at the database.

    lock_timeout < statement_timeout                       (PostgreSQL, app role)
    statement_timeout + wait for a connection < gunicorn.timeout
    pgbouncer.query_wait_timeout < gunicorn.timeout
    pgbouncer.server_login_retry, server_connect_timeout < query_wait_timeout
    gunicorn.graceful_timeout >= statement_timeout + wait for a connection
    PgBouncer PAUSE around a PostgreSQL restart + margin <= query_wait_timeout
    gunicorn.timeout < nginx.proxy_read_timeout, nginx.proxy_send_timeout  (the proxy waits longest)
    nginx.proxy_connect_timeout < nginx.proxy_read_timeout
    nginx.upstream_keepalive_timeout < gunicorn.keepalive   (nginx drops an idle connection first)

The wait for a connection is PgBouncer's query_wait_timeout when PgBouncer is
placed, else the Django pool's timeout when it has one. With Gunicorn's gthread
worker, ``timeout`` only restarts a worker whose main loop is stuck; a slow request
in a thread is bounded by the database's statement_timeout, so that one must be
set (0 = off breaks the chain). An override that breaks an order is a PlanError
naming both settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from stacktune.catalogue import nginx_seconds
from stacktune.model import PlanError
from stacktune.units import UnitError, parse_pg_duration

Services = Mapping[str, Mapping[str, object]]
# How Ansible's command module reports a command's start and end.
COMMAND_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _pg_seconds(value: object) -> float:
    """A PostgreSQL time value in seconds (a bare number is milliseconds)."""
    try:
        return parse_pg_duration(str(value), "ms")
    except UnitError as error:
        raise PlanError(str(error)) from None


def _number(value: object) -> float:
    return float(str(value).strip().strip("'\""))


def _order(first: str, first_s: float, second: str, second_s: float, why: str) -> None:
    raise PlanError(f"{first} ({first_s:g} s) must be below {second} ({second_s:g} s): {why}; "
                    f"lower {first} or raise {second}")


def check_timeout_chain(services: Services) -> None:
    """Raise PlanError when the planned or overridden timeouts are out of order."""
    role = services.get("postgresql_app_role")
    bouncer = services.get("pgbouncer")
    gunicorn = services.get("gunicorn")
    django = services.get("django")

    statement = None
    if role is not None:
        statement = _pg_seconds(role.get("statement_timeout", "0"))
        lock = _pg_seconds(role.get("lock_timeout", "0"))
        if lock > 0 and statement > 0 and lock >= statement:
            _order("postgresql_app_role.lock_timeout", lock,
                   "postgresql_app_role.statement_timeout", statement,
                   "a statement waiting for a lock would be cancelled as slow, not as blocked")

    wait, wait_name = 0.0, ""
    if bouncer is not None:
        wait, wait_name = _number(bouncer["query_wait_timeout"]), "pgbouncer.query_wait_timeout"
        for name in ("server_login_retry", "server_connect_timeout"):
            if name in bouncer and wait > 0 and _number(bouncer[name]) >= wait:
                _order(f"pgbouncer.{name}", _number(bouncer[name]), wait_name, wait,
                       "a client would give up before PgBouncer retries a restarted server")
    elif django is not None and isinstance(django.get("DATABASE_POOL"), dict):
        pool_timeout = django["DATABASE_POOL"].get("timeout")
        if isinstance(pool_timeout, (int, float)) and not isinstance(pool_timeout, bool):
            wait, wait_name = float(pool_timeout), "django.DATABASE_POOL.timeout"

    if gunicorn is None:
        return
    timeout = _number(gunicorn["timeout"])
    graceful = _number(gunicorn["graceful_timeout"])
    nginx = services.get("nginx")
    if nginx is not None:
        _check_nginx(nginx, timeout, _number(gunicorn["keepalive"]))
    if bouncer is not None and (wait == 0 or wait >= timeout):
        _order("pgbouncer.query_wait_timeout", wait or float("inf"), "gunicorn.timeout",
               timeout, "a queued request must fail before Gunicorn gives up on it")
    if statement is None:
        return
    bound = (statement or float("inf")) + wait
    with_wait = f" + {wait_name}" if wait_name else ""
    if statement == 0 or bound >= timeout:
        _order(f"postgresql_app_role.statement_timeout{with_wait}", bound, "gunicorn.timeout",
               timeout, "with the gthread worker only the database stops a slow request, so "
               "it must do so before Gunicorn's timeout")
    if graceful < bound:
        raise PlanError(
            f"gunicorn.graceful_timeout ({graceful:g} s) is below "
            f"postgresql_app_role.statement_timeout{with_wait} ({bound:g} s): a reload would "
            "kill requests the database still allows; raise gunicorn.graceful_timeout or "
            "lower the database timeouts")


# A query queued during a PAUSE still needs a new server login after RESUME (the restarted
# server has no backends for PgBouncer yet): the pause ends this long before the queued
# clients' query_wait_timeout.
RESTART_PAUSE_MARGIN_SECONDS = 1.0


def check_restart_pause(pause_seconds: object, bouncer: Mapping[str, object],
                        name: str = "postgresql_restart_pause_timeout") -> float:
    """The longest a PgBouncer PAUSE may hold the app's queries while PostgreSQL restarts.

    PAUSE makes PgBouncer wait for running transactions (pool_mode=transaction), close its
    server connections and queue every new query until RESUME. Queued clients still count
    against query_wait_timeout (only SUSPEND stops PgBouncer's timeouts; PgBouncer docs,
    usage: admin console), so a pause that lasts longer turns the waiting requests into
    errors. Gunicorn's timeout is already above query_wait_timeout (check_timeout_chain).
    Returns the pause in seconds; PlanError naming ``name`` and query_wait_timeout.
    """
    try:
        pause = _number(pause_seconds)
    except ValueError:
        raise PlanError(f"{name} = {pause_seconds!r}: give a number of seconds, "
                        "e.g. 8") from None
    if not pause >= 1:
        raise PlanError(f"{name} = {pause_seconds!r}: give at least 1 second, enough for "
                        "PostgreSQL to restart")
    wait = _number(bouncer.get("query_wait_timeout", 0))
    if wait > 0 and pause + RESTART_PAUSE_MARGIN_SECONDS > wait:
        raise PlanError(
            f"{name} ({pause:g} s) + {RESTART_PAUSE_MARGIN_SECONDS:g} s must be at most "
            f"pgbouncer.query_wait_timeout ({wait:g} s): queries queued during the pause "
            f"would be dropped before it ends; lower {name} or raise "
            "pgbouncer.query_wait_timeout")
    return pause


def command_seconds(delta: object) -> float:
    """Seconds of a command module's ``delta`` ('H:MM:SS.ffffff', hours may exceed 23)."""
    text = str(delta).strip()
    try:
        hours, minutes, seconds = text.split(":")
        total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        raise PlanError(f"command duration {delta!r}: expected H:MM:SS.ffffff") from None
    if not total >= 0:
        raise PlanError(f"command duration {delta!r}: expected H:MM:SS.ffffff")
    return total


def restart_time_left(pause_seconds: object, pause_deltas: Iterable[object]) -> int:
    """Whole seconds a restart may take once every PgBouncer is paused (at least 1).

    The pause budget counts from the PAUSE commands' start; the slowest PAUSE (it waits for
    running transactions) used part of it. Rounded down, so the restart's timeout never
    outlasts the budget; 1 s at least, because Ansible's task timeout 0 means none.
    """
    pause = _number(pause_seconds)
    used = max((command_seconds(delta) for delta in pause_deltas), default=0.0)
    return max(int(pause - used), 1)


def held_seconds(pause_starts: Sequence[object], resume_starts: Sequence[object]) -> list[float]:
    """How long each PgBouncer held its clients: its RESUME's start minus its PAUSE's start.

    Both are a command module's ``start`` ('%Y-%m-%d %H:%M:%S.%f' on that host's clock), in
    the same host order.
    """
    if len(pause_starts) != len(resume_starts):
        raise PlanError(f"{len(pause_starts)} PAUSE and {len(resume_starts)} RESUME times: "
                        "expected one of each per PgBouncer")
    return [(_command_time(resume) - _command_time(pause)).total_seconds()
            for pause, resume in zip(pause_starts, resume_starts, strict=True)]


def _command_time(start: object) -> datetime:
    try:
        return datetime.strptime(str(start).strip(), COMMAND_TIME_FORMAT)
    except ValueError:
        raise PlanError(f"command start {start!r}: expected {COMMAND_TIME_FORMAT}") from None


def _check_nginx(nginx: Mapping[str, object], gunicorn_timeout: float,
                 gunicorn_keepalive: float) -> None:
    """The proxy is the outermost link: it waits longer than Gunicorn, and lets go of an idle
    upstream connection before Gunicorn does."""
    def seconds(name: str) -> float:
        return nginx_seconds(f"nginx.{name}", nginx[name])

    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        if seconds(name) <= gunicorn_timeout:
            raise PlanError(
                f"nginx.{name} ({seconds(name):g} s) must be above gunicorn.timeout "
                f"({gunicorn_timeout:g} s): nginx would answer 504 for a request Gunicorn is "
                f"still allowed to finish; raise nginx.{name} or lower gunicorn.timeout")
    if seconds("proxy_connect_timeout") >= seconds("proxy_read_timeout"):
        _order("nginx.proxy_connect_timeout", seconds("proxy_connect_timeout"),
               "nginx.proxy_read_timeout", seconds("proxy_read_timeout"),
               "a down app host must be given up before a slow answer is")
    keepalive = seconds("upstream_keepalive_timeout")
    if gunicorn_keepalive > 0 and keepalive >= gunicorn_keepalive:
        _order("nginx.upstream_keepalive_timeout", keepalive, "gunicorn.keepalive",
               gunicorn_keepalive, "Gunicorn would close an idle connection just as nginx sends "
               "a request on it (a 502)")

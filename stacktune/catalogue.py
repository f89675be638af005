"""Settings that may be overridden for PgBouncer, Redis, Gunicorn, Django and sysctl.

Each entry normalises a user's value into the service's own syntax or raises
PlanError naming `service.setting`, the value, and the expected form.
PostgreSQL's catalogue is stacktune.pg_params (ranges depend on the version).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from stacktune.guard import ascii_decimal, ascii_integer, check_line, unsafe_character
from stacktune.model import PlanError
from stacktune.units import UnitError, format_redis_memory, parse_redis_memory

Normaliser = Callable[[str, object], object]


@dataclass(frozen=True)
class Setting:
    normalise: Normaliser
    expected: str


def _int(minimum: int = 0, maximum: int = 2**31 - 1) -> Setting:
    def normalise(key: str, value: object) -> object:
        return str(ascii_integer(key, value, minimum, maximum))
    return Setting(normalise, f"integer {minimum}..{maximum}")


def _number(minimum: float = 0) -> Setting:
    def normalise(key: str, value: object) -> object:
        # Finite ASCII decimals only: float() would also take 'nan', 'inf' and '1e400'.
        return f"{ascii_decimal(key, value, minimum, 1e9):g}"
    return Setting(normalise, f"number >= {minimum:g}")


def _choice(*choices: str) -> Setting:
    def normalise(key: str, value: object) -> object:
        text = str(value).strip()
        if text.lower() not in choices:
            raise PlanError(f"{key} = {text!r}: expected one of {', '.join(choices)}")
        return text.lower()
    return Setting(normalise, "one of " + ", ".join(choices))


def _text() -> Setting:
    def normalise(key: str, value: object) -> object:
        return check_line(key, value)
    return Setting(normalise, "text")


def _redis_memory(minimum: int = 0) -> Setting:
    def normalise(key: str, value: object) -> object:
        try:
            size = parse_redis_memory(str(value))
        except UnitError as error:
            raise PlanError(f"{key}: {error}") from None
        if size < minimum:
            raise PlanError(f"{key} = {value!r}: Redis requires at least "
                            f"{format_redis_memory(minimum)}")
        return format_redis_memory(size)
    return Setting(normalise, "a size like 512mb or 2gb")


def _python(kind: type, allowed: tuple[object, ...] | None = None, minimum: int = 0) -> Setting:
    """A gunicorn.conf.py value: parsed from text, written back as a Python literal."""
    def normalise(key: str, value: object) -> object:
        text = check_line(key, value).strip()
        parsed: object
        if kind is str:
            try:
                parsed = ast.literal_eval(text) if text[:1] in "'\"" else text
            except (ValueError, SyntaxError):
                raise PlanError(f"{key} = {text!r}: expected a plain word or one quoted "
                                "string") from None
            if not isinstance(parsed, str):
                raise PlanError(f"{key} = {text!r}: expected a string")
        elif kind is int:
            parsed = ascii_integer(key, text, minimum, 2**31 - 1)
        elif kind is bool:
            if text.lower() not in ("true", "false"):
                raise PlanError(f"{key} = {text!r}: expected True or False")
            parsed = text.lower() == "true"
        else:
            try:
                parsed = kind(text)
            except ValueError:
                raise PlanError(f"{key} = {text!r}: expected {kind.__name__}") from None
            if parsed < minimum:  # type: ignore[operator]
                raise PlanError(f"{key} = {text!r}: expected a value >= {minimum}")
        if allowed is not None and parsed not in allowed:
            raise PlanError(f"{key} = {text!r}: expected one of {', '.join(map(str, allowed))}")
        return repr(parsed)
    return Setting(normalise, f"a Python {kind.__name__}")


def _json(*kinds: type, nullable: bool = False,
          check: Callable[[str, object], None] | None = None) -> Setting:
    """A Django setting: JSON (or Python) literal of the given types."""
    def normalise(key: str, value: object) -> object:
        parsed = value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                try:
                    parsed = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    parsed = value
        if parsed is None and nullable:
            return None
        if isinstance(parsed, bool) and bool not in kinds:
            raise PlanError(f"{key} = {value!r}: expected {' or '.join(k.__name__ for k in kinds)}")
        if not isinstance(parsed, kinds):
            raise PlanError(f"{key} = {value!r}: expected {' or '.join(k.__name__ for k in kinds)}"
                            + (" or null" if nullable else ""))
        if isinstance(parsed, str) and unsafe_character(parsed) is not None:
            check_line(key, parsed)
        if check is not None:
            check(key, parsed)
        return parsed
    return Setting(normalise, " or ".join(k.__name__ for k in kinds))


def _port(key: str, value: object) -> None:
    if isinstance(value, int) and not 1 <= value <= 65535:
        raise PlanError(f"{key} = {value}: expected a port from 1 to 65535")


def _not_negative(key: str, value: object) -> None:
    if isinstance(value, int) and value < 0:
        raise PlanError(f"{key} = {value}: expected 0 (close after each request), a number of "
                        "seconds, or null (keep forever)")


POOL_KEYS = {"min_size": 0, "max_size": 1, "timeout": 1}


def _pool(key: str, value: object) -> None:
    """OPTIONS['pool'] of Django's psycopg pool: whole numbers, min_size <= max_size."""
    if not isinstance(value, dict):
        return
    for name, number in value.items():
        if name not in POOL_KEYS:
            raise PlanError(f"{key}: unknown key {name!r}; use {', '.join(POOL_KEYS)}")
        if isinstance(number, bool) or not isinstance(number, int) or number < POOL_KEYS[name]:
            raise PlanError(f"{key}: {name} = {number!r}; expected a whole number >= "
                            f"{POOL_KEYS[name]}")
    low, high = value.get("min_size", 0), value.get("max_size")
    if high is not None and low > high:  # type: ignore[operator]
        raise PlanError(f"{key}: min_size {low} is above max_size {high}; psycopg's pool "
                        "refuses it: set min_size at most max_size")


# nginx's time units (ngx_parse_time) and size suffixes; a bare number is seconds / bytes.
NGINX_TIME_SECONDS = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NGINX_TIME = re.compile(r"([0-9]{1,9})(ms|s|m|h|d)?")
_NGINX_SIZE = re.compile(r"[0-9]{1,9}[kKmMgG]?")
_NGINX_BUFFERS = re.compile(r"[0-9]{1,4} [0-9]{1,9}[kKmM]?")


def nginx_seconds(key: str, value: object) -> float:
    """An nginx time ("35s", "500ms", "1m", "30") in seconds, or a PlanError naming key."""
    text = str(value).strip()
    match = _NGINX_TIME.fullmatch(text)
    if match is None:
        raise PlanError(f"{key} = {text!r}: expected an nginx time such as 30s, 500ms or 1m")
    return int(match.group(1)) * NGINX_TIME_SECONDS[match.group(2) or ""]


def _nginx_time() -> Setting:
    def normalise(key: str, value: object) -> object:
        nginx_seconds(key, value)
        text = str(value).strip()
        return text if not text.isdigit() else f"{text}s"
    return Setting(normalise, "an nginx time such as 30s")


def _pattern(pattern: re.Pattern[str], expected: str) -> Setting:
    def normalise(key: str, value: object) -> object:
        text = str(value).strip()
        if pattern.fullmatch(text) is None:
            raise PlanError(f"{key} = {text!r}: expected {expected}")
        return text
    return Setting(normalise, expected)


YES_NO = _choice("yes", "no")

CATALOGUE: dict[str, dict[str, Setting]] = {
    "pgbouncer": {
        "pool_mode": _choice("transaction", "session", "statement"),
        "listen_port": _int(1, 65535),
        "auth_type": _choice("scram-sha-256", "cert", "hba"),
        "max_client_conn": _int(1),
        "default_pool_size": _int(1),
        "min_pool_size": _int(0),
        "reserve_pool_size": _int(0),
        "reserve_pool_timeout": _number(0),
        "max_db_connections": _int(0),
        "max_user_connections": _int(0),
        "server_idle_timeout": _number(0),
        "server_lifetime": _number(0),
        "server_connect_timeout": _number(0),
        "server_login_retry": _number(0),
        "client_login_timeout": _number(0),
        "query_wait_timeout": _number(0),
        "query_timeout": _number(0),
        "client_idle_timeout": _number(0),
        "idle_transaction_timeout": _number(0),
        "max_prepared_statements": _int(0),
        "ignore_startup_parameters": _text(),
        "server_reset_query": _text(),
        "tcp_keepalive": _choice("0", "1"),
        "log_connections": _choice("0", "1"),
        "log_disconnections": _choice("0", "1"),
        "stats_period": _int(1),
        # Read only at start: a change goes live by an online restart (pgbouncer_allow_restart).
        "pkt_buf": _int(1),
    },
    "redis": {
        "maxmemory": _redis_memory(),
        "maxmemory-policy": _choice(
            "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
            "volatile-lfu", "volatile-random", "volatile-ttl"),
        "maxmemory-samples": _int(1, 64),
        "save": _text(),
        "appendonly": YES_NO,
        "tcp-backlog": _int(1),
        "timeout": _int(0),
        "tcp-keepalive": _int(0),
        "maxclients": _int(1),
        # Redis refuses values below 1mb for both.
        "proto-max-bulk-len": _redis_memory(minimum=1024 * 1024),
        "client-query-buffer-limit": _redis_memory(minimum=1024 * 1024),
        "client-output-buffer-limit": _text(),
        "hz": _int(1, 500),
        "io-threads": _int(1, 128),
        "activedefrag": YES_NO,
        "lazyfree-lazy-eviction": YES_NO,
        "lazyfree-lazy-expire": YES_NO,
        "lazyfree-lazy-server-del": YES_NO,
        "lazyfree-lazy-user-del": YES_NO,
        "replica-lazy-flush": YES_NO,
    },
    "gunicorn": {
        # The connection chain counts workers x threads: 0 would plan for clients
        # that never exist while Gunicorn runs none.
        "workers": _python(int, minimum=1),
        "worker_class": _python(str, ("sync", "gthread", "gevent", "eventlet", "tornado")),
        "threads": _python(int, minimum=1),
        "timeout": _python(int),
        "graceful_timeout": _python(int),
        "keepalive": _python(int),
        "max_requests": _python(int),
        "max_requests_jitter": _python(int),
        "backlog": _python(int),
        "worker_connections": _python(int),
        "preload_app": _python(bool),
    },
    "django": {
        "DATABASE_TARGET": _json(str),
        "DATABASE_PORT": _json(int, check=_port),
        "CONN_MAX_AGE": _json(int, nullable=True, check=_not_negative),
        "CONN_HEALTH_CHECKS": _json(bool, nullable=True),
        "DISABLE_SERVER_SIDE_CURSORS": _json(bool),
        "DATABASE_POOL": _json(dict, bool, nullable=True, check=_pool),
        "CACHE_BACKEND": _json(str),
        "CACHE_PORT": _json(int, nullable=True, check=_port),
        "CACHE_KEY_PREFIX": _json(str),
        "CACHE_TIMEOUT": _json(int, nullable=True),
        "CACHE_IGNORE_EXCEPTIONS": _json(bool, nullable=True),
        "CACHE_SOCKET_CONNECT_TIMEOUT": _json(float, int, nullable=True),
        "CACHE_SOCKET_TIMEOUT": _json(float, int, nullable=True),
        "SESSION_ENGINE": _json(str),
    },
    "nginx": {
        "worker_processes": _int(1, 1024),
        "worker_connections": _int(16, 1048576),
        "worker_rlimit_nofile": _int(16, 1048576),
        "upstream_keepalive": _int(1, 100000),
        "upstream_keepalive_timeout": _nginx_time(),
        "client_max_body_size": _pattern(_NGINX_SIZE, "an nginx size such as 10m"),
        "client_body_buffer_size": _pattern(_NGINX_SIZE, "an nginx size such as 128k"),
        "large_client_header_buffers": _pattern(_NGINX_BUFFERS,
                                                "a number and a size such as '4 8k'"),
        "client_header_timeout": _nginx_time(),
        "client_body_timeout": _nginx_time(),
        "send_timeout": _nginx_time(),
        "keepalive_timeout": _nginx_time(),
        "proxy_connect_timeout": _nginx_time(),
        "proxy_read_timeout": _nginx_time(),
        "proxy_send_timeout": _nginx_time(),
        "max_fails": _int(0, 1000),
        "fail_timeout": _nginx_time(),
    },
    "sysctl": {
        "vm.overcommit_memory": _choice("0", "1", "2"),
        "vm.overcommit_ratio": _int(0, 100),
        "vm.swappiness": _int(0, 200),
        "vm.nr_hugepages": _int(0),
        "net.core.somaxconn": _int(1, 2**31 - 1),
        "transparent_hugepage": _choice("always", "madvise", "never"),
    },
}


def normalise_setting(service: str, name: str, value: object) -> object:
    """Validate and normalise one override of a non-PostgreSQL service."""
    settings = CATALOGUE[service]
    if name not in settings:
        raise unknown_setting(service, name, settings)
    return settings[name].normalise(f"{service}.{name}", value)


def unknown_setting(service: str, name: str, known: object) -> PlanError:
    import difflib

    names = sorted(known)  # type: ignore[call-overload]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(names)}"
    return PlanError(f"unknown setting {service}.{name}{hint}")

"""Django settings that depend on the rest of the stack (Django docs, 'Databases', 'Cache').

Values are JSON values (the rendered settings module writes them as Python).
"""

from __future__ import annotations

from stacktune.planners.pgbouncer import LISTEN_PORT as PGBOUNCER_PORT
from stacktune.section import Section

POSTGRESQL_PORT = 5432
REDIS_PORT = 6379
CONN_MAX_AGE_SECONDS = 600
CACHE_TIMEOUT_SECONDS = 300
CACHE_KEY_PREFIX = "stacktune"
NATIVE_POOL_TIMEOUT_SECONDS = 10
# django-redis (github.com/jazzband/django-redis): the cache backend whose
# IGNORE_EXCEPTIONS option turns a Redis outage into cache misses.
DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"
# Redis answers in well under a millisecond on the same host or LAN; a cache slower
# than the query it saves is worse than none. Both bound each cache call while Redis
# is unreachable (connection) or hung (reply).
CACHE_SOCKET_CONNECT_TIMEOUT_SECONDS = 0.25
CACHE_SOCKET_TIMEOUT_SECONDS = 0.5


def _major_minor(django_version: str) -> tuple[int, int]:
    major, minor = (int(part) for part in django_version.split(".")[:2])
    return major, minor


def supports_native_pool(django_version: str) -> bool:
    """Django 5.1 added OPTIONS['pool'] for psycopg 3."""
    return _major_minor(django_version) >= (5, 1)


def supports_health_checks(django_version: str) -> bool:
    """Django 4.1 added DATABASES CONN_HEALTH_CHECKS."""
    return _major_minor(django_version) >= (4, 1)


def plan_django(*, pooled: bool, has_redis: bool, django_version: str,
                threads: int) -> Section:
    s = Section("django")
    if pooled:
        s.set("DATABASE_TARGET", "pgbouncer", "connect through PgBouncer")
        s.set("DATABASE_PORT", PGBOUNCER_PORT, "PgBouncer's port")
        s.set("CONN_MAX_AGE", CONN_MAX_AGE_SECONDS,
              "keep each thread's connection to PgBouncer: no TCP+SCRAM handshake per request")
        s.set("DISABLE_SERVER_SIDE_CURSORS", True,
              "required under transaction pooling: a cursor cannot outlive its transaction's "
              "server connection (Django docs)")
        s.set("DATABASE_POOL", None, "PgBouncer pools; Django's own pool would pool twice")
    else:
        native = supports_native_pool(django_version)
        s.set("DATABASE_TARGET", "postgresql", "no PgBouncer placed: connect directly")
        s.set("DATABASE_PORT", POSTGRESQL_PORT, "PostgreSQL's port")
        s.set("DISABLE_SERVER_SIDE_CURSORS", False, "server-side cursors work without a pooler")
        if native:
            s.set("CONN_MAX_AGE", 0,
                  "Django's native pool requires CONN_MAX_AGE = 0 (pooled connections persist)")
            s.set("DATABASE_POOL", {"min_size": 1, "max_size": threads,
                                    "timeout": NATIVE_POOL_TIMEOUT_SECONDS},
                  f"Django >= 5.1 psycopg pool per worker process, one connection per thread "
                  f"({threads})")
        else:
            s.set("CONN_MAX_AGE", CONN_MAX_AGE_SECONDS,
                  "persistent connections: no connection setup per request; max_connections "
                  "covers them")
            s.set("DATABASE_POOL", None, f"Django {django_version} has no native pool")
    if supports_health_checks(django_version):
        s.set("CONN_HEALTH_CHECKS", True,
              "check a reused connection before a request uses it (Django >= 4.1)")
    else:
        s.set("CONN_HEALTH_CHECKS", None,
              f"Django {django_version} has no CONN_HEALTH_CHECKS (added in 4.1): not written")
    if has_redis:
        s.set("CACHE_BACKEND", DJANGO_REDIS_BACKEND,
              "django-redis: with IGNORE_EXCEPTIONS a Redis outage reads as cache misses "
              "(Django's own Redis backend raises, and every cached page returns 500)")
        s.set("CACHE_PORT", REDIS_PORT, "Redis's port")
        s.set("CACHE_IGNORE_EXCEPTIONS", True,
              "the cache is optional: when Redis is down, pages are computed from the "
              "database (slower, not broken); /healthz reports the cache as degraded")
        s.set("CACHE_SOCKET_CONNECT_TIMEOUT", CACHE_SOCKET_CONNECT_TIMEOUT_SECONDS,
              "seconds; an unreachable Redis costs each cache call at most this, "
              "not the OS's connect timeout of minutes")
        s.set("CACHE_SOCKET_TIMEOUT", CACHE_SOCKET_TIMEOUT_SECONDS,
              "seconds; a hung Redis costs each cache call at most this")
        s.set("SESSION_ENGINE", "django.contrib.sessions.backends.cached_db",
              "sessions read from Redis, written through to PostgreSQL: an evicted key or a "
              "Redis outage does not log anyone out (reads fall back to the database)")
    else:
        s.set("CACHE_BACKEND", "django.core.cache.backends.locmem.LocMemCache",
              "no Redis placed: a per-process memory cache")
        s.set("CACHE_PORT", None, "no Redis placed")
        s.set("CACHE_IGNORE_EXCEPTIONS", None, "no Redis placed: nothing to ignore")
        s.set("CACHE_SOCKET_CONNECT_TIMEOUT", None, "no Redis placed")
        s.set("CACHE_SOCKET_TIMEOUT", None, "no Redis placed")
        s.set("SESSION_ENGINE", "django.contrib.sessions.backends.db",
              "no shared cache: sessions in the database")
    s.set("CACHE_KEY_PREFIX", CACHE_KEY_PREFIX, "keeps the app's keys apart in a shared Redis")
    s.set("CACHE_TIMEOUT", CACHE_TIMEOUT_SECONDS, "five minutes, Django's default")
    return s

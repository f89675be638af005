"""Answer health checks before the rest of the stack runs."""

import secrets

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import JsonResponse

HEALTH_PATH = "/healthz"
CACHE_PROBE_KEY = "healthz-probe"
CACHE_PROBE_SECONDS = 10


def database_state():
    """"ok" when a query goes through (PgBouncer, then PostgreSQL, in the deploy), else "down"."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return "down"
    return "ok"


def cache_state():
    """"ok" when a value written to the cache reads back, else "degraded".

    The deploy's cache ignores Redis errors (every call is a miss), so the probe
    writes and reads back a fresh token rather than waiting for an exception.
    """
    token = secrets.token_hex(8)
    try:
        cache.set(CACHE_PROBE_KEY, token, CACHE_PROBE_SECONDS)
        answered = cache.get(CACHE_PROBE_KEY) == token
    except Exception:  # a backend that raises on an outage is degraded too, not a 500
        answered = False
    return "ok" if answered else "degraded"


def health_response():
    """Each dependency's state. 503 only when the database is down: without the cache
    pages are slower but still served, so the instance stays in the load balancer."""
    report = {"database": database_state(), "cache": cache_state()}
    if report["database"] != "ok":
        report["status"], status = "down", 503
    elif report["cache"] != "ok":
        report["status"], status = "degraded", 200
    else:
        report["status"], status = "ok", 200
    response = JsonResponse(report, status=status)
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """``GET /healthz`` -> each dependency's state, as JSON; 503 when the database is down.

    It sits first in MIDDLEWARE so that a probe by IP address over plain HTTP
    (a load balancer, the deploy's smoke test) is answered even when that
    address is not in ALLOWED_HOSTS and the site redirects everything to HTTPS.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            return health_response()
        return self.get_response(request)

"""Answer health checks before the rest of the stack runs."""

from django.http import HttpResponse

HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    """``GET /healthz`` -> 200 "ok", touching neither the database nor the cache.

    It sits first in MIDDLEWARE so that a probe by IP address over plain HTTP
    (a load balancer, the deploy's smoke test) is answered even when that
    address is not in ALLOWED_HOSTS and the site redirects everything to HTTPS.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            response = HttpResponse("ok", content_type="text/plain")
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)

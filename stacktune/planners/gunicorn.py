"""Gunicorn settings (Gunicorn docs, 'Settings' and 'Design: How many workers?').

Values are Python literals: gunicorn.conf.py is Python.
"""

from __future__ import annotations

from stacktune.section import Section
from stacktune.units import human_bytes

THREADS = 2
TIMEOUT_SECONDS = 30
KEEPALIVE_SECONDS = 5
MAX_REQUESTS = 1000
MAX_REQUESTS_JITTER = 100
BACKLOG = 2048


def plan_gunicorn(workers: int, cpus: float, worker_rss_bytes: int, app_hosts: int) -> Section:
    s = Section("gunicorn")
    s.set("workers", str(workers),
          f"(2 x {cpus:g} CPUs) + 1 (Gunicorn docs), limited by the memory share at "
          f"{human_bytes(worker_rss_bytes)} per worker")
    s.set("worker_class", repr("gthread"),
          "threads overlap the waits on PostgreSQL and Redis in each worker")
    s.set("threads", str(THREADS),
          f"each thread holds one Django connection: {workers} x {THREADS} x {app_hosts} "
          "app host(s) feed the connection chain")
    s.set("timeout", str(TIMEOUT_SECONDS),
          "kill a worker whose main loop is stuck for 30 s (Gunicorn's default); with gthread "
          "it does not stop one slow request, the database timeouts below it do")
    s.set("graceful_timeout", str(TIMEOUT_SECONDS),
          "on reload, in-flight requests get as long as the longest the timeout chain allows "
          "(queue wait + statement_timeout)")
    s.set("keepalive", str(KEEPALIVE_SECONDS),
          "seconds to hold an idle keep-alive connection from the proxy")
    s.set("max_requests", str(MAX_REQUESTS),
          "recycle workers to bound memory growth")
    s.set("max_requests_jitter", str(MAX_REQUESTS_JITTER),
          "so workers do not all restart at the same moment")
    s.set("backlog", str(BACKLOG), "pending connections; net.core.somaxconn is raised above it")
    return s

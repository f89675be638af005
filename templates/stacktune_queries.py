# Installed by stacktune's django_settings role next to stacktune_settings.py: the app
# imports it without a new dependency (Django, and the redis package its Redis cache
# already needs). Python 3.9+, Django 4.2+.
"""Per-view query counts and repeated query shapes, recorded in production.

``QueryShapeMiddleware`` samples requests (``SAMPLE_RATE``); for a sampled request it
counts every query the request runs through Django's ``connection.execute_wrapper``
(no DEBUG needed), groups them by normalized SQL (literals and placeholders become
``?``, ``IN (...)`` lists collapse), and adds the request to its view's totals in
Redis in one pipelined round trip of atomic increments, so that every Gunicorn
worker can write to the same keys. Requests that are not sampled cost one
``random()`` call. A Redis error never reaches the request: it is counted and the
sample is dropped.

Settings (rendered into stacktune_settings.py by the role)::

    STACKTUNE_QUERY_RECORDER = {
        "SAMPLE_RATE": 0.05,       # share of requests recorded, 0 < rate <= 1
        "REDIS_URL": "redis://user:password@host:6379/0",  # no URL: kept in this process
        "KEY_PREFIX": "stacktune:queries",  # inside the app's Redis ACL key pattern
    }

Keys, all under KEY_PREFIX (P), read back by ``stacktune.report.nplusone.read_records``::

    P:views                 SET   the view names recorded
    P:view:<view>           HASH  requests, queries, shape:<id>:count, shape:<id>:requests
    P:max                   ZSET  <view> -> most queries in one request (ZADD GT)
    P:shape_max:<view>      ZSET  <id> -> most runs of that shape in one request
    P:sql                   HASH  <id> -> the normalized SQL
    P:errors                STR   samples lost to Redis errors (added by the next flush)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import threading
import time
from collections import Counter

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import connections

DEFAULT_KEY_PREFIX = "stacktune:queries"
# A shape is kept for a request when it runs at least this often in it: one run is an
# ordinary query; only repeats can be N+1.
REPEATED_AT_LEAST = 2
# Short Redis timeouts: a slow cache must not slow the sampled request much.
SOCKET_TIMEOUT_SECONDS = 0.25
ERROR_LOG_INTERVAL_SECONDS = 60.0

logger = logging.getLogger("stacktune.queries")

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\"$])-?\d+(?:\.\d+)?\b")
_PLACEHOLDER = re.compile(r"%s|%\([^)]*\)s|\$\d+")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalize_sql(sql: str) -> str:
    """The query's shape: string and number literals and placeholders as ``?``,
    ``IN (?, ?, ...)`` as ``IN (...)``, whitespace collapsed."""
    shape = _STRING.sub("?", sql)
    shape = _PLACEHOLDER.sub("?", shape)
    shape = _NUMBER.sub("?", shape)
    shape = _IN_LIST.sub("IN (...)", shape)
    return _SPACE.sub(" ", shape).strip()


def shape_id(shape: str) -> str:
    """A short stable id for a shape (the hash field names stay small)."""
    return hashlib.sha1(shape.encode("utf-8")).hexdigest()[:16]


class QueryCounter:
    """An execute wrapper: counts the request's queries by their SQL text."""

    def __init__(self) -> None:
        self.total = 0
        self.by_sql: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.total += 1
        self.by_sql[sql] += 1  # the raw text: only distinct texts are normalized, later
        return execute(sql, params, many, context)

    def repeated_shapes(self) -> dict[str, int]:
        """Normalized shape -> runs in this request, for shapes run REPEATED_AT_LEAST times."""
        shapes: Counter = Counter()
        for sql, count in self.by_sql.items():
            shapes[normalize_sql(sql)] += count
        return {shape: n for shape, n in shapes.items() if n >= REPEATED_AT_LEAST}


class MemoryStore:
    """Totals kept in this process: development and tests, when no REDIS_URL is set."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.views: dict[str, dict] = {}
        self.errors = 0

    def add(self, view: str, total: int, shapes: dict[str, int]) -> None:
        with self.lock:
            row = self.views.setdefault(
                view, {"view": view, "requests": 0, "queries": 0, "max_queries": 0, "shapes": {}}
            )
            row["requests"] += 1
            row["queries"] += total
            row["max_queries"] = max(row["max_queries"], total)
            for shape, count in shapes.items():
                seen = row["shapes"].setdefault(
                    shape, {"sql": shape, "count": 0, "requests": 0, "max_per_request": 0}
                )
                seen["count"] += count
                seen["requests"] += 1
                seen["max_per_request"] = max(seen["max_per_request"], count)

    def records(self) -> list[dict]:
        with self.lock:
            return [
                {**row, "shapes": sorted(row["shapes"].values(), key=lambda s: -s["count"])}
                for _, row in sorted(self.views.items())
            ]


class RedisStore:
    """Totals in Redis, shared by every worker: atomic increments in one pipeline."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = None  # made on first use: after Gunicorn forks the worker
        self.lock = threading.Lock()
        self.errors = 0  # samples lost since the last successful flush
        self.errors_total = 0
        self.last_error_log = 0.0
        self.known_shapes: set[str] = set()

    def _client(self):
        if self.client is None:
            import redis  # the Redis cache backends need it already

            self.client = redis.Redis.from_url(
                self.url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            )
        return self.client

    def add(self, view: str, total: int, shapes: dict[str, int]) -> None:
        p = self.prefix
        view_key = f"{p}:view:{view}"
        with self.lock:
            lost, self.errors = self.errors, 0
        try:
            pipe = self._client().pipeline(transaction=False)
            # First: whether the SQL texts are still there. A restarted Redis (the cache keeps
            # nothing) lost them, and this process would never send its known shapes again.
            pipe.exists(f"{p}:sql")
            pipe.sadd(f"{p}:views", view)
            pipe.hincrby(view_key, "requests", 1)
            pipe.hincrby(view_key, "queries", total)
            pipe.zadd(f"{p}:max", {view: total}, gt=True)
            for shape, count in shapes.items():
                sid = shape_id(shape)
                pipe.hincrby(view_key, f"shape:{sid}:count", count)
                pipe.hincrby(view_key, f"shape:{sid}:requests", 1)
                pipe.zadd(f"{p}:shape_max:{view}", {sid: count}, gt=True)
                if sid not in self.known_shapes:
                    pipe.hsetnx(f"{p}:sql", sid, shape)
            if lost:
                pipe.incrby(f"{p}:errors", lost)
            texts_kept = pipe.execute()[0]
            if texts_kept:
                self.known_shapes.update(shape_id(shape) for shape in shapes)
            else:  # the next sample sends them again
                self.known_shapes.clear()
        except Exception as error:  # never break the request: count the lost sample
            self.known_shapes.clear()  # Redis may come back empty
            with self.lock:
                self.errors += 1 + lost
                self.errors_total += 1
                now = time.monotonic()
                log = now - self.last_error_log >= ERROR_LOG_INTERVAL_SECONDS
                if log:
                    self.last_error_log = now
            if log:
                logger.warning("query recorder: Redis write failed (%s samples lost so far): %s",
                               self.errors_total, error)


_STORES: dict[tuple, object] = {}
_STORES_LOCK = threading.Lock()


def store_for(conf: dict):
    """One store per configuration and process, shared by the middleware instances."""
    url = conf.get("REDIS_URL") or ""
    prefix = conf.get("KEY_PREFIX") or DEFAULT_KEY_PREFIX
    with _STORES_LOCK:
        if (url, prefix) not in _STORES:
            _STORES[(url, prefix)] = RedisStore(url, prefix) if url else MemoryStore()
        return _STORES[(url, prefix)]


def view_name(request) -> str:
    """The resolver match's view name (URL name, or the view's dotted path)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unresolved>"
    return match.view_name or match._func_path


class QueryShapeMiddleware:
    """Records a sample of requests' query counts and repeated shapes per view."""

    def __init__(self, get_response):
        self.get_response = get_response
        conf = getattr(settings, "STACKTUNE_QUERY_RECORDER", None) or {}
        self.sample_rate = float(conf.get("SAMPLE_RATE", 0.0))
        if self.sample_rate <= 0.0:
            raise MiddlewareNotUsed("STACKTUNE_QUERY_RECORDER SAMPLE_RATE is 0")
        self.store = store_for(conf)

    def __call__(self, request):
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return self.get_response(request)
        counter = QueryCounter()
        with contextlib.ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(counter))
            response = self.get_response(request)
        try:
            self.store.add(view_name(request), counter.total, counter.repeated_shapes())
        except Exception:  # a bug here must not cost the response either
            logger.exception("query recorder: could not record the request")
        return response

"""Settings of the stacktune demo site: production-shaped.

The deploy renders ``demo_site/stacktune_settings.py`` next to this file (from
templates/stacktune_settings.py.j2: DATABASES through PgBouncer, CACHES on
Redis, SESSION_ENGINE, SECRET_KEY, ...). When it exists it is imported last and
wins. Without it (local development, the tests) the same names come from the
environment:

    DJANGO_SECRET_KEY      the secret key (a dev-only key otherwise, which
                           ``check --deploy`` rightly reports)
    DJANGO_ALLOWED_HOSTS   comma-separated (default "localhost,127.0.0.1")
    DATABASE_URL           postgres://user:password@host:port/name or
                           sqlite:////abs/path.sqlite3 (default: SQLite in the
                           temporary directory)
    REDIS_URL              redis://[user:password@]host:port/db (default: the
                           local-memory cache)
    DJANGO_HSTS_SECONDS    Strict-Transport-Security max-age (default 3600)
    DJANGO_LOG_LEVEL       level of the "django" logger (default INFO)
    DJANGO_DEMO_NAIVE      "1" serves the naive-mode pages under /naive/ (N+1,
                           unindexed filter, deep OFFSET); the deploy sets
                           DEMO_NAIVE in stacktune_settings.py instead

Kept compatible with Django 4.2 LTS and 5.2 LTS, and with Python 3.9 (Debian 11).
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = False

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if host.strip()
]

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")

INSTALLED_APPS = [
    # Sessions: the deploy uses the cached_db engine, which keeps its rows here.
    "django.contrib.sessions",
    # collectstatic: the deploy writes STATIC_ROOT into stacktune_settings.py and nginx
    # serves the files; Gunicorn never does.
    "django.contrib.staticfiles",
    "publishing",
]
STATIC_URL = "/static/"

MIDDLEWARE = [
    # First: answers GET /healthz with each dependency's state before anything
    # else runs (no ALLOWED_HOSTS check, no HTTPS redirect), for probes that use the IP.
    "publishing.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- HTTPS: TLS is terminated by the proxy in front of Gunicorn -------------------
# No SECURE_PROXY_SSL_HEADER: Django would take X-Forwarded-Proto from any client.
# Gunicorn sets the scheme (wsgi.url_scheme, hence request.is_secure()) from that
# header only when the peer is in its forwarded_allow_ips, the trusted proxies.
SECURE_SSL_REDIRECT = True
# Health checks come over plain HTTP straight to Gunicorn (the middleware above
# answers them first; this keeps /healthz out of the redirect if it is removed).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# One hour: long enough to count, short enough to back out of a TLS mistake.
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "3600"))
# The header is sent by the site's own host, so this covers only names below it.
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = [
    # security.W021 (SECURE_HSTS_PRELOAD is False): preloading puts the domain
    # into browsers' built-in HSTS lists, is hard to undo, needs a max-age of a
    # year and covers the whole registered domain; only its owner can decide.
    "security.W021",
]

def _one_line_warning(record):
    """A bad Host header is the client's mistake (or a scanner's): one line, no traceback."""
    record.exc_info = record.exc_text = record.stack_info = None
    record.levelno, record.levelname = 30, "WARNING"  # logging.WARNING
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "one_line_warning": {"()": "django.utils.log.CallbackFilter", "callback": _one_line_warning}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console_one_line": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["one_line_warning"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django": {
            "handlers": ["console"],
            "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
        "django.security.DisallowedHost": {
            "handlers": ["console_one_line"],
            "level": "WARNING",
            "propagate": False,
        },
    },
}


def _database_from_env():
    """DATABASES["default"] from DATABASE_URL (SQLite in the temp dir without it)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(Path(tempfile.gettempdir()) / "stacktune-demo.sqlite3"),
        }
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.sqlite3 -> /abs/path.sqlite3; sqlite:///rel.sqlite3 -> rel.sqlite3
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path[1:])}
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": int(os.environ.get("DJANGO_CONN_MAX_AGE", "0")),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parts.scheme!r}")


def _cache_from_env():
    """CACHES["default"]: Redis when REDIS_URL is set, the local-memory cache otherwise."""
    redis_url = os.environ.get("REDIS_URL", "")
    if redis_url:
        # As the deploy: a Redis outage reads as cache misses (django-redis IGNORE_EXCEPTIONS).
        backend = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.25,
                        "SOCKET_TIMEOUT": 0.5},
        }
    else:
        backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    # The same prefix as the deploy's, so keys look alike: stacktune:1:popular-categories.
    return {**backend, "KEY_PREFIX": "stacktune", "TIMEOUT": 300}


# Naive mode: pages with the query problems of real apps, for the diagnostics report.
DEMO_NAIVE = os.environ.get("DJANGO_DEMO_NAIVE", "") == "1"

_STACKTUNE_SETTINGS = Path(__file__).with_name("stacktune_settings.py")

if _STACKTUNE_SETTINGS.is_file():
    # Rendered by the deploy; readable by the application user only.
    from .stacktune_settings import *  # noqa: F403
else:
    DATABASES = {"default": _database_from_env()}
    CACHES = {"default": _cache_from_env()}
    # A dev-only key: the "django-insecure-" prefix makes check --deploy flag it.
    SECRET_KEY = SECRET_KEY or "django-insecure-stacktune-demo-development-key-not-for-production"

# The deploy's query recorder (django_settings_query_recorder), when it is on. Last:
# it counts the queries of the view and of every middleware before it.
MIDDLEWARE = [*MIDDLEWARE, *globals().get("STACKTUNE_MIDDLEWARE", [])]

if not SECRET_KEY:
    raise ImproperlyConfigured(
        f"SECRET_KEY is empty: set it in {_STACKTUNE_SETTINGS.name} or in DJANGO_SECRET_KEY"
    )

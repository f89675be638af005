"""Settings of the application's PostgreSQL role, applied with ALTER ROLE <app> SET.

They bound what one Django request can do to the database. With Gunicorn's
gthread worker, Gunicorn's ``timeout`` only notices a stuck *worker*, not a slow
request in one of its threads, so these limits (and PgBouncer's
query_wait_timeout) are what really bound a request. They apply to the app role
only: administrators, migrations run as another role and autovacuum keep
PostgreSQL's defaults. Values are PostgreSQL time values in seconds, so the
role's pg_db_role_setting reads the same as the plan (PostgreSQL docs,
runtime-config-client).
"""

from __future__ import annotations

from stacktune.section import Section

SECTION = "postgresql_app_role"

# Settings an override may give the app role: per-session limits a role can carry.
APP_ROLE_SETTINGS = (
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
)

STATEMENT_TIMEOUT_SECONDS = 15
LOCK_TIMEOUT_SECONDS = 5
IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = 60


def plan_postgresql_app_role() -> Section:
    s = Section(SECTION)
    s.set("statement_timeout", f"{STATEMENT_TIMEOUT_SECONDS}s",
          "the database ends a runaway query of the app; with the gthread worker Gunicorn's "
          "timeout does not stop a slow request, so this is what bounds one")
    s.set("lock_timeout", f"{LOCK_TIMEOUT_SECONDS}s",
          "a request blocked behind a lock (a migration, a long transaction) fails in 5 s "
          "instead of piling up every thread behind it")
    s.set("idle_in_transaction_session_timeout",
          f"{IDLE_IN_TRANSACTION_TIMEOUT_SECONDS}s",
          "an abandoned transaction would hold a pooled server connection and its locks "
          "and block vacuum")
    return s

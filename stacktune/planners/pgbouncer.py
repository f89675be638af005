"""PgBouncer settings: transaction pooling sized by the connection chain (PgBouncer docs)."""

from __future__ import annotations

from stacktune.chain import (
    PGBOUNCER_ADMIN_CLIENTS,
    PGBOUNCER_MIN_CLIENT_CONN,
    RELOAD_OVERLAP_FACTOR,
    ConnectionChain,
)
from stacktune.section import Section

LISTEN_PORT = 6432
# The timeout chain (stacktune.timeout_chain checks the order): a request waits at most
# QUERY_WAIT_TIMEOUT for a server connection, then runs for at most the app role's
# statement_timeout, and both together stay below Gunicorn's timeout.
QUERY_WAIT_TIMEOUT_SECONDS = 10
# PgBouncer's default 15 s turns a 2 s PostgreSQL restart into 15 s of refused logins.
SERVER_LOGIN_RETRY_SECONDS = 1
SERVER_CONNECT_TIMEOUT_SECONDS = 5
# An unauthenticated socket holds a client slot until it logs in or this expires
# (PgBouncer's default is 60 s).
CLIENT_LOGIN_TIMEOUT_SECONDS = 10


def plan_pgbouncer(chain: ConnectionChain) -> Section:
    s = Section("pgbouncer")
    s.set("pool_mode", "transaction",
          "a server connection per transaction: many Django threads share few backends")
    s.set("listen_port", str(LISTEN_PORT), "PgBouncer's conventional port")
    s.set("auth_type", "hba",
          "rules in auth_hba_file, every one scram-sha-256: only the app tier may connect, "
          "only with SCRAM (no md5, no plain text)")
    needed = chain.app_clients * RELOAD_OVERLAP_FACTOR + PGBOUNCER_ADMIN_CLIENTS
    if chain.max_client_conn > needed:
        floor = (f"; raised to {PGBOUNCER_MIN_CLIENT_CONN} (PgBouncer's default) because a "
                 "slot costs a few kB")
    else:
        floor = ""
    s.set("max_client_conn", str(chain.max_client_conn),
          f"{chain.app_clients} app connections ({chain.client_source}) x "
          f"{RELOAD_OVERLAP_FACTOR} for graceful reloads (old and new workers both connected) "
          f"+ {PGBOUNCER_ADMIN_CLIENTS} for admin/stats consoles, monitoring and health checks"
          f"{floor}; a socket that never logs in frees its slot after client_login_timeout"),
    s.set("default_pool_size", str(chain.default_pool_size),
          "(database CPUs x 2) + effective spindles (PostgreSQL wiki), at most the app's "
          "connections")
    s.set("min_pool_size", str(chain.min_pool_size),
          "a quarter of the pool kept open, so a quiet site's first requests do not wait "
          "for new backends")
    s.set("reserve_pool_size", str(chain.reserve_pool_size),
          "extra server connections for bursts, a quarter of the pool")
    s.set("reserve_pool_timeout", "3",
          "seconds a client waits before the reserve pool opens")
    s.set("max_db_connections", str(chain.max_db_connections),
          "default_pool_size + reserve_pool_size: PgBouncer never opens more backends than "
          "PostgreSQL's max_connections leaves")
    s.set("server_idle_timeout", "600", "close server connections idle for 10 minutes")
    s.set("server_lifetime", "3600",
          "recycle server connections hourly, so backend memory bloat does not persist")
    s.set("query_wait_timeout", str(QUERY_WAIT_TIMEOUT_SECONDS),
          f"a request waits at most {QUERY_WAIT_TIMEOUT_SECONDS} s for a server connection; "
          "with the app role's statement_timeout it stays below Gunicorn's timeout")
    s.set("server_login_retry", str(SERVER_LOGIN_RETRY_SECONDS),
          "retry a failed server login after 1 s, not PgBouncer's 15 s: a 2 s PostgreSQL "
          "restart costs about 2 s of waiting, not 15 s of errors")
    s.set("server_connect_timeout", str(SERVER_CONNECT_TIMEOUT_SECONDS),
          f"give up on an unreachable server after {SERVER_CONNECT_TIMEOUT_SECONDS} s (default "
          "15 s), well inside query_wait_timeout, so a retry can still serve the client")
    s.set("client_login_timeout", str(CLIENT_LOGIN_TIMEOUT_SECONDS),
          f"a client that has not logged in after {CLIENT_LOGIN_TIMEOUT_SECONDS} s is "
          "dropped (default 60 s): idle unauthenticated sockets cannot hold the client "
          "slots for long")
    s.set("ignore_startup_parameters", "extra_float_digits",
          "a parameter JDBC and other drivers send at startup; PgBouncer would refuse "
          "the connection otherwise")
    return s

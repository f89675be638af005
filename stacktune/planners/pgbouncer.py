"""PgBouncer settings: transaction pooling sized by the connection chain (PgBouncer docs)."""

from __future__ import annotations

from stacktune.chain import RELOAD_OVERLAP_FACTOR, ConnectionChain
from stacktune.section import Section

LISTEN_PORT = 6432


def plan_pgbouncer(chain: ConnectionChain) -> Section:
    s = Section("pgbouncer")
    s.set("pool_mode", "transaction",
          "a server connection per transaction: many Django threads share few backends")
    s.set("listen_port", str(LISTEN_PORT), "PgBouncer's conventional port")
    s.set("auth_type", "hba",
          "rules in auth_hba_file, every one scram-sha-256: only the app tier may connect, "
          "only with SCRAM (no md5, no plain text)")
    admin = chain.max_client_conn - chain.app_clients * RELOAD_OVERLAP_FACTOR
    s.set("max_client_conn", str(chain.max_client_conn),
          f"{chain.app_clients} app connections ({chain.client_source}) x "
          f"{RELOAD_OVERLAP_FACTOR} for graceful reloads + {admin} for administration")
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
    s.set("query_wait_timeout", "30",
          "fail a request after 30 s in the queue rather than let it hang past Gunicorn's "
          "timeout")
    s.set("ignore_startup_parameters", "extra_float_digits",
          "a parameter JDBC and other drivers send at startup; PgBouncer would refuse "
          "the connection otherwise")
    return s

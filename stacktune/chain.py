"""The connection chain: app workers -> PgBouncer -> PostgreSQL backends.

Gunicorn workers x threads x app hosts is how many Django connections can be
open at once. With PgBouncer in transaction mode those clients share a small
pool of server connections sized for the database host's CPUs and storage;
PostgreSQL's max_connections then only has to cover the pools plus reserved
and administrative slots, and work_mem can be sized for that real backend
count instead of for hundreds of connections a pooler never opens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacktune.model import PlanError, Storage, Workload

# When the app tier is not part of the plan and the expected connection count
# is not given, assume PGTune's per-workload figures.
DEFAULT_CLIENTS = {Workload.WEB: 200, Workload.OLTP: 300, Workload.DW: 40, Workload.MIXED: 100}

# PostgreSQL wiki, "Number Of Database Connections": active connections
# ~ (core_count * 2) + effective_spindle_count. SSD/NVMe/SAN serve many
# concurrent I/Os, which the spindle term stands for.
EFFECTIVE_SPINDLES = {Storage.HDD: 1, Storage.SSD: 2, Storage.NVME: 4, Storage.SAN: 4}
MIN_POOL_SIZE = 2

# A graceful Gunicorn reload (HUP) starts new workers before old ones exit,
# so for a moment the app tier holds twice its connections.
RELOAD_OVERLAP_FACTOR = 2
# psql sessions, admin/stats consoles, monitoring agents, health checks, migrations and
# backups through PgBouncer.
PGBOUNCER_ADMIN_CLIENTS = 10
# Never fewer client slots than PgBouncer's own default: a slot costs a few kB, and
# unauthenticated sockets hold one each until client_login_timeout.
PGBOUNCER_MIN_CLIENT_CONN = 100
# Direct (not pooled) connections for administration, monitoring and
# replication, on top of the pools.
ADMIN_CONNECTIONS = 10
SUPERUSER_RESERVED_CONNECTIONS = 3


@dataclass(frozen=True)
class ConnectionChain:
    """How many connections each tier opens; the numbers the planners share."""

    app_clients: int               # concurrent Django connections (workers x threads x hosts)
    client_source: str             # where app_clients came from, for the reasons
    pooled: bool                   # PgBouncer between the app and PostgreSQL
    max_client_conn: int = 0       # PgBouncer: clients it accepts
    default_pool_size: int = 0     # PgBouncer: server connections per database/user pair
    reserve_pool_size: int = 0
    min_pool_size: int = 0
    max_db_connections: int = 0    # PgBouncer: server connections per database, all pools
    superuser_reserved_connections: int = SUPERUSER_RESERVED_CONNECTIONS
    admin_connections: int = ADMIN_CONNECTIONS
    max_connections: int = 0       # PostgreSQL
    reload_overlap: int = 1        # direct path: app connections counted this many times

    @property
    def active_backends(self) -> int:
        """Backends that run queries at once: the pools when pooled, else every app client."""
        return self.max_db_connections if self.pooled else self.app_clients

    def to_dict(self) -> dict[str, object]:
        return {
            "app_clients": self.app_clients,
            "client_source": self.client_source,
            "pooled": self.pooled,
            "max_client_conn": self.max_client_conn,
            "default_pool_size": self.default_pool_size,
            "reserve_pool_size": self.reserve_pool_size,
            "min_pool_size": self.min_pool_size,
            "max_db_connections": self.max_db_connections,
            "superuser_reserved_connections": self.superuser_reserved_connections,
            "admin_connections": self.admin_connections,
            "max_connections": self.max_connections,
            "active_backends": self.active_backends,
        }


def app_clients(workers: int, threads: int, app_hosts: int) -> int:
    """Every Gunicorn thread holds at most one Django connection (CONN_MAX_AGE keeps it)."""
    return workers * threads * app_hosts


def pool_size_for(db_cpus: float, storage: Storage) -> int:
    """Server connections that keep the database host busy without queueing in it.

    PostgreSQL wiki: (core_count * 2) + effective_spindle_count.
    """
    return max(MIN_POOL_SIZE, math.floor(2 * db_cpus) + EFFECTIVE_SPINDLES[storage])


def connection_chain(
    *,
    clients: int,
    client_source: str,
    pooled: bool,
    db_cpus: float,
    storage: Storage,
    overrides: dict[str, int],
    reload_overlap: bool = True,
    pool_cap: int | None = None,
) -> ConnectionChain:
    """Size every tier of the chain; ``overrides`` holds integer overrides by 'service.setting'."""
    if clients < 1:
        raise PlanError(f"the app tier opens {clients} connections; it needs at least one")
    reserved = overrides.get(
        "postgresql.superuser_reserved_connections", SUPERUSER_RESERVED_CONNECTIONS)
    if not pooled:
        # Graceful Gunicorn reloads: old and new workers hold their connections at once,
        # the same allowance PgBouncer's max_client_conn has on the pooled path (only
        # when an app tier is planned: other clients do not reload that way).
        overlap = RELOAD_OVERLAP_FACTOR if reload_overlap else 1
        max_connections = overrides.get(
            "postgresql.max_connections", clients * overlap + ADMIN_CONNECTIONS + reserved)
        chain = ConnectionChain(
            app_clients=clients, client_source=client_source, pooled=False,
            superuser_reserved_connections=reserved, max_connections=max_connections,
            reload_overlap=overlap,
        )
        _check_direct(chain)
        return chain

    pool = overrides.get("pgbouncer.default_pool_size", min(pool_size_for(db_cpus, storage),
                                                            clients, pool_cap or clients))
    reserve = overrides.get("pgbouncer.reserve_pool_size", max(1, math.ceil(pool / 4)))
    min_pool = overrides.get("pgbouncer.min_pool_size", max(1, pool // 4))
    max_db = overrides.get("pgbouncer.max_db_connections", pool + reserve)
    max_client = overrides.get(
        "pgbouncer.max_client_conn",
        max(clients * RELOAD_OVERLAP_FACTOR + PGBOUNCER_ADMIN_CLIENTS, PGBOUNCER_MIN_CLIENT_CONN))
    max_connections = overrides.get(
        "postgresql.max_connections", max_db + ADMIN_CONNECTIONS + reserved)
    chain = ConnectionChain(
        app_clients=clients, client_source=client_source, pooled=True,
        max_client_conn=max_client, default_pool_size=pool, reserve_pool_size=reserve,
        min_pool_size=min_pool, max_db_connections=max_db,
        superuser_reserved_connections=reserved, max_connections=max_connections,
    )
    _check_pooled(chain)
    return chain


# PostgreSQL's MAX_BACKENDS (0x3FFFF): connections + autovacuum + worker processes +
# WAL senders together; max_connections alone must leave room for the others.
MAX_BACKENDS = 262143
OTHER_BACKENDS_ALLOWANCE = 1200


def _check_max_backends(chain: ConnectionChain) -> None:
    limit = MAX_BACKENDS - OTHER_BACKENDS_ALLOWANCE
    if chain.max_connections > limit:
        raise PlanError(
            f"postgresql.max_connections = {chain.max_connections} ({chain.app_clients} "
            f"connections: {chain.client_source}) is above what PostgreSQL allows "
            f"({MAX_BACKENDS} backends in all, about {limit} after worker and autovacuum "
            "processes); place PgBouncer in front of PostgreSQL or plan for fewer connections")


def _check_direct(chain: ConnectionChain) -> None:
    _check_max_backends(chain)
    usable = chain.max_connections - chain.superuser_reserved_connections
    if chain.app_clients > usable:
        raise PlanError(
            f"postgresql.max_connections = {chain.max_connections} leaves {usable} connections "
            f"after superuser_reserved_connections, but the app tier opens {chain.app_clients} "
            f"({chain.client_source}); raise max_connections to at least "
            f"{chain.app_clients + chain.superuser_reserved_connections} or place PgBouncer "
            "in front of PostgreSQL"
        )


def _check_pooled(chain: ConnectionChain) -> None:
    _check_max_backends(chain)
    usable = chain.max_connections - chain.superuser_reserved_connections
    if chain.min_pool_size > chain.default_pool_size:
        raise PlanError(
            f"pgbouncer.min_pool_size = {chain.min_pool_size} is larger than "
            f"pgbouncer.default_pool_size = {chain.default_pool_size}; lower min_pool_size"
        )
    if chain.default_pool_size + chain.reserve_pool_size > chain.max_db_connections:
        raise PlanError(
            f"pgbouncer.max_db_connections = {chain.max_db_connections} is below "
            f"default_pool_size + reserve_pool_size = "
            f"{chain.default_pool_size + chain.reserve_pool_size}; raise max_db_connections "
            "or lower the pool sizes"
        )
    if chain.max_db_connections > usable:
        raise PlanError(
            f"PgBouncer may open {chain.max_db_connections} server connections "
            f"(pgbouncer.max_db_connections) but postgresql.max_connections = "
            f"{chain.max_connections} leaves only {usable} after "
            f"superuser_reserved_connections = {chain.superuser_reserved_connections}; raise "
            f"postgresql.max_connections to at least "
            f"{chain.max_db_connections + chain.superuser_reserved_connections} or lower the "
            "PgBouncer pool sizes"
        )
    if chain.max_client_conn < chain.app_clients:
        raise PlanError(
            f"pgbouncer.max_client_conn = {chain.max_client_conn} is below the "
            f"{chain.app_clients} connections the app tier opens ({chain.client_source}); "
            f"raise it to at least {chain.app_clients} (stacktune plans "
            f"{chain.app_clients * RELOAD_OVERLAP_FACTOR + PGBOUNCER_ADMIN_CLIENTS} to cover "
            "graceful reloads)"
        )

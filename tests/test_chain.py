"""The connection chain (stacktune.chain): app clients -> PgBouncer -> PostgreSQL."""

from __future__ import annotations

import re

import pytest

from stacktune.chain import (
    ADMIN_CONNECTIONS,
    DEFAULT_CLIENTS,
    MIN_POOL_SIZE,
    PGBOUNCER_ADMIN_CLIENTS,
    RELOAD_OVERLAP_FACTOR,
    SUPERUSER_RESERVED_CONNECTIONS,
    app_clients,
    connection_chain,
    pool_size_for,
)
from stacktune.model import PlanError, Storage, Workload


def chain(clients: int = 10, *, pooled: bool = True, cpus: float = 2,
          storage: Storage = Storage.SSD, **overrides: int):
    return connection_chain(
        clients=clients, client_source="test clients", pooled=pooled, db_cpus=cpus,
        storage=storage, overrides={k.replace("__", "."): v for k, v in overrides.items()})


def test_constants_are_the_documented_ones():
    assert (ADMIN_CONNECTIONS, SUPERUSER_RESERVED_CONNECTIONS) == (10, 3)
    assert (RELOAD_OVERLAP_FACTOR, PGBOUNCER_ADMIN_CLIENTS) == (2, 10)
    assert DEFAULT_CLIENTS == {Workload.WEB: 200, Workload.OLTP: 300, Workload.DW: 40,
                               Workload.MIXED: 100}


def test_app_clients_is_workers_times_threads_times_hosts():
    assert app_clients(5, 2, 1) == 10
    assert app_clients(9, 4, 3) == 108


# --- Pool size: (cores x 2) + effective spindles -------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "storage", "pool"),
    [
        (2, Storage.HDD, 5),
        (2, Storage.SSD, 6),
        (2, Storage.NVME, 8),
        (2, Storage.SAN, 8),
        (1.5, Storage.SSD, 5),      # floor(2 x 1.5) + 2
        (16, Storage.SSD, 34),
        (128, Storage.NVME, 260),
        (0.5, Storage.HDD, 2),
        (0.25, Storage.HDD, MIN_POOL_SIZE),
    ],
)
def test_pool_size_formula(cpus, storage, pool):
    assert pool_size_for(cpus, storage) == pool


# --- Pooled chain ------------------------------------------------------------------------------


def test_pooled_chain_for_a_small_web_host():
    c = chain(10, cpus=2, storage=Storage.SSD)
    assert c.pooled
    assert c.default_pool_size == 6
    assert c.reserve_pool_size == 2          # ceil(6 / 4)
    assert c.min_pool_size == 1              # 6 // 4
    assert c.max_db_connections == 8         # pool + reserve
    assert c.max_client_conn == 100          # 10 x 2 + 10, raised to PgBouncer's default 100
    assert c.max_connections == 21           # 8 + 10 admin + 3 reserved
    assert c.active_backends == 8


def test_pool_never_above_the_apps_connections():
    c = chain(3, cpus=8, storage=Storage.NVME)   # formula says 20
    assert c.default_pool_size == 3
    assert c.max_db_connections == 3 + 1
    assert c.min_pool_size == 1


def test_max_client_conn_covers_clients_twice_plus_admin():
    for clients in (1, 10, 200, 2056):
        c = chain(clients, cpus=4)
        assert c.max_client_conn == max(clients * 2 + 10, 100)
        assert c.max_client_conn >= clients


def test_max_connections_is_pools_plus_admin_plus_reserved():
    c = chain(1000, cpus=16, storage=Storage.NVME)
    assert c.default_pool_size == 36
    assert c.reserve_pool_size == 9
    assert c.min_pool_size == 9
    assert c.max_db_connections == 45
    assert c.max_connections == 45 + ADMIN_CONNECTIONS + SUPERUSER_RESERVED_CONNECTIONS
    assert c.max_db_connections <= c.max_connections - c.superuser_reserved_connections


def test_pool_overrides_flow_down_the_chain():
    c = chain(100, pgbouncer__default_pool_size=20)
    assert (c.default_pool_size, c.reserve_pool_size, c.min_pool_size) == (20, 5, 5)
    assert c.max_db_connections == 25
    assert c.max_connections == 25 + 10 + 3


def test_superuser_reserved_override_raises_max_connections():
    c = chain(10, postgresql__superuser_reserved_connections=5)
    assert c.superuser_reserved_connections == 5
    assert c.max_connections == 8 + 10 + 5


def test_max_connections_override_above_the_pools_is_kept():
    c = chain(10, postgresql__max_connections=100)
    assert c.max_connections == 100


# --- Direct (unpooled) chain --------------------------------------------------------------------


def test_unpooled_max_connections_covers_every_app_client():
    c = chain(200, pooled=False)
    assert not c.pooled
    assert c.max_connections == 200 + 10 + 3
    assert c.active_backends == 200
    assert (c.max_client_conn, c.default_pool_size, c.max_db_connections) == (0, 0, 0)


def test_to_dict_is_the_whole_chain():
    data = chain(10).to_dict()
    assert data["max_connections"] == 21
    assert data["active_backends"] == 8
    assert data["client_source"] == "test clients"
    assert set(data) == {
        "app_clients", "client_source", "pooled", "max_client_conn", "default_pool_size",
        "reserve_pool_size", "min_pool_size", "max_db_connections",
        "superuser_reserved_connections", "admin_connections", "max_connections",
        "active_backends"}


# --- Invariants: each error names the setting --------------------------------------------------


def test_no_clients_is_an_error():
    with pytest.raises(PlanError, match="opens 0 connections; it needs at least one"):
        chain(0)


def test_pool_over_max_connections():
    with pytest.raises(PlanError) as caught:
        chain(10, postgresql__max_connections=5)
    message = str(caught.value)
    assert "pgbouncer.max_db_connections" in message
    assert "postgresql.max_connections = 5 leaves only 2" in message
    assert "at least 11" in message           # 8 server connections + 3 reserved


def test_max_db_connections_override_over_max_connections():
    with pytest.raises(PlanError, match="PgBouncer may open 50 server connections"):
        chain(100, pgbouncer__max_db_connections=50, postgresql__max_connections=40)


def test_min_pool_larger_than_pool():
    with pytest.raises(PlanError, match=re.escape(
            "pgbouncer.min_pool_size = 10 is larger than pgbouncer.default_pool_size = 6")):
        chain(10, pgbouncer__min_pool_size=10)


def test_max_db_connections_below_pool_plus_reserve():
    with pytest.raises(PlanError, match=re.escape(
            "pgbouncer.max_db_connections = 5 is below default_pool_size + reserve_pool_size = 8")):
        chain(10, pgbouncer__max_db_connections=5)


def test_max_client_conn_below_the_clients():
    with pytest.raises(PlanError) as caught:
        chain(10, pgbouncer__max_client_conn=5)
    message = str(caught.value)
    assert "pgbouncer.max_client_conn = 5 is below the 10 connections" in message
    assert "(test clients)" in message
    assert "stacktune plans 30" in message


def test_unpooled_max_connections_below_the_clients():
    with pytest.raises(PlanError) as caught:
        chain(50, pooled=False, postgresql__max_connections=50)
    message = str(caught.value)
    assert "postgresql.max_connections = 50 leaves 47" in message
    assert "app tier opens 50" in message
    assert "at least 53" in message
    assert "PgBouncer" in message


def test_unpooled_max_connections_exactly_enough_is_accepted():
    c = chain(50, pooled=False, postgresql__max_connections=53)
    assert c.max_connections == 53

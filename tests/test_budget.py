"""Per-host memory budget (stacktune.budget): OS reserve, service shares, errors."""

from __future__ import annotations

import re

import pytest

from stacktune.budget import (
    GUNICORN_DEDICATED_FRACTION,
    GUNICORN_SHARED_FRACTION,
    OS_RESERVE_CAP_BYTES,
    OS_RESERVE_FLOOR_BYTES,
    PGBOUNCER_BUDGET_BYTES,
    POSTGRESQL_MIN_BUDGET_BYTES,
    REDIS_MAXMEMORY_OF_BUDGET,
    REDIS_MIN_MAXMEMORY_BYTES,
    REDIS_SHARED_FRACTION,
    gunicorn_workers_for_cpus,
    host_budget,
    os_reserve_bytes,
)
from stacktune.model import Host, HostProfile, PlanError
from stacktune.units import GiB, MiB

RSS = 160 * MiB


def host(memory: int, cpus: float = 2, *services: str, name: str = "h") -> Host:
    return Host(name, HostProfile(memory_bytes=memory, cpus=cpus), frozenset(services))


# --- OS reserve ------------------------------------------------------------------------------


def test_os_reserve_is_ten_percent():
    assert os_reserve_bytes(4 * GiB) == int(0.1 * 4 * GiB)
    assert os_reserve_bytes(8 * GiB) == int(0.8 * GiB)


@pytest.mark.parametrize("memory", [256 * MiB, 512 * MiB, 1 * GiB, 1280 * MiB])
def test_os_reserve_floor(memory):
    assert 128 * MiB == OS_RESERVE_FLOOR_BYTES
    assert os_reserve_bytes(memory) == 128 * MiB


@pytest.mark.parametrize("memory", [20 * GiB, 32 * GiB, 256 * GiB, 1024 * GiB])
def test_os_reserve_cap(memory):
    assert 2 * GiB == OS_RESERVE_CAP_BYTES
    assert os_reserve_bytes(memory) == 2 * GiB


# --- Shares ----------------------------------------------------------------------------------


def test_dedicated_postgresql_gets_everything_but_the_os():
    budget = host_budget(host(4 * GiB, 2, "postgresql"), RSS)
    reserve = int(0.1 * 4 * GiB)
    assert budget.os_reserve_bytes == reserve
    assert budget.postgresql_bytes == 4 * GiB - reserve
    assert (budget.pgbouncer_bytes, budget.redis_bytes, budget.gunicorn_bytes) == (0, 0, 0)
    assert budget.total_bytes == 4 * GiB


def test_pgbouncer_takes_a_fixed_small_share():
    budget = host_budget(host(4 * GiB, 2, "postgresql", "pgbouncer"), RSS)
    assert budget.pgbouncer_bytes == PGBOUNCER_BUDGET_BYTES == 32 * MiB
    assert budget.postgresql_bytes == 4 * GiB - budget.os_reserve_bytes - 32 * MiB


def test_dedicated_redis_gets_everything_but_the_os():
    budget = host_budget(host(8 * GiB, 2, "redis"), RSS)
    available = 8 * GiB - budget.os_reserve_bytes
    assert budget.redis_bytes == available
    assert budget.redis_maxmemory_bytes == int(available * 0.8) // MiB * MiB
    assert budget.redis_maxmemory_bytes % MiB == 0
    assert budget.postgresql_bytes == 0


def test_shared_redis_gets_fifteen_percent_and_maxmemory_eighty_percent_of_it():
    budget = host_budget(host(8 * GiB, 2, "postgresql", "redis"), RSS)
    available = 8 * GiB - budget.os_reserve_bytes
    assert REDIS_SHARED_FRACTION == 0.15
    assert budget.redis_bytes == int(available * 0.15)
    assert budget.redis_maxmemory_bytes == int(budget.redis_bytes * 0.8) // MiB * MiB
    assert budget.postgresql_bytes == available - budget.redis_bytes


def test_dedicated_gunicorn_workers_follow_cpus():
    budget = host_budget(host(4 * GiB, 2, "gunicorn"), RSS)
    assert budget.gunicorn_workers == 5            # 2 x 2 + 1
    assert budget.gunicorn_bytes == 5 * RSS


def test_dedicated_gunicorn_workers_limited_by_ninety_percent_of_memory():
    # 1 GiB: 896 MiB after the 128 MiB floor; 90% = 806 MiB = 5 workers of 160 MiB, not 17.
    budget = host_budget(host(1 * GiB, 8, "gunicorn"), RSS)
    assert GUNICORN_DEDICATED_FRACTION == 0.9
    assert budget.gunicorn_workers == 5


def test_shared_gunicorn_limited_by_thirty_percent_of_memory():
    # 2 GiB with PostgreSQL: (2048 - 204.8) MiB x 0.3 = 553 MiB = 3 workers, not 9.
    budget = host_budget(host(2 * GiB, 4, "postgresql", "gunicorn"), RSS)
    assert GUNICORN_SHARED_FRACTION == 0.3
    assert budget.gunicorn_workers == 3
    assert budget.postgresql_bytes == 2 * GiB - budget.os_reserve_bytes - 3 * RSS


def test_gunicorn_next_to_redis_only_is_also_shared():
    budget = host_budget(host(2 * GiB, 4, "redis", "gunicorn"), RSS)
    assert budget.gunicorn_workers == 3


@pytest.mark.parametrize(("cpus", "workers"), [(0.5, 2), (1, 3), (1.5, 4), (2, 5), (16, 33)])
def test_gunicorn_workers_for_cpus(cpus, workers):
    assert gunicorn_workers_for_cpus(cpus) == workers


def test_postgresql_gets_the_rest_when_all_four_share_a_host():
    budget = host_budget(host(4 * GiB, 2, "postgresql", "pgbouncer", "redis", "gunicorn"), RSS)
    available = 4 * GiB - budget.os_reserve_bytes
    assert budget.gunicorn_workers == 5
    assert budget.redis_bytes == int(available * 0.15)
    assert budget.postgresql_bytes == (available - 32 * MiB - 5 * RSS - budget.redis_bytes)
    assert budget.total_bytes == 4 * GiB
    assert budget.to_dict()["total_bytes"] == budget.total_bytes
    assert set(budget.to_dict()) == {
        "usable_bytes", "os_reserve_bytes", "postgresql_bytes", "pgbouncer_bytes",
        "redis_bytes", "redis_maxmemory_bytes", "gunicorn_bytes", "gunicorn_workers",
        "total_bytes"}


def test_a_smaller_worker_estimate_gives_more_workers_on_a_shared_host():
    small = host_budget(host(2 * GiB, 4, "postgresql", "gunicorn"), 64 * MiB)
    assert small.gunicorn_workers == 8       # 553 MiB // 64 MiB
    assert small.gunicorn_bytes == 8 * 64 * MiB


# --- Errors that name the input ---------------------------------------------------------------


def test_postgresql_below_its_minimum_names_memory_and_services():
    # 400 MiB - 128 MiB OS - 32 MiB PgBouncer = 240 MiB < 256 MiB.
    with pytest.raises(PlanError) as caught:
        host_budget(host(400 * MiB, 1, "postgresql", "pgbouncer", name="db1"), RSS)
    message = str(caught.value)
    assert 256 * MiB == POSTGRESQL_MIN_BUDGET_BYTES
    assert "host 'db1'" in message
    assert "leaves PostgreSQL 240 MiB" in message
    assert "at least 256 MiB" in message
    assert "--memory" in message and "--services" in message


def test_gunicorn_that_cannot_fit_one_worker_names_the_inputs():
    # 640 MiB next to PostgreSQL: (640 - 128) x 0.3 = 154 MiB < one 160 MiB worker.
    with pytest.raises(PlanError) as caught:
        host_budget(host(640 * MiB, 2, "postgresql", "gunicorn", name="app1"), RSS)
    message = str(caught.value)
    assert "host 'app1'" in message
    assert "less than one worker of 160 MiB" in message
    assert "--memory" in message and "--services" in message and "--worker-rss" in message


def test_redis_below_its_minimum_maxmemory():
    # 160 MiB alone: 32 MiB after the OS, maxmemory 80% = 25 MiB < 32 MiB.
    with pytest.raises(PlanError) as caught:
        host_budget(host(160 * MiB, 1, "redis", name="cache"), RSS)
    message = str(caught.value)
    assert 32 * MiB == REDIS_MIN_MAXMEMORY_BYTES
    assert "host 'cache'" in message
    assert "leaves Redis a maxmemory of 25 MiB" in message
    assert "below the 32 MiB" in message


def test_redis_below_its_minimum_when_shared():
    # 384 MiB with PostgreSQL: 256 MiB x 15% x 80% = 30 MiB.
    with pytest.raises(PlanError, match="leaves Redis a maxmemory of 30 MiB"):
        host_budget(host(384 * MiB, 1, "postgresql", "redis"), RSS)


# --- Overrides ---------------------------------------------------------------------------------


def test_worker_override_replaces_the_computed_count():
    budget = host_budget(host(4 * GiB, 2, "postgresql", "gunicorn"), RSS, workers_override=2)
    assert budget.gunicorn_workers == 2
    assert budget.gunicorn_bytes == 2 * RSS
    assert budget.postgresql_bytes == 4 * GiB - budget.os_reserve_bytes - 2 * RSS


def test_worker_override_may_exceed_the_cpu_rule_when_memory_allows():
    budget = host_budget(host(16 * GiB, 2, "gunicorn"), RSS, workers_override=12)
    assert budget.gunicorn_workers == 12


def test_worker_override_that_starves_postgresql_is_an_error():
    with pytest.raises(PlanError, match=r"leaves PostgreSQL 0 KiB .*Gunicorn \(4\.7 GiB\)"):
        host_budget(host(4 * GiB, 2, "postgresql", "gunicorn"), RSS, workers_override=30)


def test_worker_override_beyond_a_dedicated_host_is_an_error():
    # 50 x 160 MiB = 7.8 GiB + the 410 MiB OS reserve.
    with pytest.raises(PlanError,
                       match=re.escape("the services need 8.2 GiB but only 4.0 GiB is usable")):
        host_budget(host(4 * GiB, 2, "gunicorn"), RSS, workers_override=50)


def test_maxmemory_override_grows_redis_budget_and_shrinks_postgresql():
    planned = host_budget(host(4 * GiB, 2, "postgresql", "redis"), RSS)
    budget = host_budget(host(4 * GiB, 2, "postgresql", "redis"), RSS,
                         maxmemory_override=1 * GiB)
    assert budget.redis_maxmemory_bytes == 1 * GiB
    assert budget.redis_bytes == int(1 * GiB / REDIS_MAXMEMORY_OF_BUDGET)  # 1.25 GiB
    assert budget.postgresql_bytes == planned.postgresql_bytes - (
        budget.redis_bytes - planned.redis_bytes)
    assert budget.total_bytes == 4 * GiB


def test_small_maxmemory_override_keeps_redis_share():
    planned = host_budget(host(4 * GiB, 2, "postgresql", "redis"), RSS)
    budget = host_budget(host(4 * GiB, 2, "postgresql", "redis"), RSS,
                         maxmemory_override=64 * MiB)
    assert budget.redis_maxmemory_bytes == 64 * MiB
    assert budget.redis_bytes == planned.redis_bytes


def test_maxmemory_override_below_minimum_is_an_error():
    with pytest.raises(PlanError, match="maxmemory of 16 MiB, below the 32 MiB"):
        host_budget(host(4 * GiB, 2, "redis"), RSS, maxmemory_override=16 * MiB)


def test_maxmemory_override_beyond_a_dedicated_host_is_an_error():
    # 8 GiB / 0.8 = 10 GiB for Redis + the 410 MiB OS reserve.
    with pytest.raises(PlanError, match=re.escape("the services need 10.4 GiB but only 4.0 GiB")):
        host_budget(host(4 * GiB, 2, "redis"), RSS, maxmemory_override=8 * GiB)

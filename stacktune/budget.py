"""Memory budget of one host: how usable memory is split between the services on it.

PGTune and its kin size PostgreSQL as if it owned the machine. When Redis,
Gunicorn and PgBouncer share the host, stacktune first gives each its share,
then tunes PostgreSQL on what is left. The shares below are the engine's
choices; each is a named constant so a reader can find and question it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacktune.model import REPLICA, Host, PlanError
from stacktune.units import GiB, MiB, human_bytes

# The OS, systemd, sshd, logging, and headroom against the cgroup OOM killer.
OS_RESERVE_FRACTION = 0.10
OS_RESERVE_FLOOR_BYTES = 128 * MiB
OS_RESERVE_CAP_BYTES = 2 * GiB

# PgBouncer needs a few kB per client (two 4 kB packet buffers and the socket
# state); 32 MiB covers a few thousand clients.
PGBOUNCER_BUDGET_BYTES = 32 * MiB
PGBOUNCER_BYTES_PER_CLIENT = 10 * 1024

# Gunicorn: workers x resident size. Next to a database it may take at most
# this share of the host; alone, nearly all of it.
GUNICORN_SHARED_FRACTION = 0.30
GUNICORN_DEDICATED_FRACTION = 0.90

# Redis: its budget includes allocator fragmentation and client buffers on
# top of maxmemory, so maxmemory is a fraction of the budget (Redis docs
# advise leaving headroom above maxmemory).
REDIS_SHARED_FRACTION = 0.15
REDIS_DEDICATED_FRACTION = 1.0
REDIS_MAXMEMORY_OF_BUDGET = 0.80
REDIS_MIN_MAXMEMORY_BYTES = 32 * MiB

# Below this PostgreSQL cannot hold useful shared_buffers plus a few backends.
POSTGRESQL_MIN_BUDGET_BYTES = 256 * MiB


@dataclass(frozen=True)
class HostBudget:
    """Bytes given to each consumer on one host; zero for services not placed there."""

    host: str
    usable_bytes: int
    os_reserve_bytes: int
    postgresql_bytes: int = 0
    pgbouncer_bytes: int = 0
    redis_bytes: int = 0
    redis_maxmemory_bytes: int = 0
    gunicorn_bytes: int = 0
    gunicorn_workers: int = 0

    @property
    def total_bytes(self) -> int:
        return (
            self.os_reserve_bytes
            + self.postgresql_bytes
            + self.pgbouncer_bytes
            + self.redis_bytes
            + self.gunicorn_bytes
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "usable_bytes": self.usable_bytes,
            "os_reserve_bytes": self.os_reserve_bytes,
            "postgresql_bytes": self.postgresql_bytes,
            "pgbouncer_bytes": self.pgbouncer_bytes,
            "redis_bytes": self.redis_bytes,
            "redis_maxmemory_bytes": self.redis_maxmemory_bytes,
            "gunicorn_bytes": self.gunicorn_bytes,
            "gunicorn_workers": self.gunicorn_workers,
            "total_bytes": self.total_bytes,
        }


def os_reserve_bytes(usable_bytes: int) -> int:
    """10% of usable memory, at least 128 MiB, at most 2 GiB."""
    return int(min(max(usable_bytes * OS_RESERVE_FRACTION, OS_RESERVE_FLOOR_BYTES),
                   OS_RESERVE_CAP_BYTES))


def gunicorn_workers_for_cpus(cpus: float) -> int:
    """Gunicorn's documented starting point: (2 x cores) + 1 workers."""
    return math.floor(2 * cpus) + 1


def gunicorn_workers(host: Host, available_bytes: int, worker_rss_bytes: int,
                     workers_override: int | None = None) -> int:
    """Workers that fit both the CPUs (2 x cores + 1) and the memory share of the host."""
    shares_host = bool(host.services & {"postgresql", REPLICA, "redis"})
    fraction = GUNICORN_SHARED_FRACTION if shares_host else GUNICORN_DEDICATED_FRACTION
    by_memory = int(available_bytes * fraction) // worker_rss_bytes
    if workers_override is not None:
        return workers_override
    workers = min(gunicorn_workers_for_cpus(host.profile.cpus), by_memory)
    if workers < 1:
        raise PlanError(
            f"host {host.name!r}: {human_bytes(host.profile.memory_bytes)} usable memory leaves "
            f"{human_bytes(int(available_bytes * fraction))} for Gunicorn, less than one worker "
            f"of {human_bytes(worker_rss_bytes)}; give the host more memory (--memory), place "
            "fewer services on it (--services), or lower the worker size estimate "
            "(--worker-rss / stacktune_gunicorn_worker_rss)"
        )
    return workers


def host_budget(host: Host, worker_rss_bytes: int, *, workers_override: int | None = None,
                maxmemory_override: int | None = None) -> HostBudget:
    """Split one host's usable memory between the OS and the services placed on it.

    Order: OS reserve, then the fixed small PgBouncer share, then Gunicorn and
    Redis by their fractions; PostgreSQL gets the rest, since it is the
    service whose tuning (shared_buffers, work_mem, cache size) scales with
    memory and gains most from it.
    """
    usable = host.profile.memory_bytes
    reserve = os_reserve_bytes(usable)
    available = usable - reserve
    services = host.services

    pgbouncer = PGBOUNCER_BUDGET_BYTES if "pgbouncer" in services else 0

    workers = gunicorn = 0
    if "gunicorn" in services:
        workers = gunicorn_workers(host, available, worker_rss_bytes, workers_override)
        gunicorn = workers * worker_rss_bytes

    redis = maxmemory = 0
    if "redis" in services:
        alone = not services & {"postgresql", REPLICA, "gunicorn"}
        redis = available - pgbouncer if alone else int(available * REDIS_SHARED_FRACTION)
        maxmemory = int(redis * REDIS_MAXMEMORY_OF_BUDGET) // MiB * MiB
        if maxmemory_override is not None:
            maxmemory = maxmemory_override
            redis = max(redis, math.ceil(maxmemory / REDIS_MAXMEMORY_OF_BUDGET))
        if maxmemory < REDIS_MIN_MAXMEMORY_BYTES:
            raise PlanError(
                f"host {host.name!r}: {human_bytes(usable)} usable memory leaves Redis a "
                f"maxmemory of {human_bytes(maxmemory)}, below the "
                f"{human_bytes(REDIS_MIN_MAXMEMORY_BYTES)} a cache needs; give the host more "
                "memory or place Redis on another host"
            )

    postgresql = 0
    # A replica runs PostgreSQL on its own hardware: the same share of it.
    if services & {"postgresql", REPLICA}:
        postgresql = available - pgbouncer - gunicorn - redis
        if postgresql < POSTGRESQL_MIN_BUDGET_BYTES:
            raise PlanError(
                f"host {host.name!r}: {human_bytes(usable)} usable memory leaves PostgreSQL "
                f"{human_bytes(max(postgresql, 0))} after the OS ({human_bytes(reserve)}), "
                f"Gunicorn ({human_bytes(gunicorn)}), Redis ({human_bytes(redis)}) and "
                f"PgBouncer ({human_bytes(pgbouncer)}); it needs at least "
                f"{human_bytes(POSTGRESQL_MIN_BUDGET_BYTES)}. Give the host more memory "
                "(--memory) or move services to other hosts (--services)"
            )

    budget = HostBudget(
        host=host.name, usable_bytes=usable, os_reserve_bytes=reserve,
        postgresql_bytes=postgresql, pgbouncer_bytes=pgbouncer, redis_bytes=redis,
        redis_maxmemory_bytes=maxmemory, gunicorn_bytes=gunicorn, gunicorn_workers=workers,
    )
    if budget.total_bytes > usable:
        raise PlanError(
            f"host {host.name!r}: the services need {human_bytes(budget.total_bytes)} but only "
            f"{human_bytes(usable)} is usable; lower the overrides of Gunicorn workers or Redis "
            "maxmemory, or give the host more memory"
        )
    return budget

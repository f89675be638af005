"""Streaming read replicas: the primary's replication settings and each replica's own plan.

A replica (the ``postgresql_replica`` placement) is a hot standby built from the primary
with pg_basebackup and fed through a physical replication slot. Its plan is the primary's
where PostgreSQL requires it and its own where it may differ:

- PostgreSQL docs, "Hot Standby", Administrator's Overview: max_connections,
  max_prepared_transactions, max_locks_per_transaction, max_wal_senders and
  max_worker_processes must be equal to or greater than the primary's on a standby, or it
  refuses to start (14+: pauses recovery). The standby takes the larger of its own plan and
  the primary's final value (overrides included).
- Memory settings (shared_buffers, work_mem, maintenance, cache size) come from the
  replica's own budget: it may be a smaller or a larger machine. When that budget cannot
  hold the backends and lock tables the primary's settings impose, the plan is refused,
  naming the replica, the setting and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stacktune.chain import ConnectionChain
from stacktune.memory_model import hash_mem_multiplier, postgres_memory, work_mem_factor
from stacktune.model import REPLICA, Host, PlanError, StackInputs, Workload
from stacktune.planners.postgresql import (
    WORK_MEM_FLOOR,
    WORK_MEM_MIN,
    plan_postgresql,
    query_concurrency,
    work_mem_bytes,
)
from stacktune.section import Section
from stacktune.shared_memory import DEFAULT_MAX_WAL_SENDERS
from stacktune.units import format_pg_memory, human_bytes

# PostgreSQL docs, "Hot Standby" (Administrator's Overview): a standby with less refuses to
# replay the primary's WAL.
REQUIRED_AT_LEAST_PRIMARY = ("max_connections", "max_prepared_transactions",
                             "max_locks_per_transaction", "max_wal_senders",
                             "max_worker_processes")
# pg_basebackup -X stream holds two WAL senders (the base backup and the WAL stream).
BASEBACKUP_WAL_SENDERS = 2
# One slot per replica, plus one for an ad-hoc pg_basebackup's temporary slot.
SPARE_REPLICATION_SLOTS = 1
# PostgreSQL's defaults for both (10): kept as the floor, so that adding up to 8 replicas to
# a running primary changes no postmaster setting (no restart).
DEFAULT_MAX_REPLICATION_SLOTS = 10
# Replication slot names: lower-case letters, digits and underscores, NAMEDATALEN - 1.
SLOT_NAME_MAX = 63
SLOT_PREFIX = "stacktune_"
# The primary reads each replica's replay position and feedback every second (default 10s).
WAL_RECEIVER_STATUS_INTERVAL = "1s"


@dataclass(frozen=True)
class ReplicaPlan:
    host: Host
    primary: str
    slot_name: str
    section: Section


def replication_slot_name(host: str) -> str:
    """The physical slot the primary keeps for ``host``: 'stacktune_' + the host name with
    every character a slot name may not hold (PostgreSQL: [a-z0-9_]) as '_', at most 63."""
    return (SLOT_PREFIX + re.sub(r"[^a-z0-9_]", "_", host.lower()))[:SLOT_NAME_MAX]


def check_replica_placement(inputs: StackInputs) -> None:
    """Replicas need one primary, and a host is either the primary or a replica."""
    replicas = inputs.hosts_running(REPLICA)
    for host in replicas:
        if "postgresql" in host.services:
            raise PlanError(
                f"host {host.name!r} is in both postgresql and postgresql_replica: a server is "
                "either the primary or a replica of it; remove it from one of the two groups")
    if replicas and not inputs.hosts_running("postgresql"):
        names = ", ".join(h.name for h in replicas)
        raise PlanError(
            f"postgresql_replica holds {names} but no host runs postgresql: a replica streams "
            "from the primary; place postgresql on one host (the postgresql group, "
            "stacktune_groups.postgresql)")
    slots: dict[str, str] = {}
    for host in replicas:
        slot = replication_slot_name(host.name)
        if slot in slots:
            raise PlanError(
                f"replicas {slots[slot]} and {host.name} would share the replication slot "
                f"{slot}: rename one of the hosts so their names differ in letters or digits")
        slots[slot] = host.name


def plan_primary_replication(section: Section, replica_count: int) -> None:
    """WAL senders and slots for ``replica_count`` replicas, and the WAL they need."""
    senders = max(DEFAULT_MAX_WAL_SENDERS, replica_count + BASEBACKUP_WAL_SENDERS)
    slots = max(DEFAULT_MAX_REPLICATION_SLOTS, replica_count + SPARE_REPLICATION_SLOTS)
    section.set("wal_level", "replica",
                "streaming replicas replay the primary's WAL: it must log what a hot standby "
                "needs (minimal refuses WAL senders)")
    section.set("max_wal_senders", str(senders),
                f"one per replica ({replica_count}) + {BASEBACKUP_WAL_SENDERS} for a "
                f"pg_basebackup -X stream, at least PostgreSQL's default "
                f"{DEFAULT_MAX_WAL_SENDERS} (so adding a replica needs no restart)")
    section.set("max_replication_slots", str(slots),
                f"a physical slot per replica ({replica_count}) + {SPARE_REPLICATION_SLOTS} "
                f"spare, at least PostgreSQL's default {DEFAULT_MAX_REPLICATION_SLOTS}")


def plan_replica(*, host: Host, primary_name: str, primary: Mapping[str, object],
                 budget_bytes: int, chain: ConnectionChain, workload: Workload,
                 version: int, statement_timeout: str,
                 apply_overrides: Callable[[Section], None]) -> ReplicaPlan:
    """One replica's postgresql section: its own plan, the primary's required settings, the
    standby's own settings, the user's overrides; work_mem sized last from what is left."""
    section, _ = plan_postgresql(budget_bytes=budget_bytes, profile=host.profile,
                                 workload=workload, version=version, chain=chain,
                                 warnings=[], adjustable=True)
    for name in REQUIRED_AT_LEAST_PRIMARY:
        if name not in primary:
            continue
        theirs = int(str(primary[name]))
        own = section.values.get(name)
        if own is not None and int(str(own)) >= theirs:
            section.reasons[name] += (f"; at least the primary's {theirs} ({primary_name}), "
                                      "as a hot standby must be")
            continue
        section.set(name, str(theirs),
                    f"the primary's value ({primary_name}): a hot standby with less refuses to "
                    "replay its WAL (PostgreSQL docs, Hot Standby)")
    section.set("hot_standby", "on", "answer read-only queries while replaying the primary's WAL")
    section.set("hot_standby_feedback", "on",
                f"{workload.value} reads are short: the primary keeps the rows they still read "
                "(a little bloat for seconds) instead of the standby cancelling them with "
                "'conflict with recovery'")
    section.set("max_standby_streaming_delay", statement_timeout,
                "replay waits for a conflicting read at most as long as the app role's "
                f"statement_timeout ({statement_timeout}) lets it run: no read the app would "
                "finish is cancelled, and the replica's lag is bounded by it")
    section.set("wal_receiver_status_interval", WAL_RECEIVER_STATUS_INTERVAL,
                "the primary sees the replica's replay position and feedback every second "
                "(default 10s): pg_stat_replication's lag is current")
    apply_overrides(section)
    _size_work_mem(section, host, primary_name, budget_bytes, chain, workload, version)
    return ReplicaPlan(host, primary_name, replication_slot_name(host.name), section)


def _size_work_mem(section: Section, host: Host, primary_name: str, budget_bytes: int,
                   chain: ConnectionChain, workload: Workload, version: int) -> None:
    values = section.values
    concurrency = query_concurrency(chain, int(str(values["max_parallel_workers"])),
                                    int(str(values["max_parallel_workers_per_gather"])))
    factor = work_mem_factor(hash_mem_multiplier(values, version))
    fixed = postgres_memory(values, version, concurrency=0).fixed_bytes()
    free = budget_bytes - fixed
    if free / max(concurrency, 1) / factor < WORK_MEM_MIN:
        needed = fixed + int(concurrency * factor * WORK_MEM_FLOOR)
        raise PlanError(
            f"replica {host.name!r}: PostgreSQL's {human_bytes(budget_bytes)} budget there "
            f"cannot hold the settings a hot standby must take from the primary "
            f"{primary_name!r} (max_connections = {values['max_connections']}, "
            f"max_worker_processes = {values['max_worker_processes']}, lock tables): they need "
            f"{human_bytes(fixed)} before any query runs; give {host.name} a PostgreSQL budget "
            f"of at least {human_bytes(needed)} (more memory), or lower "
            "postgresql.max_connections (the PgBouncer pools) on the primary")
    if section.reasons.get("work_mem", "").startswith("set by you"):
        total = postgres_memory(values, version, concurrency).total_bytes
        if total > budget_bytes:
            raise PlanError(
                f"replica {host.name!r}: postgresql.work_mem = {values['work_mem']} x "
                f"{concurrency} query processes needs {human_bytes(total)} there, more than "
                f"PostgreSQL's {human_bytes(budget_bytes)} budget; lower the work_mem override "
                f"or give {host.name} more memory")
        return
    work_mem = work_mem_bytes(free, concurrency, factor, workload)
    section.set("work_mem", format_pg_memory(work_mem),
                f"sized for {concurrency} processes running queries at once on this replica, "
                f"in what shared memory, backends and maintenance leave of its "
                f"{human_bytes(budget_bytes)} budget")


def replica_action(*, host: str, slot_name: str, standby: bool, replica_sysid: object,
                   primary_sysid: object, slot_exists: bool, user_databases: int,
                   rebuild: bool) -> str:
    """What a run does with a replica host: 'keep' it streaming, 'build' it from the primary
    (pg_basebackup), or refuse (PlanError naming the host and the fix).

    A replica is kept when it is a standby (standby.signal) of this primary (same system
    identifier) whose slot still exists: it resumes streaming by itself. A fresh cluster
    holding no database of its own is built. Anything else, built over, would lose what
    it holds or what it had replayed: only ``postgresql_replica_rebuild: true`` rebuilds it.
    """
    same_cluster = standby and str(replica_sysid) == str(primary_sysid)
    if same_cluster and slot_exists:
        return "keep"
    if not standby and user_databases == 0:
        return "build"
    if rebuild:
        return "build"
    if same_cluster:
        cause = (f"its replication slot {slot_name} is gone on the primary (dropped, or "
                 "invalidated), so the WAL it needs may be gone too")
    elif standby:
        cause = (f"it is a standby of another cluster (system identifier {replica_sysid}, "
                 f"the primary's is {primary_sysid})")
    else:
        cause = (f"it is not a standby and holds {user_databases} database(s) of its own, "
                 "which a rebuild would delete")
    raise PlanError(
        f"replica {host!r} cannot resume streaming: {cause}. Rebuild it from the primary "
        f"(its data directory is replaced): run with -e postgresql_replica_rebuild=true "
        f"--limit {host}")

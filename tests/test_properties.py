"""Invariants of the plan over the whole input space (hypothesis).

Every host from 512 MiB to 1 TiB and 1 to 128 CPUs (fractions too), every
workload, PostgreSQL version, storage kind and placement of the four services on
one host, with 0 to 4 app hosts. A plan either fails with a PlanError -- only
on small hosts -- or holds every invariant the engine promises.
"""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stacktune import pg_params
from stacktune.memory_model import postgres_memory
from stacktune.model import (
    SERVICES,
    SUPPORTED_PG_VERSIONS,
    Host,
    HostProfile,
    PlanError,
    StackInputs,
    Storage,
    Workload,
)
from stacktune.plan import Plan, plan_stack
from stacktune.planners.postgresql import query_concurrency
from stacktune.units import GiB, MiB, TiB, parse_pg_memory, parse_redis_memory

# Hosts at or above this size always get a plan. Found by search, then by the
# arithmetic of the worst case: PostgreSQL + PgBouncer + Redis on 128 CPUs with
# NVMe and no app tier plans for 300 OLTP clients through a pool of 2 x 128 + 4
# = 260 (+65 reserve) backends; 338 max_connections x 2 MiB of backend overhead
# + shared_buffers (25%) + autovacuum (12.5%) + 453 x 64kB of work_mem need a
# 1.1 GiB PostgreSQL budget, i.e. about 1.48 GiB of usable memory.
ALWAYS_PLANNED_FROM = 1536 * MiB

PLACEMENTS = [
    frozenset(combo)
    for size in range(1, len(SERVICES) + 1)
    for combo in itertools.combinations(SERVICES, size)
    if ("pgbouncer" not in combo or "postgresql" in combo)
    and ("nginx" not in combo or "gunicorn" in combo)
]

memories = st.one_of(
    st.integers(min_value=512 * MiB, max_value=TiB),
    st.integers(min_value=512 * MiB, max_value=4 * GiB),
    st.sampled_from([512 * MiB, 1 * GiB, ALWAYS_PLANNED_FROM, 2 * GiB, 4 * GiB, 16 * GiB, TiB]),
)
cpu_counts = st.one_of(
    st.integers(min_value=1, max_value=128).map(float),
    st.floats(min_value=1, max_value=128, allow_nan=False, allow_infinity=False),
    st.sampled_from([1.0, 1.5, 2.0, 2.5, 127.5, 128.0]),
)

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def stacks(draw) -> StackInputs:
    """One host with a placement, plus 0-4 app hosts of the same size running Gunicorn."""
    profile = HostProfile(memory_bytes=draw(memories), cpus=draw(cpu_counts),
                          storage=draw(st.sampled_from(list(Storage))))
    services = draw(st.sampled_from(PLACEMENTS))
    app_hosts = draw(st.integers(min_value=0, max_value=4))
    extra = max(app_hosts, 1) - 1 if "gunicorn" in services else app_hosts
    hosts = [Host("main", profile, services)]
    hosts += [Host(f"app{i}", profile, frozenset({"gunicorn"})) for i in range(extra)]
    return StackInputs(
        hosts=tuple(hosts),
        workload=draw(st.sampled_from(list(Workload))),
        pg_version=draw(st.sampled_from(SUPPORTED_PG_VERSIONS)),
    )


def plan_or_none(inputs: StackInputs) -> Plan | None:
    try:
        return plan_stack(inputs)
    except PlanError as error:
        memory = inputs.hosts[0].profile.memory_bytes
        if "direct connections" in str(error):
            # An app tier too large for a database without PgBouncer: refused, with the fix.
            assert "Place PgBouncer" in str(error)
            assert not inputs.hosts_running("pgbouncer")
            return None
        assert memory < ALWAYS_PLANNED_FROM, f"{memory / GiB:.2f} GiB host failed: {error}"
        assert str(error)
        return None


def pg_size(plan: Plan, name: str) -> int:
    return parse_pg_memory(str(plan.services["postgresql"][name]))


def check_invariants(plan: Plan) -> None:
    inputs = plan.inputs
    # The memory budget never exceeds usable memory, on any host.
    for name, host_plan in plan.hosts.items():
        budget = host_plan.budget
        assert budget.usable_bytes == host_plan.host.profile.memory_bytes, name
        assert budget.total_bytes <= budget.usable_bytes, name
        assert min(budget.to_dict().values()) >= 0, name

    chain = plan.chain
    pg = plan.services.get("postgresql")
    assert (pg is not None) == bool(inputs.hosts_running("postgresql"))
    if pg is not None:
        assert chain is not None and plan.postgres is not None
        version = inputs.pg_version
        # Every value is legal, and known, in that PostgreSQL version.
        for name, value in pg.items():
            pg_params.validate_pg_value(name, str(value), version)
        assert int(str(pg["max_connections"])) == chain.max_connections
        # The memory model (shared memory, backends, every query process's sorts and
        # hashes, maintenance) of the final values fits PostgreSQL's budget.
        db = inputs.hosts_running("postgresql")[0]
        budget = plan.hosts[db.name].budget.postgresql_bytes
        concurrency = query_concurrency(chain, int(str(pg["max_parallel_workers"])),
                                        int(str(pg["max_parallel_workers_per_gather"])))
        assert postgres_memory(pg, version, concurrency).total_bytes <= budget
        assert pg_size(plan, "effective_cache_size") <= budget
        assert pg_size(plan, "maintenance_work_mem") <= 2 * GiB
        if (pg["huge_pages"] == "try") != ("vm.nr_hugepages" in plan.hosts[db.name].sysctl):
            raise AssertionError("vm.nr_hugepages must follow huge_pages")

    bouncer = plan.services.get("pgbouncer")
    if bouncer is not None:
        assert chain is not None and chain.pooled
        max_db = int(str(bouncer["max_db_connections"]))
        # Pools never exceed max_connections minus the reserved slots.
        assert max_db <= chain.max_connections - chain.superuser_reserved_connections
        assert int(str(bouncer["default_pool_size"])) + int(
            str(bouncer["reserve_pool_size"])) <= max_db
        assert int(str(bouncer["min_pool_size"])) <= int(str(bouncer["default_pool_size"]))
        assert int(str(bouncer["default_pool_size"])) <= chain.app_clients
        assert int(str(bouncer["max_client_conn"])) >= chain.app_clients
    elif chain is not None:
        assert chain.max_connections - chain.superuser_reserved_connections >= chain.app_clients

    if "gunicorn" in plan.services:
        workers = int(str(plan.services["gunicorn"]["workers"]))
        assert workers >= 1
        assert chain is None or chain.app_clients >= workers * 2 * len(
            inputs.hosts_running("gunicorn"))
        for host in inputs.hosts_running("gunicorn"):
            assert plan.hosts[host.name].budget.gunicorn_workers == workers
            assert workers <= 2 * host.profile.cpus + 1

    if "redis" in plan.services:
        host = inputs.hosts_running("redis")[0]
        budget = plan.hosts[host.name].budget
        maxmemory = parse_redis_memory(str(plan.services["redis"]["maxmemory"]))
        assert 32 * MiB <= maxmemory <= budget.redis_bytes * 0.8

    django = plan.services.get("django")
    if django is not None and bouncer is not None:
        assert django["DISABLE_SERVER_SIDE_CURSORS"] is True


@settings(FAST, max_examples=3000)
@given(stacks())
def test_every_plan_holds_the_invariants(inputs):
    plan = plan_or_none(inputs)
    if plan is not None:
        check_invariants(plan)


@settings(FAST, max_examples=500)
@given(stacks())
def test_plans_are_deterministic_and_json(inputs):
    plan = plan_or_none(inputs)
    assume(plan is not None)
    first = plan.to_dict()
    text = json.dumps(first, sort_keys=True)
    assert json.loads(text) == first
    assert json.dumps(plan_stack(inputs).to_dict(), sort_keys=True) == text
    for name in plan.hosts:
        json.dumps(plan.host_view(name))


@settings(FAST, max_examples=500)
@given(memory=st.integers(min_value=2 * GiB, max_value=64 * GiB),
       cpus=cpu_counts,
       work_mem_mb=st.integers(min_value=1, max_value=4096),
       version=st.sampled_from(SUPPORTED_PG_VERSIONS))
def test_work_mem_overrides_fit_or_name_the_setting(memory, cpus, work_mem_mb, version):
    inputs = StackInputs(
        hosts=(Host("db", HostProfile(memory, cpus), frozenset(SERVICES)),),
        pg_version=version, overrides={"postgresql": {"work_mem": f"{work_mem_mb}MB"}})
    try:
        plan = plan_stack(inputs)
    except PlanError as error:
        assert str(error).startswith(f"postgresql.work_mem = {work_mem_mb}MB x ")
        return
    assert plan.services["postgresql"]["work_mem"] == f"{work_mem_mb}MB"
    check_invariants(plan)


@settings(FAST, max_examples=500)
@given(db=memories, cache=memories, app=st.lists(memories, min_size=1, max_size=4),
       cpus=cpu_counts, workload=st.sampled_from(list(Workload)),
       version=st.sampled_from(SUPPORTED_PG_VERSIONS))
def test_three_tier_stacks(db, cache, app, cpus, workload, version):
    hosts = [Host("db", HostProfile(db, cpus), frozenset({"postgresql", "pgbouncer"})),
             Host("cache", HostProfile(cache, cpus), frozenset({"redis"}))]
    hosts += [Host(f"app{i}", HostProfile(m, cpus), frozenset({"gunicorn"}))
              for i, m in enumerate(app)]
    inputs = StackInputs(hosts=tuple(hosts), workload=workload, pg_version=version)
    try:
        plan = plan_stack(inputs)
    except PlanError:
        # Only a small database host or app host (no room for one worker) can fail.
        assert min(db, *app) < ALWAYS_PLANNED_FROM
        return
    check_invariants(plan)
    views = {name: plan.host_view(name) for name in plan.hosts}
    assert "postgresql" in views["db"] and "redis" not in views["db"]
    assert set(views["cache"]) - {"host", "reasons", "warnings"} == {"redis", "sysctl"}
    assert all("django" in views[f"app{i}"] for i in range(len(app)))


# Legal values (for every supported version) of the settings the memory model reads.
memory_overrides = st.fixed_dictionaries({}, optional={
    "work_mem": st.sampled_from(["64kB", "1MB", "4MB", "32MB", "256MB", "1GB"]),
    "shared_buffers": st.sampled_from(["128MB", "512MB", "1GB", "4GB"]),
    "maintenance_work_mem": st.sampled_from(["64MB", "512MB", "2GB"]),
    "autovacuum_work_mem": st.sampled_from(["-1", "64MB", "1GB"]),
    "autovacuum_max_workers": st.sampled_from(["3", "10"]),
    "hash_mem_multiplier": st.sampled_from(["1.0", "2.0", "8.0"]),
    "max_connections": st.sampled_from(["100", "500", "2000"]),
    "max_prepared_transactions": st.sampled_from(["0", "100", "100000"]),
    "max_locks_per_transaction": st.sampled_from(["64", "1024", "100000"]),
    "max_worker_processes": st.sampled_from(["8", "64"]),
})


@settings(FAST, max_examples=600)
@given(inputs=stacks(), overrides=memory_overrides)
def test_no_accepted_override_exceeds_the_host(inputs, overrides):
    """Issue 10 item 3: an accepted plan or override never exceeds the host under the model."""
    assume(inputs.hosts_running("postgresql"))
    inputs = StackInputs(hosts=inputs.hosts, workload=inputs.workload,
                         pg_version=inputs.pg_version, overrides={"postgresql": overrides})
    try:
        plan = plan_stack(inputs)
    except PlanError as error:
        assert str(error)
        return
    check_invariants(plan)


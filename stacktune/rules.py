"""Rules between services and the kernel that each service's own checks cannot see.

Every rule here refuses a plan (overrides included) that the services or the kernel would
reject or that would break Django, with the setting to change. The memory model lives in
stacktune.plan.check_invariants; these are about ports, backlogs, pooling and kernel settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stacktune import pg_params
from stacktune.memory_model import shared_memory_settings
from stacktune.model import PlanError
from stacktune.planners.sysctl import OVERCOMMIT_RATIO_DEDICATED_DB
from stacktune.section import Section
from stacktune.shared_memory import huge_pages_for, shared_memory_bytes
from stacktune.units import MiB, human_bytes

if TYPE_CHECKING:
    from stacktune.plan import Plan

OVERRIDE_REASON = "set by you"
POSTGRESQL_DEFAULT_PORT = 5432
REDIS_PORT = 6379
HUGE_PAGE_BYTES = 2 * MiB
# Two segments of the default --wal-segsize (16MB), in MB: the least either WAL size may be.
MIN_WAL_SIZE_MB = 32
# The kernel's vm.overcommit_ratio when nothing sets it. Under strict accounting
# (overcommit_memory = 2) less than this leaves the commit limit below half of RAM, less than
# shared memory plus the backends' planned memory on any host stacktune plans.
KERNEL_OVERCOMMIT_RATIO = 50
MIN_STRICT_OVERCOMMIT_RATIO = 50


def _port(section: Section | dict[str, object] | None, name: str, default: int) -> int:
    values = section.values if isinstance(section, Section) else (section or {})
    value = values.get(name)
    return default if value is None else int(str(value))


def follow_ports(sections: dict[str, Section]) -> None:
    """Django connects where the database tier listens: DATABASE_PORT follows the planned port.

    An override of DATABASE_PORT that points elsewhere would send every request to a port
    nothing listens on (or past PgBouncer): refused.
    """
    django = sections.get("django")
    if django is None:
        return
    if "pgbouncer" in sections:
        port, source = _port(sections["pgbouncer"], "listen_port", 6432), "pgbouncer.listen_port"
    elif "postgresql" in sections:
        port, source = _port(sections["postgresql"], "port", POSTGRESQL_DEFAULT_PORT), \
            "postgresql.port"
    else:
        return
    current = django.values.get("DATABASE_PORT")
    if django.reasons.get("DATABASE_PORT") == OVERRIDE_REASON and current != port:
        raise PlanError(
            f"django.DATABASE_PORT = {current} but the database tier listens on {port} "
            f"({source}); remove the django.DATABASE_PORT override, Django follows {source}")
    if current != port:
        django.set("DATABASE_PORT", port, f"{source} = {port}")
    cache_port = django.values.get("CACHE_PORT")
    if django.reasons.get("CACHE_PORT") == OVERRIDE_REASON and "redis" in sections \
            and cache_port != REDIS_PORT:
        raise PlanError(
            f"django.CACHE_PORT = {cache_port} but Redis listens on {REDIS_PORT}; remove the "
            "django.CACHE_PORT override (the cache location follows Redis's port)")


def check_service_rules(plan: Plan) -> None:
    """Every rule of this module on the final plan; the first broken one is a PlanError."""
    _check_wal_sizes(plan)
    _check_pooling(plan)
    _check_ports(plan)
    for host_plan in plan.hosts.values():
        _check_kernel(plan, host_plan)


def _check_wal_sizes(plan: Plan) -> None:
    """min_wal_size <= max_wal_size, both at least two WAL segments (PostgreSQL docs, 'WAL
    Configuration'; below two segments the server refuses to start: FATAL "max_wal_size must
    be at least twice wal_segment_size")."""
    pg = plan.services.get("postgresql")
    if not pg:
        return
    version = plan.inputs.pg_version
    sizes = {name: pg_params.value_in_base_units(name, str(pg[name]), version)
             for name in ("min_wal_size", "max_wal_size") if name in pg}
    for name, megabytes in sizes.items():
        if megabytes < MIN_WAL_SIZE_MB:
            raise PlanError(
                f"postgresql.{name} = {pg[name]} is less than two WAL segments "
                f"({MIN_WAL_SIZE_MB}MB): PostgreSQL would refuse to start; use at least "
                f"{MIN_WAL_SIZE_MB}MB")
    if len(sizes) == 2 and sizes["min_wal_size"] > sizes["max_wal_size"]:
        raise PlanError(
            f"postgresql.min_wal_size = {pg['min_wal_size']} is above postgresql.max_wal_size = "
            f"{pg['max_wal_size']}: WAL kept for reuse would outgrow the size checkpoints keep "
            "it under; set min_wal_size at most max_wal_size")


def _check_pooling(plan: Plan) -> None:
    bouncer = plan.services.get("pgbouncer")
    if not bouncer:
        return
    mode = bouncer.get("pool_mode")
    if mode == "statement":
        raise PlanError(
            "pgbouncer.pool_mode = statement refuses multi-statement transactions, which "
            "Django opens for atomic(), migrations and session writes; use transaction")
    if mode == "session" and plan.chain is not None and "gunicorn" in {
            s for h in plan.inputs.hosts for s in h.services}:
        size = int(str(bouncer.get("default_pool_size", 0))) + int(
            str(bouncer.get("reserve_pool_size", 0)))
        cap = int(str(bouncer.get("max_db_connections", 0)))
        servers = min(size, cap) if cap else size
        clients = plan.chain.app_clients
        if clients > servers:
            raise PlanError(
                f"pgbouncer.pool_mode = session: each of the {clients} app connections "
                f"({plan.chain.client_source}) keeps a server connection for as long as Django "
                f"keeps it open (CONN_MAX_AGE), but the pools have {servers}; the rest would "
                "wait until query_wait_timeout. Use pool_mode = transaction")


def _check_ports(plan: Plan) -> None:
    pg = plan.services.get("postgresql")
    if pg is not None:
        pg_host = plan.inputs.hosts_running("postgresql")[0]
        if "redis" in pg_host.services and _port(pg, "port", POSTGRESQL_DEFAULT_PORT) \
                == REDIS_PORT:
            raise PlanError(
                f"postgresql.port = {REDIS_PORT} is Redis's port on host {pg_host.name!r}; "
                "use another port (5432 is PostgreSQL's usual one)")
    bouncer = plan.services.get("pgbouncer")
    if not bouncer:
        return
    port = _port(bouncer, "listen_port", 6432)
    bouncer_host = plan.inputs.hosts_running("pgbouncer")[0]
    pg_host = plan.inputs.hosts_running("postgresql")[0]
    pg_port = _port(plan.services.get("postgresql"), "port", POSTGRESQL_DEFAULT_PORT)
    if pg_host.name == bouncer_host.name and port == pg_port:
        raise PlanError(
            f"pgbouncer.listen_port = {port} is PostgreSQL's port (postgresql.port) on host "
            f"{pg_host.name!r}; one of them could not start: give them different ports")
    if "redis" in bouncer_host.services and port == REDIS_PORT:
        raise PlanError(
            f"pgbouncer.listen_port = {port} is Redis's port on host {bouncer_host.name!r}; "
            "use another port (6432 is PgBouncer's usual one)")


def _check_kernel(plan: Plan, host_plan: object) -> None:
    host = host_plan.host  # type: ignore[attr-defined]
    budget = host_plan.budget  # type: ignore[attr-defined]
    sysctl: dict[str, object] = host_plan.sysctl  # type: ignore[attr-defined]
    name = host.name
    pages = int(str(sysctl.get("vm.nr_hugepages", 0)))
    pg = plan.services.get("postgresql") if "postgresql" in host.services else None
    if pg is not None and pg.get("huge_pages") == "on" and pages == 0:
        raise PlanError(
            f"postgresql.huge_pages = on but no huge pages are reserved on host {name!r} "
            "(sysctl.vm.nr_hugepages is 0): PostgreSQL would not start; use huge_pages = try, "
            "or remove the vm.nr_hugepages override")
    if pg is not None and pg.get("huge_pages") in ("on", "try") and pages > 0:
        version = plan.inputs.pg_version
        needed = huge_pages_for(shared_memory_bytes(shared_memory_settings(pg, version), version))
        if pages < needed and pg.get("huge_pages") == "on":
            raise PlanError(
                f"sysctl.vm.nr_hugepages = {pages} on host {name!r} is fewer than the {needed} "
                "huge pages PostgreSQL's shared memory needs with postgresql.huge_pages = on: "
                f"it would not start; reserve at least {needed}, or remove the override")
        if pages < needed:
            plan.warnings.append(
                f"sysctl.vm.nr_hugepages = {pages} on host {name!r} is fewer than the {needed} "
                "PostgreSQL's shared memory needs: with huge_pages = try it falls back to normal "
                f"pages and the reserved ones sit unused; reserve at least {needed}")
    if pages * HUGE_PAGE_BYTES > budget.postgresql_bytes:
        # Reserved huge pages are taken from everything else, and only PostgreSQL uses them.
        most = budget.postgresql_bytes // HUGE_PAGE_BYTES
        raise PlanError(
            f"sysctl.vm.nr_hugepages = {pages} reserves {human_bytes(pages * HUGE_PAGE_BYTES)} "
            f"on host {name!r}, more than PostgreSQL's {human_bytes(budget.postgresql_bytes)} "
            f"budget there; use at most {most}, or remove the override")
    overcommit = str(sysctl.get("vm.overcommit_memory", ""))
    if overcommit == "2":
        others = sorted(host.services & {"redis", "gunicorn"})
        if others:
            raise PlanError(
                f"sysctl.vm.overcommit_memory = 2 on host {name!r}, which also runs "
                f"{', '.join(others)}: strict accounting makes Redis's fork and Python's "
                "allocations fail; use 0 or 1 on a shared host")
        ratio = int(str(sysctl.get("vm.overcommit_ratio", KERNEL_OVERCOMMIT_RATIO)))
        if ratio < MIN_STRICT_OVERCOMMIT_RATIO:
            limit = budget.usable_bytes * ratio // 100
            raise PlanError(
                f"sysctl.vm.overcommit_ratio = {ratio} with vm.overcommit_memory = 2 lets "
                f"processes on host {name!r} commit only {human_bytes(limit)} (plus swap): "
                "PostgreSQL's backends would fail to allocate; set it to at least "
                f"{MIN_STRICT_OVERCOMMIT_RATIO} (stacktune plans "
                f"{OVERCOMMIT_RATIO_DEDICATED_DB})")
    somaxconn = sysctl.get("net.core.somaxconn")
    if somaxconn is None:
        return
    backlogs = []
    if "gunicorn" in host.services and "gunicorn" in plan.services:
        backlogs.append(("gunicorn.backlog", plan.services["gunicorn"].get("backlog")))
    if "redis" in host.services and "redis" in plan.services:
        backlogs.append(("redis.tcp-backlog", plan.services["redis"].get("tcp-backlog")))
    for setting, value in backlogs:
        if value is not None and int(str(value)) > int(str(somaxconn)):
            raise PlanError(
                f"{setting} = {value} is above sysctl.net.core.somaxconn = {somaxconn} on host "
                f"{name!r}: the kernel cuts the listen queue to somaxconn; raise "
                f"sysctl.net.core.somaxconn to at least {value} or lower {setting}")

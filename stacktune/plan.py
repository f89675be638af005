"""The plan: host profiles + placement + workload + overrides -> every setting of every service.

Data flows one way: validate the inputs, parse overrides, split each host's
memory (stacktune.budget), size the connection chain (stacktune.chain), let each
service's planner write its settings, apply the remaining overrides, then check
the invariants on the final values. Any failure is a PlanError that names the
input to change; nothing here touches a host.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from stacktune import catalogue, pg_params
from stacktune.budget import (
    PGBOUNCER_BYTES_PER_CLIENT,
    REDIS_MAXMEMORY_OF_BUDGET,
    HostBudget,
    gunicorn_workers,
    host_budget,
    os_reserve_bytes,
)
from stacktune.chain import (
    DEFAULT_CLIENTS,
    MIN_POOL_SIZE,
    ConnectionChain,
    app_clients,
    connection_chain,
)
from stacktune.memory_model import (
    hash_mem_multiplier,
    postgres_memory,
    shared_memory_settings,
    work_mem_factor,
)
from stacktune.model import (
    PLACEMENTS,
    PLANNED_SECTIONS,
    REPLICA,
    SERVICES,
    SUPPORTED_PG_VERSIONS,
    Host,
    PlanError,
    StackInputs,
)
from stacktune.planners.django import plan_django
from stacktune.planners.gunicorn import THREADS, plan_gunicorn
from stacktune.planners.nginx import plan_nginx
from stacktune.planners.pgbouncer import plan_pgbouncer
from stacktune.planners.postgresql import (
    WORK_MEM_FLOOR,
    WORK_MEM_MIN,
    PostgresFigures,
    plan_postgresql,
    query_concurrency,
)
from stacktune.planners.postgresql_app_role import (
    APP_ROLE_SETTINGS,
    plan_postgresql_app_role,
)
from stacktune.planners.redis import plan_redis
from stacktune.planners.sysctl import plan_sysctl
from stacktune.replicas import (
    ReplicaPlan,
    check_replica_placement,
    plan_primary_replication,
    plan_replica,
)
from stacktune.rules import OVERRIDE_REASON, check_service_rules, follow_ports
from stacktune.section import Section
from stacktune.shared_memory import huge_pages_for, max_backends, shared_memory_bytes
from stacktune.timeout_chain import check_timeout_chain
from stacktune.units import (
    format_redis_memory,
    human_bytes,
    parse_redis_memory,
)

# Above this share of its budget, shared_buffers starves the page cache (PG docs: rarely
# more than 40% helps).
SHARED_BUFFERS_WARN_FRACTION = 0.40


@dataclass
class HostPlan:
    host: Host
    budget: HostBudget
    sysctl: dict[str, object]
    sysctl_reasons: dict[str, str]


@dataclass
class Plan:
    """The whole stack's plan. ``services`` maps service -> {setting: value}."""

    inputs: StackInputs
    services: dict[str, dict[str, object]]
    reasons: dict[str, str]
    hosts: dict[str, HostPlan]
    chain: ConnectionChain | None
    postgres: PostgresFigures | None
    warnings: list[str] = field(default_factory=list)
    # Streaming read replicas by host name: each has its own postgresql section.
    replicas: dict[str, ReplicaPlan] = field(default_factory=dict)

    def host_view(self, name: str) -> dict[str, object]:
        """One host's share of the plan, in the CLI's JSON shape."""
        host_plan = self.hosts[name]
        placed = set(host_plan.host.services)
        if "gunicorn" in placed:
            placed.add("django")
        if "postgresql" in placed:
            placed.add("postgresql_app_role")
        view: dict[str, object] = {"host": self._host_dict(host_plan)}
        reasons: dict[str, str] = {}
        for service in (*SERVICES, "postgresql_app_role", "django"):
            if service in placed and service in self.services:
                view[service] = dict(self.services[service])
                reasons.update({k: v for k, v in self.reasons.items()
                                if k.startswith(service + ".")})
        replica = self.replicas.get(name)
        if replica is not None:
            view["postgresql"] = dict(replica.section.values)
            reasons.update({f"postgresql.{k}": v for k, v in replica.section.reasons.items()})
            view["postgresql_replica"] = {"primary": replica.primary,
                                          "slot_name": replica.slot_name}
        if "postgresql" in placed and self.replicas:
            view["postgresql_replication"] = {"replicas": [
                {"host": r.host.name, "slot_name": r.slot_name} for r in self.replicas.values()]}
        view["sysctl"] = dict(host_plan.sysctl)
        reasons.update({f"sysctl.{k}": v for k, v in host_plan.sysctl_reasons.items()})
        view["reasons"] = reasons
        view["warnings"] = list(self.warnings)
        return view

    def to_dict(self) -> dict[str, object]:
        """The whole stack: services once, hosts with their budgets and kernel settings."""
        return {
            "inputs": {
                "workload": self.inputs.workload.value,
                "pg_version": self.inputs.pg_version,
                "connections": self.inputs.connections,
                "gunicorn_worker_rss_bytes": self.inputs.gunicorn_worker_rss_bytes,
                "django_version": self.inputs.django_version,
            },
            "hosts": {name: {**self._host_dict(hp), "sysctl": dict(hp.sysctl),
                             "sysctl_reasons": dict(hp.sysctl_reasons)}
                      for name, hp in self.hosts.items()},
            **{service: dict(values) for service, values in self.services.items()},
            "chain": self.chain.to_dict() if self.chain else None,
            "replicas": {name: dict(r.section.values) for name, r in self.replicas.items()},
            "reasons": dict(self.reasons),
            "warnings": list(self.warnings),
        }

    @staticmethod
    def _host_dict(host_plan: HostPlan) -> dict[str, object]:
        return {
            "name": host_plan.host.name,
            "services": sorted(host_plan.host.services),
            **host_plan.host.profile.to_dict(),
            "memory_human": human_bytes(host_plan.host.profile.memory_bytes),
            "budget": host_plan.budget.to_dict(),
        }


class Overrides:
    """User overrides, validated and normalised into each service's syntax."""

    def __init__(self, inputs: StackInputs) -> None:
        self.values: dict[str, dict[str, object]] = {}
        for service, settings in inputs.overrides.items():
            if service not in PLANNED_SECTIONS:
                raise PlanError(
                    f"unknown service {service!r} in overrides; use one of "
                    f"{', '.join(PLANNED_SECTIONS)}")
            for name, value in settings.items():
                self.values.setdefault(service, {})[name] = _normalise(
                    service, name, value, inputs.pg_version)

    def get(self, service: str, name: str) -> object | None:
        return self.values.get(service, {}).get(name)

    def integer(self, service: str, name: str) -> int | None:
        value = self.get(service, name)
        return None if value is None else int(str(value))

    def integers(self) -> dict[str, int]:
        """Integer overrides that the connection chain honours, keyed 'service.setting'."""
        keys = ("postgresql.max_connections", "postgresql.superuser_reserved_connections",
                "pgbouncer.default_pool_size", "pgbouncer.reserve_pool_size",
                "pgbouncer.min_pool_size", "pgbouncer.max_db_connections",
                "pgbouncer.max_client_conn")
        found = {}
        for key in keys:
            service, name = key.split(".", 1)
            value = self.integer(service, name)
            if value is not None:
                found[key] = value
        return found

    def apply(self, section: Section) -> None:
        # The reason is final once explain_overrides has the value planned without overrides.
        for name, value in self.values.get(section.service, {}).items():
            section.set(name, value, OVERRIDE_REASON)

    def check_placed(self, sections: dict[str, Section]) -> None:
        """An override of a service no host runs would vanish: refuse it, naming the fix."""
        for service, settings in self.values.items():
            if service == "sysctl" or service in sections:
                continue
            runs = "gunicorn (Django's settings go to the app tier)" if service == "django" \
                else service
            name = next(iter(settings))
            raise PlanError(
                f"{service}.{name} is set but no host of this plan runs {runs}; remove the "
                f"override or place {runs.split(' ')[0]} on a host")


def explain_overrides(plan: Plan) -> None:
    """Each override's reason: 'set by you, planned X: why X', X planned without any override.

    Overrides feed the plan (shared_buffers, pool sizes, workers...), so the value planned
    alongside an override is not what stacktune would have chosen; plan once more without them.
    """
    inputs = plan.inputs
    try:
        baseline: Plan | None = _plan_stack(replace(inputs, overrides={}))
    except PlanError:
        baseline = None

    def reason(planned: object, why: str | None) -> str:
        if baseline is None:
            return f"{OVERRIDE_REASON} (stacktune cannot plan this stack without your overrides)"
        if planned is None:
            return f"{OVERRIDE_REASON}; stacktune plans no value (the service's default applies)"
        return f"{OVERRIDE_REASON}, planned {_shown(planned)}: {why}"

    for service, settings in inputs.overrides.items():
        if service == "sysctl":
            continue
        for name in settings:
            planned = baseline.services.get(service, {}).get(name) if baseline else None
            why = baseline.reasons.get(f"{service}.{name}") if baseline else None
            plan.reasons[f"{service}.{name}"] = reason(planned, why)
    for host_name, host_plan in plan.hosts.items():
        base_host = baseline.hosts.get(host_name) if baseline else None
        for name in inputs.overrides.get("sysctl", {}):
            planned = base_host.sysctl.get(name) if base_host else None
            why = base_host.sysctl_reasons.get(name) if base_host else None
            host_plan.sysctl_reasons[name] = reason(planned, why)


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _normalise(service: str, name: str, value: object, pg_version: int) -> object:
    if service == "postgresql":
        return pg_params.validate_pg_value(name, str(value), pg_version)
    if service == "postgresql_app_role":
        if name not in APP_ROLE_SETTINGS:
            raise catalogue.unknown_setting(service, name, APP_ROLE_SETTINGS)
        try:
            return pg_params.validate_pg_value(name, str(value), pg_version)
        except PlanError as error:
            # Same rules as the server-wide parameter; name the setting as the user wrote it.
            raise PlanError(str(error).replace(f"postgresql.{name}", f"{service}.{name}", 1)
                            ) from None
    return catalogue.normalise_setting(service, name, value)


def validate_inputs(inputs: StackInputs) -> None:
    if inputs.pg_version not in SUPPORTED_PG_VERSIONS:
        raise PlanError(
            f"PostgreSQL {inputs.pg_version} is not supported; use one of "
            f"{', '.join(map(str, SUPPORTED_PG_VERSIONS))} (--pg-version / stacktune_pg_version)")
    if not inputs.hosts:
        raise PlanError("no hosts to plan; place at least one service on a host")
    names = [h.name for h in inputs.hosts]
    if len(set(names)) != len(names):
        raise PlanError(f"host names must be unique: {', '.join(names)}")
    for host in inputs.hosts:
        unknown = host.services - set(PLACEMENTS)
        if unknown:
            raise PlanError(f"host {host.name!r}: unknown service(s) {', '.join(sorted(unknown))}; "
                            f"use {', '.join(PLACEMENTS)}")
        if host.profile.memory_bytes <= 0 or host.profile.cpus <= 0:
            raise PlanError(f"host {host.name!r}: memory and CPUs must be positive")
    check_replica_placement(inputs)
    for service in ("postgresql", "pgbouncer", "redis"):
        running = inputs.hosts_running(service)
        if len(running) > 1:
            raise PlanError(
                f"{service} is placed on {len(running)} hosts "
                f"({', '.join(h.name for h in running)}); "
                "stacktune plans one primary per service: place it on one host")
    proxies = inputs.hosts_running("nginx")
    if proxies and not inputs.hosts_running("gunicorn"):
        raise PlanError(
            f"nginx is placed on {', '.join(h.name for h in proxies)} but no host runs gunicorn: "
            "nginx's upstream (the app hosts) would be empty; place gunicorn on at least one "
            "host (the app group, stacktune_groups.gunicorn)")
    if inputs.hosts_running("pgbouncer") and not inputs.hosts_running("postgresql"):
        raise PlanError("pgbouncer is placed but postgresql is not; PgBouncer's pools are sized "
                        "for the database host, so place postgresql too")
    if inputs.connections is not None and inputs.connections < 1:
        raise PlanError(f"connections = {inputs.connections}: expected a positive number")
    if inputs.gunicorn_worker_rss_bytes <= 0:
        raise PlanError("gunicorn worker RSS estimate must be positive")
    if not re.fullmatch(r"[0-9]+\.[0-9]+(\.[0-9]+)?", inputs.django_version.strip()):
        raise PlanError(f"Django version {inputs.django_version!r}: expected MAJOR.MINOR such "
                        "as 5.2 (--django-version / stacktune_django_version)")


def plan_stack(inputs: StackInputs) -> Plan:
    """Plan every service of the stack. Raises PlanError before anything else happens."""
    plan = _plan_stack(inputs)
    if inputs.overrides:
        explain_overrides(plan)
    return plan


def _plan_stack(inputs: StackInputs) -> Plan:
    validate_inputs(inputs)
    overrides = Overrides(inputs)
    warnings: list[str] = []
    rss = inputs.gunicorn_worker_rss_bytes

    # App tier: one Gunicorn configuration, sized for the most constrained app host.
    app_hosts = inputs.hosts_running("gunicorn")
    workers_override = overrides.integer("gunicorn", "workers")
    threads = overrides.integer("gunicorn", "threads") or THREADS
    workers = 0
    if app_hosts:
        workers = workers_override or min(
            gunicorn_workers(h, h.profile.memory_bytes - os_reserve_bytes(h.profile.memory_bytes),
                             rss)
            for h in app_hosts)

    maxmemory_override = overrides.get("redis", "maxmemory")
    maxmemory_bytes = (parse_redis_memory(str(maxmemory_override))
                       if maxmemory_override is not None else None)
    try:
        budgets = {
            h.name: _budget_or_explain(h, rss, workers if "gunicorn" in h.services else None,
                                       maxmemory_bytes)
            for h in inputs.hosts
        }
    except PlanError as error:
        if workers_override is None:
            raise
        raise PlanError(f"gunicorn.workers = {workers_override} does not fit: {error}") from None

    # Connection chain.
    clients, source = _clients(inputs, workers, threads, len(app_hosts), warnings)
    pg_hosts = inputs.hosts_running("postgresql")
    pooled = bool(inputs.hosts_running("pgbouncer"))
    chain: ConnectionChain | None = None
    sections: dict[str, Section] = {}
    figures: PostgresFigures | None = None
    if pg_hosts:
        db = pg_hosts[0]
        shared_override = overrides.get("postgresql", "shared_buffers")
        # No app tier and no --connections: the client count is the workload's usual
        # figure, a guess; on the direct path it is capped at what the host runs with
        # PostgreSQL's default 4MB work_mem instead of starving every query.
        estimate = source.startswith("no app tier placed") and not pooled \
            and "postgresql.max_connections" not in overrides.integers()
        # PgBouncer's pool follows the CPUs; on a host with many CPUs and little memory
        # it is capped at what the memory model holds.
        pool_fixed = not pooled or bool({"pgbouncer.default_pool_size",
                                          "pgbouncer.max_db_connections",
                                          "postgresql.max_connections"}
                                         & set(overrides.integers()))
        pool_cap: int | None = None
        while True:
            chain = connection_chain(clients=clients, client_source=source, pooled=pooled,
                                     db_cpus=db.profile.cpus, storage=db.profile.storage,
                                     overrides=overrides.integers(),
                                     reload_overlap=bool(app_hosts), pool_cap=pool_cap)
            planned_warnings: list[str] = []
            sections["postgresql"], figures = plan_postgresql(
                budget_bytes=budgets[db.name].postgresql_bytes, profile=db.profile,
                workload=inputs.workload, version=inputs.pg_version, chain=chain,
                shared_buffers_override=(_pg_bytes("shared_buffers", shared_override,
                                                   inputs.pg_version)
                                         if shared_override is not None else None),
                warnings=planned_warnings, clients_are_estimate=estimate,
                adjustable=not pool_fixed and chain.default_pool_size > MIN_POOL_SIZE,
            )
            if (not pool_fixed and figures.query_bytes_per_process < WORK_MEM_MIN
                    and chain.default_pool_size > MIN_POOL_SIZE):
                pool_cap = max(MIN_POOL_SIZE, chain.default_pool_size * 4 // 5)
                continue
            if not estimate or figures.work_mem_bytes >= WORK_MEM_FLOOR or clients <= 1:
                break
            clients = max(1, clients * 9 // 10)
            source = (f"no app tier placed: the {inputs.workload.value} default of "
                      f"{DEFAULT_CLIENTS[inputs.workload]}, capped at {clients} so that "
                      "PostgreSQL's budget holds 4MB work_mem per query (set --connections "
                      "or place PgBouncer)")
        warnings.extend(planned_warnings)
        if estimate and clients < DEFAULT_CLIENTS[inputs.workload]:
            warnings.append(f"postgresql.max_connections: {source}")
        sections["postgresql_app_role"] = plan_postgresql_app_role()
        replica_hosts = inputs.hosts_running(REPLICA)
        if replica_hosts:
            plan_primary_replication(sections["postgresql"], len(replica_hosts))
        if pooled:
            sections["pgbouncer"] = plan_pgbouncer(chain)
    redis_hosts = inputs.hosts_running("redis")
    if redis_hosts:
        host = redis_hosts[0]
        sections["redis"] = plan_redis(budgets[host.name].redis_maxmemory_bytes,
                                       budgets[host.name].redis_bytes,
                                       shared=bool(host.services - {"redis"}))
    if app_hosts:
        smallest = min(app_hosts, key=lambda h: (h.profile.memory_bytes, h.profile.cpus))
        sections["gunicorn"] = plan_gunicorn(workers, smallest.profile.cpus, rss, len(app_hosts))
        sections["django"] = plan_django(pooled=pooled, has_redis=bool(redis_hosts),
                                         django_version=inputs.django_version, threads=threads)

    for section in sections.values():
        overrides.apply(section)
    # nginx follows Gunicorn's final values (overrides included): its upstream keepalive,
    # read timeout and keep-alive timeout are links of the timeout chain.
    proxy_hosts = inputs.hosts_running("nginx")
    if proxy_hosts:
        sections["nginx"] = _plan_nginx(proxy_hosts, len(app_hosts), sections["gunicorn"])
        overrides.apply(sections["nginx"])
    overrides.check_placed(sections)
    follow_ports(sections)
    replicas: dict[str, ReplicaPlan] = {}
    if chain is not None:
        for host in inputs.hosts_running(REPLICA):
            replicas[host.name] = plan_replica(
                host=host, primary_name=pg_hosts[0].name,
                primary=sections["postgresql"].values,
                budget_bytes=budgets[host.name].postgresql_bytes, chain=chain,
                workload=inputs.workload, version=inputs.pg_version,
                statement_timeout=str(sections["postgresql_app_role"].values[
                    "statement_timeout"]),
                apply_overrides=overrides.apply)

    hosts: dict[str, HostPlan] = {}
    # Huge pages follow the final huge_pages value, overrides included: 'off' must not
    # reserve memory nothing uses, 'on' cannot start without reserved pages.
    huge_pages = "postgresql" in sections and sections["postgresql"].values.get(
        "huge_pages") in ("on", "try")
    for host in inputs.hosts:
        pages = (huge_pages_for(shared_memory_bytes(
                     shared_memory_settings(sections["postgresql"].values, inputs.pg_version),
                     inputs.pg_version))
                 if figures and huge_pages and "postgresql" in host.services else None)
        sysctl = plan_sysctl(host.services, pages)
        overrides.apply(sysctl)
        hosts[host.name] = HostPlan(host, budgets[host.name], sysctl.values, sysctl.reasons)
        if host.profile.in_container and sysctl.values:
            warnings.append(
                f"host {host.name!r} is a container: vm.* settings and transparent huge pages "
                "belong to the machine's kernel and cannot be applied from inside; set them "
                "on the container host")

    plan = Plan(
        inputs=inputs,
        services={name: s.values for name, s in sections.items()},
        reasons={f"{name}.{k}": v for name, s in sections.items() for k, v in s.reasons.items()},
        hosts=hosts, chain=chain, postgres=figures, warnings=warnings, replicas=replicas,
    )
    check_invariants(plan)
    check_service_rules(plan)
    return plan


def _plan_nginx(proxy_hosts: tuple[Host, ...], app_host_count: int,
                gunicorn: Section) -> Section:
    smallest = min(proxy_hosts, key=lambda h: (h.profile.cpus, h.profile.memory_bytes))
    values = gunicorn.values
    return plan_nginx(cpus=smallest.profile.cpus, app_hosts=app_host_count,
                      gunicorn_workers=int(str(values["workers"])),
                      gunicorn_threads=int(str(values["threads"])),
                      gunicorn_timeout=int(str(values["timeout"])),
                      gunicorn_keepalive=int(str(values["keepalive"])))


def _budget_or_explain(host: Host, rss: int, workers: int | None,
                       maxmemory_bytes: int | None) -> HostBudget:
    """The host's budget; when only the redis.maxmemory override makes it impossible, say so."""
    override = maxmemory_bytes if "redis" in host.services else None
    try:
        return host_budget(host, rss, workers_override=workers, maxmemory_override=override)
    except PlanError as error:
        if override is None:
            raise
        # Without the override the host fits (or this raises the host's own error).
        planned = host_budget(host, rss, workers_override=workers)
        raise PlanError(
            f"redis.maxmemory = {format_redis_memory(override)} does not fit host "
            f"{host.name!r} (stacktune plans {format_redis_memory(planned.redis_maxmemory_bytes)}"
            f"): {error}") from None


def _clients(inputs: StackInputs, workers: int, threads: int, app_host_count: int,
             warnings: list[str]) -> tuple[int, str]:
    """How many connections the database tier must serve, and where that figure comes from."""
    if app_host_count:
        clients = app_clients(workers, threads, app_host_count)
        source = f"{workers} workers x {threads} threads x {app_host_count} app host(s)"
        if inputs.connections and inputs.connections > clients:
            return inputs.connections, f"--connections {inputs.connections} (app tier: {source})"
        if inputs.connections and inputs.connections < clients:
            warnings.append(f"expected connections ({inputs.connections}) is below what the app "
                            f"tier can open ({clients}: {source}); planning for {clients}")
        return clients, source
    if inputs.connections:
        return inputs.connections, f"expected connections ({inputs.connections})"
    default = DEFAULT_CLIENTS[inputs.workload]
    return default, f"no app tier placed: the {inputs.workload.value} default of {default}"


def check_invariants(plan: Plan) -> None:
    """Checks on the final values, overrides included; a broken invariant is a PlanError."""
    inputs = plan.inputs
    for host_plan in plan.hosts.values():
        budget = host_plan.budget
        if budget.total_bytes > budget.usable_bytes:
            raise PlanError(
                f"host {budget.host!r}: budgets add up to {human_bytes(budget.total_bytes)}, "
                f"more than its {human_bytes(budget.usable_bytes)}")
    pg = plan.services.get("postgresql")
    if pg is not None and plan.postgres is not None and plan.chain is not None:
        _check_postgresql_memory(pg, plan.postgres, plan.chain, inputs.pg_version, plan.warnings)
    bouncer = plan.services.get("pgbouncer")
    if bouncer is not None:
        if bouncer["pool_mode"] != "transaction":
            plan.warnings.append(
                f"pgbouncer.pool_mode = {bouncer['pool_mode']}: every client holds a server "
                "connection for its session; the connection chain assumes transaction pooling")
        db_host = inputs.hosts_running("pgbouncer")[0].name
        needed = int(str(bouncer["max_client_conn"])) * PGBOUNCER_BYTES_PER_CLIENT
        if needed > plan.hosts[db_host].budget.pgbouncer_bytes:
            plan.warnings.append(
                f"pgbouncer.max_client_conn = {bouncer['max_client_conn']} may need "
                f"{human_bytes(needed)}, more than PgBouncer's budget")
    check_timeout_chain(plan.services)
    _check_legal_values(plan)
    django = plan.services.get("django")
    if django is not None:
        if (bouncer is not None and bouncer["pool_mode"] == "transaction"
                and not django["DISABLE_SERVER_SIDE_CURSORS"]):
            raise PlanError(
                "django.DISABLE_SERVER_SIDE_CURSORS = false cannot work with PgBouncer's "
                "transaction pooling (a cursor would outlive its server connection); set it "
                "to true or pgbouncer.pool_mode = session")
        if django["DATABASE_POOL"] and django["CONN_MAX_AGE"] not in (0, None) \
                and django["CONN_MAX_AGE"] != 0:
            raise PlanError(
                f"django.CONN_MAX_AGE = {django['CONN_MAX_AGE']} with django.DATABASE_POOL: "
                "Django's pool refuses persistent connections; set CONN_MAX_AGE to 0")
        if django["DATABASE_POOL"] and bouncer is not None:
            raise PlanError("django.DATABASE_POOL with PgBouncer pools twice; set it to null")
    redis = plan.services.get("redis")
    if redis is not None:
        host = inputs.hosts_running("redis")[0].name
        budget = plan.hosts[host].budget
        maxmemory = parse_redis_memory(str(redis["maxmemory"]))
        if maxmemory > budget.redis_bytes * REDIS_MAXMEMORY_OF_BUDGET + 1:
            raise PlanError(
                f"redis.maxmemory = {redis['maxmemory']} exceeds Redis's budget on host "
                f"{host!r}; use at most {human_bytes(int(budget.redis_bytes * 0.8))}")


def _check_postgresql_memory(pg: dict[str, object], figures: PostgresFigures,
                             chain: ConnectionChain, version: int, warnings: list[str]) -> None:
    """The memory model (stacktune.memory_model) of the final values fits the budget."""
    budget = figures.budget_bytes
    shared = pg_params.value_in_base_units("shared_buffers", str(pg["shared_buffers"]),
                                           version) * 8192
    if shared >= budget:
        raise PlanError(
            f"postgresql.shared_buffers = {pg['shared_buffers']} is not below PostgreSQL's "
            f"{human_bytes(budget)} budget on this host; use at most "
            f"{human_bytes(int(budget * SHARED_BUFFERS_WARN_FRACTION))}")
    if shared > budget * SHARED_BUFFERS_WARN_FRACTION:
        warnings.append(f"postgresql.shared_buffers = {pg['shared_buffers']} is over 40% of "
                        f"PostgreSQL's {human_bytes(budget)} budget; the page cache shrinks")
    concurrency = query_concurrency(chain, int(str(pg["max_parallel_workers"])),
                                    int(str(pg["max_parallel_workers_per_gather"])))
    memory = postgres_memory(pg, version, concurrency)
    if memory.total_bytes <= budget:
        return
    factor = work_mem_factor(hash_mem_multiplier(pg, version))
    room = max(budget - memory.fixed_bytes(), 0) // max(int(concurrency * factor), 1)
    if room >= WORK_MEM_MIN:
        raise PlanError(
            f"postgresql.work_mem = {pg['work_mem']} x {concurrency} query processes x "
            f"(2 sorts + 1 hash x hash_mem_multiplier) + shared memory, backends and "
            f"maintenance needs {human_bytes(memory.total_bytes)}, more than PostgreSQL's "
            f"{human_bytes(budget)} budget; use at most {human_bytes(room)} or fewer "
            "connections")
    parts = {
        "shared memory (shared_buffers, wal_buffers, lock tables sized by "
        "max_locks_per_transaction, max_pred_locks_per_transaction and "
        "max_prepared_transactions)": memory.shared_bytes,
        f"{pg['max_connections']} connections + {pg['max_worker_processes']} worker processes "
        "at 2MB each (max_connections, max_worker_processes)": memory.backends_bytes,
        "maintenance (autovacuum_max_workers x autovacuum_work_mem + maintenance_work_mem)":
            memory.maintenance_bytes,
    }
    cause, cause_bytes = max(parts.items(), key=lambda item: item[1])
    raise PlanError(
        f"PostgreSQL needs {human_bytes(memory.fixed_bytes())} before any query runs, leaving "
        f"no work_mem for {concurrency} query processes in its {human_bytes(budget)} budget; "
        f"the largest part is {cause}: {human_bytes(cause_bytes)}. Lower those settings or "
        "give PostgreSQL more memory")


def _pg_bytes(name: str, value: object, version: int) -> int:
    """Bytes of a PostgreSQL memory value read as PostgreSQL reads it: a bare number is in the
    parameter's own unit (8kB pages for shared_buffers, kB for work_mem)."""
    return int(pg_params.value_in_base_units(name, str(value), version)
               * _unit_bytes(name, version))


def _unit_bytes(name: str, version: int) -> int:
    unit = pg_params.param_for(name, version).unit
    return {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1024 * 1024}.get(unit or "B", 1)


def _check_legal_values(plan: Plan) -> None:
    """Every value, planned or overridden, within the service's legal range (for PostgreSQL,
    the target version's), and PostgreSQL's backends within MAX_BACKENDS."""
    version = plan.inputs.pg_version
    for service in ("postgresql", "postgresql_app_role"):
        for name, value in plan.services.get(service, {}).items():
            _normalise(service, name, value, version)
    for service in ("pgbouncer", "redis", "gunicorn", "django", "nginx"):
        known = catalogue.CATALOGUE[service]
        for name, value in plan.services.get(service, {}).items():
            if name in known:
                catalogue.normalise_setting(service, name, value)
    for host_plan in plan.hosts.values():
        for name, value in host_plan.sysctl.items():
            catalogue.normalise_setting("sysctl", name, value)
    pg = plan.services.get("postgresql")
    if pg is not None:
        backends = max_backends(shared_memory_settings(pg, version), version)
        if backends > pg_params.MAX_BACKENDS:
            raise PlanError(
                f"postgresql.max_connections + max_worker_processes + autovacuum workers + "
                f"WAL senders = {backends}, above PostgreSQL's limit of "
                f"{pg_params.MAX_BACKENDS}; lower max_connections (place PgBouncer) or "
                "max_worker_processes")


"""Action plugin: compute the stacktune plan once, on the controller, for every host of the play.

Placement comes from inventory groups, hardware from each host's
`stacktune_host_profile` fact (the host_profile module), the rest from the
task's arguments. An engine error fails the task, before any host changes,
with the engine's own message.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# The engine shipped in this collection (imported for that side effect, before stacktune).
from ansible_collections.stacktune.stacktune.plugins.module_utils import (  # noqa: F401
    stacktune_engine,
)

from stacktune import guard
from stacktune.model import (
    PLACEMENTS,
    PLANNED_SECTIONS,
    Host,
    HostProfile,
    PlanError,
    StackInputs,
    Storage,
    Workload,
)
from stacktune.pg_version import PgHost, distro_version, planned_pg_version
from stacktune.plan import plan_stack
from stacktune.platforms import check_supported_release
from stacktune.render import MANAGED_HEADER, plain
from stacktune.tls import check_certificate_pair
from stacktune.units import UnitError

DEFAULT_GROUPS = {"postgresql": "postgresql", "pgbouncer": "pgbouncer", "redis": "redis",
                  "gunicorn": "app", "nginx": "proxy", "postgresql_replica": "postgresql_replica"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset((
        "groups", "workload", "pg_version", "distro_pg_versions", "connections", "overrides",
        "django_version", "worker_rss",
    ))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = plain(self._task.args)
        try:
            inputs = self._inputs(args, task_vars)
            plan = plan_stack(inputs)
            groups_map = {**DEFAULT_GROUPS, **(args.get("groups") or {})}
        except (PlanError, UnitError, ValueError) as error:
            raise AnsibleActionFail(f"stacktune plan: {error}") from None
        result.update(
            changed=False,
            pg_version=inputs.pg_version,
            plan=plan.to_dict(),
            header=MANAGED_HEADER,
            # Each service's inventory group, defaults filled in: what later plays read
            # instead of repeating the defaults.
            groups=groups_map,
            views={host.name: plan.host_view(host.name) for host in inputs.hosts},
            warnings=list(plan.warnings),
        )
        return result

    def _inputs(self, args: dict, task_vars: dict) -> StackInputs:
        groups = args.get("groups") or {}
        if not isinstance(groups, dict) or set(groups) - set(PLACEMENTS):
            raise PlanError(f"stacktune_groups = {groups!r}: map each of {', '.join(PLACEMENTS)} "
                            "to an inventory group")
        groups_map = {**DEFAULT_GROUPS, **groups}
        inventory_groups = task_vars.get("groups", {})
        hostvars = task_vars.get("hostvars", {})
        hosts = []
        # Every host the inventory places a service on, whatever --limit says: the
        # plan (pool sizes, the connection chain) is the whole stack's, so a limited
        # run must compute the same one as a full run.
        for name in _placed_hosts(inventory_groups, groups_map):
            services = frozenset(service for service, group in groups_map.items()
                                 if name in inventory_groups.get(group, []))
            guard.check_line("inventory host name", name)
            guard.check_deployment_vars(name, _deployment_vars(hostvars[name]))
            facts = plain(hostvars[name].get("stacktune_host_profile"))
            if not isinstance(facts, dict):
                raise PlanError(
                    f"host {name!r} has no stacktune_host_profile fact: the plan needs every "
                    "placed host's profile, also under --limit; the stacktune role inspects "
                    "hosts outside the limit, so check that it ran and that the host is reachable")
            pins = {key: plain(hostvars[name].get(f"stacktune_{key}"))
                    for key in ("memory", "cpus", "storage")}
            profile = self._profile(name, facts, pins)
            check_supported_release(name, profile.os_id, profile.os_version)
            if "nginx" in services:
                _check_tls(name, hostvars[name])
            hosts.append(Host(name, profile, services))
        if not hosts:
            raise PlanError(
                "no host of this play is in a stacktune group (" +
                ", ".join(f"{s}: {g}" for s, g in groups_map.items()) + "); add hosts to them")
        return StackInputs(
            hosts=tuple(hosts),
            workload=_workload(args.get("workload") or "web"),
            pg_version=self._pg_version(args, hosts, hostvars),
            connections=(guard.ascii_integer("stacktune_connections", args["connections"], 1,
                                             guard.MAX_CONNECTIONS)
                         if args.get("connections") not in (None, "") else None),
            gunicorn_worker_rss_bytes=guard.human_size(
                "stacktune_gunicorn_worker_rss", args.get("worker_rss") or "160MiB"),
            django_version=guard.check_line("stacktune_django_version",
                                            args.get("django_version") or "5.2"),
            overrides=_overrides(args.get("overrides") or {}),
        )

    @staticmethod
    def _profile(name: str, facts: dict, overrides: dict) -> HostProfile:
        """The inspected profile; inventory may pin memory, cpus or storage (e.g. for staging)."""
        data = dict(facts)
        if overrides.get("memory") not in (None, ""):
            data["memory_bytes"] = guard.human_size(f"host {name!r}: stacktune_memory",
                                                    overrides["memory"])
            data["memory_source"] = "inventory (stacktune_memory)"
        if overrides.get("cpus") not in (None, ""):
            data["cpus"] = guard.ascii_decimal(f"host {name!r}: stacktune_cpus", overrides["cpus"],
                                               0, guard.MAX_CPUS, exclusive_minimum=True)
            data["cpu_source"] = "inventory (stacktune_cpus)"
        if overrides.get("storage"):
            data["storage"] = str(overrides["storage"])
            data["storage_source"] = "inventory (stacktune_storage)"
        try:
            Storage(str(data.get("storage")))
        except ValueError:
            raise PlanError(f"host {name!r}: storage {data.get('storage')!r} is not one of "
                            "hdd, ssd, nvme, san (stacktune_storage)") from None
        return HostProfile.from_dict(data)

    @staticmethod
    def _pg_version(args: dict, hosts: list[Host], hostvars) -> int:
        """stacktune_pg_version, else the major installed on the database hosts, else the
        distribution's (stacktune.pg_version.planned_pg_version decides)."""
        pinned = (guard.ascii_integer("stacktune_pg_version", args["pg_version"], 0, 99)
                  if args.get("pg_version") not in (None, "") else None)
        distro = args.get("distro_pg_versions") or {}
        database_hosts = []
        for host in hosts:
            if "postgresql" not in host.services:
                continue
            facts = plain(hostvars[host.name].get("stacktune_host_profile")) or {}
            installed = facts.get("postgresql_installed") or []
            database_hosts.append(PgHost(
                name=host.name,
                os_label=f"{host.profile.os_id} {host.profile.os_version}".strip(),
                installed=tuple(int(major) for major in installed),
                distro_version=distro_version(distro, host.profile.os_version)))
        version, _source = planned_pg_version(pinned, database_hosts)
        return version


def _deployment_vars(host_vars) -> dict[str, object]:
    """The roles' inventory strings that reach config files, as far as they resolve here.

    One that cannot be resolved yet (it refers to a fact of a later play) is left to the
    render-time guard of the template that prints it.
    """
    found = {}
    for var in (*guard.DEPLOYMENT_WORDS, *guard.DEPLOYMENT_LINES, *guard.DEPLOYMENT_WORD_LISTS):
        try:
            found[var] = plain(host_vars.get(var))
        except Exception:  # Ansible raises several kinds for undefined parts
            continue
    return found


def _check_tls(name: str, host_vars) -> None:
    """The operator's certificate and key (files on the controller) for a proxy host."""
    paths = {}
    for var in ("nginx_tls_certificate", "nginx_tls_key"):
        value = plain(host_vars.get(var)) or ""
        if not isinstance(value, str):
            raise PlanError(f"host {name!r}: {var} = {value!r}: expected a path on the controller")
        paths[var] = value
    try:
        check_certificate_pair(paths["nginx_tls_certificate"], paths["nginx_tls_key"])
    except PlanError as error:
        raise PlanError(f"host {name!r}: {error}") from None


def _overrides(overrides: object) -> dict[str, dict[str, object]]:
    """stacktune_overrides as {service: {setting: value}}, or an error naming the variable."""
    if not isinstance(overrides, dict):
        raise PlanError(f"stacktune_overrides = {overrides!r}: expected a mapping like "
                        "{postgresql: {work_mem: 64MB}}")
    for service, settings in overrides.items():
        if service not in PLANNED_SECTIONS:
            raise PlanError(f"stacktune_overrides: unknown service {service!r}; use one of "
                            f"{', '.join(PLANNED_SECTIONS)}")
        if not isinstance(settings, dict):
            raise PlanError(f"stacktune_overrides.{service} = {settings!r}: expected a mapping "
                            f"of settings, like {{{service}: {{setting: value}}}}")
    return overrides


def _placed_hosts(inventory_groups: dict, groups_map: dict) -> list[str]:
    """Hosts of the stacktune groups, in inventory order (the order a full run plays them)."""
    placed = {name for group in groups_map.values() for name in inventory_groups.get(group, [])}
    return [name for name in inventory_groups.get("all", []) if name in placed]


def _workload(text: str) -> Workload:
    try:
        return Workload(text)
    except ValueError:
        raise PlanError(f"stacktune_workload = {text!r}: use one of "
                        f"{', '.join(w.value for w in Workload)}") from None

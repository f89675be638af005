"""Typed inputs of the plan engine: host profiles, placement, workload, overrides.

Everything here is plain data. The engine (stacktune.plan) turns a StackInputs
into a Plan; nothing in this package does I/O except stacktune.inspect (which
reads the host) and stacktune.render / stacktune.cli (which write files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from stacktune.units import MiB

SUPPORTED_PG_VERSIONS = (13, 14, 15, 16, 17, 18)

# Services the engine places on hosts. Django settings follow Gunicorn (they
# are deployed on the app tier); sysctl is planned for every host. nginx is the
# reverse proxy in front of the app tier.
SERVICES = ("postgresql", "pgbouncer", "redis", "gunicorn", "nginx")
# A streaming read replica of the postgresql host (stacktune.replicas): placed like a
# service, planned per host.
REPLICA = "postgresql_replica"
PLACEMENTS = (*SERVICES, REPLICA)
# postgresql_app_role: settings of the application's database role (ALTER ROLE ... SET),
# planned whenever postgresql is placed.
PLANNED_SECTIONS = (*SERVICES, "postgresql_app_role", "django", "sysctl")


class PlanError(ValueError):
    """An input that cannot give a working stack. The message names the input and the fix."""


class Workload(str, Enum):
    WEB = "web"
    OLTP = "oltp"
    DW = "dw"
    MIXED = "mixed"


class Storage(str, Enum):
    HDD = "hdd"
    SSD = "ssd"
    NVME = "nvme"
    SAN = "san"


@dataclass(frozen=True)
class HostProfile:
    """What a host really offers, after cgroup limits.

    memory_bytes and cpus are the *usable* figures: the smallest of the
    physical resources and the container/cgroup limits. The other fields say
    where the figures came from, for people reading the plan.
    """

    memory_bytes: int
    cpus: float
    storage: Storage = Storage.SSD
    physical_memory_bytes: int | None = None
    online_cpus: int | None = None
    memory_source: str = "given"
    cpu_source: str = "given"
    storage_source: str = "given"
    os_id: str = ""
    os_version: str = ""
    in_container: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "memory_bytes": self.memory_bytes,
            "cpus": self.cpus,
            "storage": self.storage.value,
            "physical_memory_bytes": self.physical_memory_bytes,
            "online_cpus": self.online_cpus,
            "memory_source": self.memory_source,
            "cpu_source": self.cpu_source,
            "storage_source": self.storage_source,
            "os_id": self.os_id,
            "os_version": self.os_version,
            "in_container": self.in_container,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> HostProfile:
        """Build a profile from inspect's JSON (or Ansible facts of the host_profile module)."""
        try:
            return cls(
                memory_bytes=int(data["memory_bytes"]),  # type: ignore[arg-type]
                cpus=float(data["cpus"]),  # type: ignore[arg-type]
                storage=Storage(str(data.get("storage", "ssd"))),
                physical_memory_bytes=_opt_int(data.get("physical_memory_bytes")),
                online_cpus=_opt_int(data.get("online_cpus")),
                memory_source=str(data.get("memory_source", "given")),
                cpu_source=str(data.get("cpu_source", "given")),
                storage_source=str(data.get("storage_source", "given")),
                os_id=str(data.get("os_id", "")),
                os_version=str(data.get("os_version", "")),
                in_container=bool(data.get("in_container", False)),
            )
        except KeyError as missing:
            raise PlanError(f"host profile is missing {missing}") from None
        except ValueError as bad:
            raise PlanError(f"host profile has a bad value: {bad}") from None


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Host:
    """One machine of the stack and the services placed on it."""

    name: str
    profile: HostProfile
    services: frozenset[str]


DEFAULT_GUNICORN_WORKER_RSS_BYTES = 160 * MiB


@dataclass(frozen=True)
class StackInputs:
    """Everything the engine needs to plan a whole stack.

    hosts: every host with the services placed on it. The app tier is every
        host running gunicorn; all app hosts get one Gunicorn configuration,
        sized for the smallest of them.
    connections: expected client connections to the database when known
        (other clients than the app tier included); otherwise derived from
        the app tier, or the workload's usual figure when there is none.
    overrides: {service: {setting: value}}; values in the service's syntax.
    """

    hosts: tuple[Host, ...]
    workload: Workload = Workload.WEB
    pg_version: int = 15
    connections: int | None = None
    gunicorn_worker_rss_bytes: int = DEFAULT_GUNICORN_WORKER_RSS_BYTES
    django_version: str = "5.2"
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def hosts_running(self, service: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if service in h.services)

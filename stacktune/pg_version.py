"""Which PostgreSQL major version the plan is for.

A host that already runs PostgreSQL (e.g. PGDG's postgresql-16 on Debian 12) keeps
its version: installing the distribution's major beside it would start a second
server on the next free port and tune the wrong one. Pure: inputs are what
host_profile reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stacktune.model import PlanError

# Debian's own package (postgresql-common's "postgresql") depends on one major per release.
DISTRO_PG_VERSION_SOURCE = "the distribution's"


@dataclass(frozen=True)
class PgHost:
    """What one database host reported: its OS release and the majors already installed."""

    name: str
    os_label: str
    installed: tuple[int, ...]
    distro_version: int | None


def planned_pg_version(pinned: int | None, hosts: Sequence[PgHost]) -> tuple[int, str]:
    """The major version the plan is computed for, and where it came from.

    Rule: stacktune_pg_version when set; otherwise the one major already installed on the
    database hosts (server binaries or clusters); otherwise the distribution's. Two majors
    on one host, or different majors across database hosts, cannot be guessed: the caller
    must set stacktune_pg_version.
    """
    if pinned is not None:
        return pinned, "stacktune_pg_version"
    chosen: dict[int, list[str]] = {}
    sources: dict[int, str] = {}
    for host in hosts:
        installed = sorted(set(host.installed))
        if len(installed) > 1:
            raise PlanError(
                f"host {host.name!r} has PostgreSQL {', '.join(map(str, installed))} installed; "
                "set stacktune_pg_version to the major version stacktune should tune")
        if installed:
            version, source = installed[0], f"installed on {host.name}"
        elif host.distro_version is not None:
            version, source = host.distro_version, f"{DISTRO_PG_VERSION_SOURCE} ({host.os_label})"
        else:
            raise PlanError(
                f"cannot tell which PostgreSQL version host {host.name!r} gets "
                f"({host.os_label}); set stacktune_pg_version")
        chosen.setdefault(version, []).append(host.name)
        sources.setdefault(version, source)
    if len(chosen) > 1:
        found = "; ".join(f"{version} on {', '.join(names)}"
                          for version, names in sorted(chosen.items()))
        raise PlanError(f"the database hosts would run different PostgreSQL versions ({found}); "
                        "set stacktune_pg_version")
    if not chosen:
        return 15, "no database host (PostgreSQL 15 assumed)"
    version = next(iter(chosen))
    return version, sources[version]


def distro_version(distro_pg_versions: Mapping[str, object], os_version: str) -> int | None:
    """The major the distribution release ships (Debian 12: 15), from the role's table."""
    major = os_version.split(".")[0] if os_version else ""
    value = distro_pg_versions.get(major)
    return int(value) if value not in (None, "") else None  # type: ignore[arg-type]

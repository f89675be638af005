"""Kernel settings of one host, decided for the services placed on it."""

from __future__ import annotations

from stacktune.section import Section

SOMAXCONN = 4096
OVERCOMMIT_RATIO_DEDICATED_DB = 90


def plan_sysctl(services: frozenset[str], nr_hugepages: int | None) -> Section:
    s = Section("sysctl")
    has_pg = "postgresql" in services
    has_redis = "redis" in services
    if has_redis:
        s.set("vm.overcommit_memory", "1",
              "Redis's docs require it (fork and large allocations must not fail); "
              + ("PostgreSQL's advice of 2 is overruled on this shared host, whose memory "
                 "budget keeps the sum of services below usable memory" if has_pg else
                 "no PostgreSQL on this host"))
    elif has_pg and not services & {"gunicorn"}:
        s.set("vm.overcommit_memory", "2",
              "PostgreSQL's docs: strict overcommit, so the OOM killer never picks the "
              "postmaster on a dedicated database host")
        s.set("vm.overcommit_ratio", str(OVERCOMMIT_RATIO_DEDICATED_DB),
              "with overcommit_memory=2 the commit limit is swap + 90% of RAM, not 50%")
    if has_pg or has_redis:
        s.set("vm.swappiness", "1",
              "keep database and cache pages in RAM; swap only to avoid the OOM killer")
        s.set("transparent_hugepage", "never",
              "THP compaction stalls PostgreSQL and Redis (both projects' docs advise off); "
              "written to /sys/kernel/mm/transparent_hugepage/enabled")
    if services & {"pgbouncer", "gunicorn", "redis", "postgresql", "nginx"}:
        s.set("net.core.somaxconn", str(SOMAXCONN),
              "listen backlog above Gunicorn's 2048 and Redis's 511 (kernels before 5.4 "
              "default to 128)")
    if nr_hugepages:
        s.set("vm.nr_hugepages", str(nr_hugepages),
              "2MB pages for shared_buffers + WAL buffers + 64MB of other shared memory")
    return s

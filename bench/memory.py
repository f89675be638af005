"""Peak memory of each service of the demo container during an HTTP run, against its budget.

One ``docker exec`` per timed wrk run starts SAMPLER_SCRIPT (python3 in the
container, systemd as PID 1). It finds each service's systemd unit once, then
every ``interval`` seconds prints one JSON line with the bytes of each service,
until its stdin closes (the run is over).

What a service's memory is, by source (the first that the container offers):

- **its unit's memory cgroup**: anon + shmem from ``memory.stat`` (cgroup v1:
  ``total_rss`` + ``total_shmem``; v2: ``anon`` + ``shmem``). Used here: the host is
  cgroup v1, the container shares its cgroup namespace and systemd in it gives every
  service unit its own memory cgroup (``.../system.slice/<unit>/memory.stat``). A
  page is charged to one cgroup once, so PostgreSQL's shared_buffers (a shared
  anonymous mapping: shmem) count once however many backends map them, and
  copy-on-write pages shared by the Gunicorn master and its workers count once.
  The page cache (``cache`` / ``file``) is left out: the kernel drops it under
  pressure, so it is no service's resident cost and no budget covers it (the
  cgroup's ``memory.usage_in_bytes`` would include it).
- **PSS** summed over the unit's processes (``/proc/PID/smaps_rollup``), when the
  unit has no memory cgroup of its own (a systemd without memory accounting):
  shared pages are split between the processes that map them, so the sum counts
  each once too.

A service whose unit does not run (no PgBouncer or Redis in a stack without
them) has ``None``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

MiB = 1024 * 1024

# Service -> systemd unit patterns (fnmatch) in the demo container. Every running
# unit that matches counts (e.g. two PostgreSQL clusters).
SERVICE_UNITS: dict[str, list[str]] = {
    "postgresql": ["postgresql@*.service"],
    "pgbouncer": ["pgbouncer.service"],
    "redis": ["redis-server.service", "redis-server@*.service"],
    "gunicorn": ["stacktune-gunicorn.service"],
    "nginx": ["nginx.service"],
}

# Service -> the key of its share in the plan's per-host budget (stacktune.budget).
# nginx has no share: the plan budgets it within the OS reserve.
BUDGET_KEYS: dict[str, str] = {
    "postgresql": "postgresql_bytes",
    "pgbouncer": "pgbouncer_bytes",
    "redis": "redis_bytes",
    "gunicorn": "gunicorn_bytes",
}

# Runs inside the container (python3 -c): bench/memory_sampler.py, standard library only.
SAMPLER_SCRIPT = Path(__file__).with_name("memory_sampler.py").read_text()


def sampler_args(container: str, units: Mapping[str, Sequence[str]] | None = None,
                 interval: float = 0.5) -> list[str]:
    """The one docker exec that samples for a whole run (``-i``: its stdin says when to stop)."""
    return ["docker", "exec", "-i", container, "python3", "-c", SAMPLER_SCRIPT,
            json.dumps(dict(SERVICE_UNITS if units is None else units)), str(interval)]


def parse_samples(text: str) -> dict:
    """The sampler's output: ``{"sources": {service: [{unit, source}]}, "samples": [...]}``.

    Each sample is ``{"t": seconds, "bytes": {service: int | None}}``. A line that is
    not JSON (a warning on stderr merged in, a line cut by a killed exec) is skipped.
    """
    sources: dict = {}
    samples: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "sources" in record:
            sources = record["sources"]
        elif "bytes" in record:
            samples.append(record)
    return {"sources": sources, "samples": samples}


def peak_bytes(samples: Iterable[Mapping]) -> dict[str, int | None]:
    """Each service's largest value over the samples; None for one never measured."""
    peaks: dict[str, int | None] = {}
    for sample in samples:
        for service, value in sample["bytes"].items():
            if value is None:
                peaks.setdefault(service, None)
            else:
                current = peaks.get(service)
                peaks[service] = value if current is None else max(current, value)
    return peaks


def plan_budget(plan: Mapping, host: str | None = None) -> dict[str, int]:
    """The budget (bytes) of each service on ``host`` from a plan.

    ``plan`` is ``stacktune plan --format json``'s object or the plan_dump playbook's
    (the same under ``"plan"``). ``host`` may be left out when the plan has one host.
    """
    hosts = plan.get("plan", plan)["hosts"]
    if host is None:
        if len(hosts) != 1:
            raise ValueError(f"the plan has hosts {sorted(hosts)}: name one with 'plan_host'")
        host = next(iter(hosts))
    if host not in hosts:
        raise ValueError(f"host {host!r} is not in the plan (hosts: {sorted(hosts)}); "
                         "set the stack's 'plan_host'")
    budget = hosts[host]["budget"]
    return {service: int(budget[key]) for service, key in BUDGET_KEYS.items()
            if budget.get(key)}


def against_budget(peaks: Mapping[str, int | None],
                   budget: Mapping[str, int] | None) -> dict[str, dict]:
    """Per service: peak and budget (MiB), peak / budget, and whether it went over."""
    out = {}
    for service, peak in peaks.items():
        limit = (budget or {}).get(service)
        ratio = peak / limit if peak is not None and limit else None
        out[service] = {
            "peak_mib": None if peak is None else round(peak / MiB, 1),
            "budget_mib": None if limit is None else round(limit / MiB, 1),
            "peak_over_budget": None if ratio is None else round(ratio, 3),
            "over_budget": None if ratio is None else ratio > 1.0,
        }
    return out


def summarize(http_samples: Iterable[Mapping]) -> dict:
    """``{endpoint: {stack: {service: {...}}}}``: the largest peak over the rounds of
    each stack and endpoint, against that stack's budget (the largest peak's round)."""
    # Each round's peaks, as samples of peak_bytes: the peak of the peaks.
    rounds: dict[tuple[str, str], list[dict]] = {}
    budgets: dict[tuple[str, str], dict[str, int]] = {}
    for sample in http_samples:
        memory = sample.get("memory")
        if not memory:
            continue
        key = (sample["endpoint"], sample["stack"])
        rounds.setdefault(key, []).append({"bytes": memory["peak_bytes"]})
        if memory.get("budget_bytes"):
            budgets[key] = memory["budget_bytes"]
    out: dict = {}
    for (endpoint, stack), peaks in rounds.items():
        out.setdefault(endpoint, {})[stack] = against_budget(peak_bytes(peaks),
                                                             budgets.get((endpoint, stack)))
    return out


class MemorySampler:
    """Samples the container's services in the background while a run goes on."""

    def __init__(self, container: str, *, interval: float = 0.5,
                 units: Mapping[str, Sequence[str]] | None = None) -> None:
        self.args = sampler_args(container, units, interval)
        self._out: IO[str] | None = None
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        # A file, not a pipe: a long run's lines would fill a pipe nobody reads yet.
        self._out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by stop()
        self._proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=self._out,
                                      stderr=subprocess.PIPE, text=True)

    def stop(self) -> dict:
        """Ends the sampler; its sources, sample count and peak per service."""
        assert self._proc is not None and self._out is not None
        try:
            _, err = self._proc.communicate(input="", timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
        self._out.seek(0)
        parsed = parse_samples(self._out.read())
        self._out.close()
        if not parsed["samples"]:
            raise RuntimeError(f"memory sampler in the container printed no sample "
                               f"(exit {self._proc.returncode}): {err.strip()[-500:]}")
        return {"sources": parsed["sources"], "samples": len(parsed["samples"]),
                "peak_bytes": peak_bytes(parsed["samples"])}

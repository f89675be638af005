"""Memory of each service, sampled inside a systemd container until stdin closes.

    python3 -c "$(cat bench/memory_sampler.py)" '{"postgresql": ["postgresql@*.service"]}' 0.5

Standard library only: it runs in the container (bench/memory.py sends it with
one ``docker exec``; its docstring says which source is used and why). Prints one
JSON line with each unit's source, then one line per sample:
``{"t": seconds, "bytes": {service: int | None}}``.
"""

import contextlib
import fnmatch
import json
import os
import select
import subprocess
import sys
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def parse_proc_cgroup(text):
    """/proc/PID/cgroup -> {controller: path}; cgroup v2's line is under ""."""
    paths = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def unit_source(unit, paths, v2, exists=os.path.exists, root=CGROUP_ROOT):
    """Where a unit's memory is read: ("cgroup-v1"/"cgroup-v2", its memory.stat) when the
    unit has a memory cgroup of its own, else ("pss", the cgroup.procs listing its PIDs)."""
    if v2:
        group = root + paths.get("", "/")
        memory, procs, source = group, group + "/cgroup.procs", "cgroup-v2"
    else:
        memory = root + "/memory" + paths.get("memory", "/")
        procs = root + "/systemd" + paths.get("name=systemd", "/") + "/cgroup.procs"
        source = "cgroup-v1"
    stat = memory.rstrip("/") + "/memory.stat"
    if memory.rstrip("/").endswith("/" + unit) and exists(stat):
        return source, stat
    return "pss", procs


def stat_bytes(text):
    """Resident, non-reclaimable bytes of a memory cgroup: anon + shmem.

    v2 memory.stat: ``anon`` + ``shmem``. v1: ``total_rss`` + ``total_shmem`` (the
    cgroup and its children; ``rss`` + ``shmem`` where the totals are missing).
    The page cache is left out (reclaimable; bench/memory.py says why).
    """
    stat = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            stat[parts[0]] = int(parts[1])
    if "anon" in stat:
        return stat["anon"] + stat.get("shmem", 0)
    return stat.get("total_rss", stat.get("rss", 0)) + \
        stat.get("total_shmem", stat.get("shmem", 0))


def rollup_pss_bytes(text):
    """Pss of /proc/PID/smaps_rollup in bytes (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _read(path):
    with open(path) as f:
        return f.read()


def pss_bytes(procs_path):
    total = 0
    for pid in _read(procs_path).split():
        with contextlib.suppress(OSError):  # the process ended between the two reads
            total += rollup_pss_bytes(_read(f"/proc/{pid}/smaps_rollup"))
    return total


def _systemctl(*args):
    return subprocess.run(["systemctl", *args], capture_output=True, text=True,
                          check=False).stdout


def find_units(patterns):
    """{service: [{"unit", "source", "path"}]} for the running units matching each pattern."""
    running = [line.split()[0] for line in _systemctl(
        "list-units", "--type=service", "--state=running", "--plain", "--no-legend",
    ).splitlines() if line.strip()]
    v2 = os.path.exists(CGROUP_ROOT + "/cgroup.controllers")
    found = {}
    for service, pats in patterns.items():
        found[service] = []
        for unit in running:
            if not any(fnmatch.fnmatch(unit, p) for p in pats):
                continue
            pid = _systemctl("show", "-p", "MainPID", "--value", unit).strip()
            if not pid or pid == "0":
                continue
            source, path = unit_source(unit, parse_proc_cgroup(_read(f"/proc/{pid}/cgroup")), v2)
            found[service].append({"unit": unit, "source": source, "path": path})
    return found


def measure(found):
    out = {}
    for service, units in found.items():
        if not units:
            out[service] = None
            continue
        out[service] = sum(pss_bytes(u["path"]) if u["source"] == "pss"
                           else stat_bytes(_read(u["path"])) for u in units)
    return out


def main(argv):
    patterns, interval = json.loads(argv[1]), float(argv[2])
    found = find_units(patterns)
    print(json.dumps({"sources": {s: [{"unit": u["unit"], "source": u["source"]} for u in units]
                                  for s, units in found.items()}}), flush=True)
    start = time.monotonic()
    while True:
        try:
            values = measure(found)
        except OSError:  # a unit restarted: its cgroup or processes changed
            found = find_units(patterns)
            values = measure(found)
        print(json.dumps({"t": round(time.monotonic() - start, 3), "bytes": values}),
              flush=True)
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not sys.stdin.readline():  # stdin closed: the run is over
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Wall time of the kit itself: the hook the Ansible commands plug into.

Four steps, in this order, per round:

    converge     first converge of site.yml on fresh hosts
    idempotent   the same command again (nothing should change)
    check        a --check --diff run on the converged hosts
    facts        a facts-only play: the floor (Ansible's own cost: connection,
                 fact gathering), which the other steps are compared to

A step is a shell command (str) or a Python callable; a step left out is
skipped. ``reset`` (optional, untimed) runs before each round to give the
first converge fresh hosts (e.g. ``molecule destroy && molecule create``);
without a reset command only one round is meaningful.

Commands come from ``--converge-cmd/--check-cmd/--facts-cmd/--reset-cmd``
(the idempotent step reuses the converge command unless ``--idempotent-cmd``
is given) or from a JSON file (``--kit-config``, see bench/kit.json).

Wall time follows the machine's load (a shared 2-core machine makes a 40 s run take
150 s or more), so each step also records the CPU it cost: the controller's (the
command and its children: ansible-playbook, its workers, the docker CLI) and, when the
config names the target's ``container``, that container's (its cgroup), with the
1-minute load average at the step's start and end. CPU barely moves with the load.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

STEPS = ("converge", "idempotent", "check", "facts")
TITLES = {
    "converge": "first converge",
    "idempotent": "second converge (idempotent)",
    "check": "--check run",
    "facts": "facts-only play (floor)",
}

Command = str | Callable[[], object]


def run_command(command: Command) -> int:
    """Run a step; its exit status (a callable's: 0 unless it raises)."""
    if callable(command):
        command()
        return 0
    return subprocess.run(command, shell=True, check=False).returncode


def children_cpu_seconds() -> float:
    """User + system CPU of the finished children of this process (the steps' commands)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def container_cpu_reader(container: str) -> Callable[[], float]:
    """A function returning the CPU seconds used so far by ``container`` (cgroup v1 or v2).
    It looks the container up at each call: a reset may have replaced it."""
    def read() -> float:
        full_id = subprocess.check_output(
            ["docker", "inspect", "-f", "{{.Id}}", container], text=True).strip()
        for candidate in (f"/sys/fs/cgroup/cpuacct/docker/{full_id}/cpuacct.usage",
                          f"/sys/fs/cgroup/system.slice/docker-{full_id}.scope/cpu.stat",
                          f"/sys/fs/cgroup/docker/{full_id}/cpu.stat"):
            if Path(candidate).is_file():
                return cgroup_cpu_seconds(Path(candidate))
        raise RuntimeError(f"no CPU accounting found for container {container}")
    return read


def cgroup_cpu_seconds(path: Path) -> float:
    text = path.read_text()
    if path.name == "cpuacct.usage":  # v1: nanoseconds
        return int(text) / 1e9
    usage = dict(line.split() for line in text.splitlines())  # v2: usage_usec
    return int(usage["usage_usec"]) / 1e6


def load_kit_config(path: str | Path) -> dict[str, str]:
    data = json.loads(Path(path).read_text())
    unknown = set(data) - {*STEPS, "reset", "rounds", "container"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; "
                         f"expected {[*STEPS, 'reset', 'rounds', 'container']}")
    return data


def kit_commands(converge: str | None = None, idempotent: str | None = None,
                 check: str | None = None, facts: str | None = None,
                 reset: str | None = None, config: Mapping | None = None) -> dict:
    """Merge command-line commands over a config mapping; idempotent defaults to converge."""
    commands = dict(config or {})
    for key, value in (("converge", converge), ("idempotent", idempotent), ("check", check),
                       ("facts", facts), ("reset", reset)):
        if value:
            commands[key] = value
    if commands.get("converge") and not commands.get("idempotent"):
        commands["idempotent"] = commands["converge"]
    return {k: v for k, v in commands.items() if v}


def time_kit(commands: Mapping[str, Command], *, rounds: int = 1,
             runner: Callable[[Command], int] = run_command,
             clock: Callable[[], float] = time.monotonic,
             say: Callable[[str], None] = print,
             cpu: Callable[[], float] = children_cpu_seconds,
             container_cpu: Callable[[], float] | None = None,
             load: Callable[[], float] = lambda: os.getloadavg()[0]) -> list[dict]:
    """Time each step of ``commands`` (keys from STEPS, plus optional 'reset'): wall
    seconds, the controller's CPU seconds (``cpu``), the target container's
    (``container_cpu``, None without one) and the load average at start and end."""
    steps = [s for s in STEPS if s in commands]
    samples = []
    for rnd in range(1, rounds + 1):
        if "reset" in commands:
            say(f"[kit] round {rnd}: reset (untimed)")
            status = runner(commands["reset"])
            if status != 0:
                raise RuntimeError(f"kit reset command failed with status {status}")
        for step in steps:
            say(f"[kit] round {rnd}: {TITLES[step]}")
            load_start, cpu_start = load(), cpu()
            container_start = container_cpu() if container_cpu else None
            start = clock()
            try:
                status = runner(commands[step])
                error = None
            except Exception as exc:  # a callable step that raises is a failed step
                status, error = 1, f"{type(exc).__name__}: {exc}"
            seconds = clock() - start
            controller = cpu() - cpu_start
            in_container = (container_cpu() - container_start if container_cpu else None)
            samples.append({"round": rnd, "step": step, "title": TITLES[step],
                            "seconds": seconds, "controller_cpu_s": controller,
                            "container_cpu_s": in_container,
                            "load1_start": load_start, "load1_end": load(),
                            "exit_code": status, "ok": status == 0,
                            "error": error,
                            "command": commands[step] if isinstance(commands[step], str)
                            else getattr(commands[step], "__name__", "callable")})
    return samples

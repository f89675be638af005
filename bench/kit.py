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
"""

from __future__ import annotations

import json
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


def load_kit_config(path: str | Path) -> dict[str, str]:
    data = json.loads(Path(path).read_text())
    unknown = set(data) - {*STEPS, "reset", "rounds"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected {[*STEPS, 'reset']}")
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
             say: Callable[[str], None] = print) -> list[dict]:
    """Time each step of ``commands`` (keys from STEPS, plus optional 'reset')."""
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
            start = clock()
            try:
                status = runner(commands[step])
                error = None
            except Exception as exc:  # a callable step that raises is a failed step
                status, error = 1, f"{type(exc).__name__}: {exc}"
            seconds = clock() - start
            samples.append({"round": rnd, "step": step, "title": TITLES[step],
                            "seconds": seconds, "exit_code": status, "ok": status == 0,
                            "error": error,
                            "command": commands[step] if isinstance(commands[step], str)
                            else getattr(commands[step], "__name__", "callable")})
    return samples

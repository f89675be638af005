"""HTTP load with wrk: run it, parse its report, and the HTTP phase hook.

wrk runs with ``--latency`` and ``bench/wrk_report.lua``, which adds a
machine-readable block to wrk's report: exact counts, p50/p75/p90/p95/p99 and
the number of responses outside 2xx (wrk's own "Non-2xx or 3xx responses"
only counts status >= 400). The parser reads that block when present and
falls back on wrk's text report otherwise.

Headers: a URL on https reaches nginx, which sets X-Forwarded-Proto itself (and
replaces a client's); a URL on http reaches Gunicorn directly, whose demo trusts the
machine as its proxy, so wrk sends ``X-Forwarded-Proto: https`` to stand in for TLS
(Django's SECURE_SSL_REDIRECT would answer 301 otherwise). wrk does the TLS
handshake itself and verifies no certificate: the demo's is self-signed.

Errors of a run = responses outside 2xx + socket errors (connect, read,
write, timeout). A wrk that could not run at all (e.g. "unable to connect")
is a sample with 0 requests/s and ``failed`` set.

Usable alone against any URL:

    .venv/bin/python -m bench.wrk https://127.0.0.1:8443/ -d 10 -c 16
    .venv/bin/python -m bench.wrk http://127.0.0.1:8000/ -d 10 -c 16   # Gunicorn, past nginx
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from bench import memory
from bench.progress import human

LUA_SCRIPT = Path(__file__).with_name("wrk_report.lua")
# For plain-HTTP URLs only (Gunicorn past nginx): see default_headers().
DEFAULT_HEADERS = {"X-Forwarded-Proto": "https"}

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")
_BLOCK = re.compile(r"^--- stacktune-bench ---\n(.*?)^--- end ---", re.M | re.S)
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+\w+), ", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_PCT = re.compile(r"^\s+(50|75|90|99)%\s+(\S+)$", re.M)
_LATENCY = re.compile(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", re.M)


def to_ms(text: str) -> float:
    """wrk's '4.57ms', '69.00us', '1.92s' in milliseconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(text: str) -> dict:
    """requests/s, latency percentiles (ms) and errors of one wrk run."""
    out: dict = {"requests_per_s": 0.0, "requests": 0, "duration_s": None,
                 "latency_avg_ms": None, "latency_stdev_ms": None, "latency_max_ms": None,
                 "p50_ms": None, "p75_ms": None, "p90_ms": None, "p95_ms": None,
                 "p99_ms": None, "non2xx": 0, "errors_connect": 0, "errors_read": 0,
                 "errors_write": 0, "errors_timeout": 0}
    rps = _RPS.search(text)
    out["failed"] = rps is None
    if rps:
        out["requests_per_s"] = float(rps.group(1))
    total = _TOTAL.search(text)
    if total:
        out["requests"] = int(total.group(1))
        out["duration_s"] = to_ms(total.group(2)) / 1000
    latency = _LATENCY.search(text)
    if latency:
        out["latency_avg_ms"] = to_ms(latency.group(1))
        out["latency_stdev_ms"] = to_ms(latency.group(2))
        out["latency_max_ms"] = to_ms(latency.group(3))
    for pct, value in _PCT.findall(text):
        out[f"p{pct}_ms"] = to_ms(value)
    socket = _SOCKET.search(text)
    if socket:
        for key, value in zip(("connect", "read", "write", "timeout"), socket.groups(),
                              strict=True):
            out[f"errors_{key}"] = int(value)
    non2xx = _NON2XX.search(text)
    if non2xx:  # wrk's own count: status >= 400 only
        out["non2xx"] = int(non2xx.group(1))
    block = _BLOCK.search(text)
    if block:
        fields = dict(line.split(None, 1) for line in block.group(1).splitlines() if line.strip())
        us = {k: float(v) for k, v in fields.items()}
        out["requests"] = int(us["requests"])
        out["duration_s"] = us["duration_us"] / 1e6
        if out["duration_s"]:
            out["requests_per_s"] = us["requests"] / out["duration_s"]
        out["non2xx"] = int(us["non2xx"])
        for key in ("connect", "read", "write", "timeout"):
            out[f"errors_{key}"] = int(us[f"errors_{key}"])
        out["latency_avg_ms"] = us["latency_mean_us"] / 1000
        out["latency_stdev_ms"] = us["latency_stdev_us"] / 1000
        out["latency_max_ms"] = us["latency_max_us"] / 1000
        for pct in ("50", "75", "90", "95", "99"):
            out[f"p{pct}_ms"] = us[f"p{pct}_us"] / 1000
    out["socket_errors"] = sum(out[f"errors_{k}"] for k in ("connect", "read", "write",
                                                             "timeout"))
    out["errors"] = out["non2xx"] + out["socket_errors"]
    if out["failed"]:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        out["error_message"] = lines[-1] if lines else "wrk printed nothing"
    return out


def default_headers(url: str) -> dict[str, str]:
    """The headers a run sends when its config names none: X-Forwarded-Proto for http
    URLs (the stand-in for the TLS proxy), none for https URLs (nginx sets it)."""
    return {} if url.lower().startswith("https://") else dict(DEFAULT_HEADERS)


def wrk_args(url: str, *, duration: int = 30, connections: int = 32, threads: int = 2,
             headers: Mapping[str, str] | None = None, timeout: int = 10,
             wrk: str = "wrk") -> list[str]:
    args = [wrk, "-t", str(threads), "-c", str(max(connections, threads)), "-d", f"{duration}s",
            "--timeout", f"{timeout}s", "--latency", "-s", str(LUA_SCRIPT)]
    for name, value in (default_headers(url) if headers is None else headers).items():
        args += ["-H", f"{name}: {value}"]
    args.append(url)
    return args


def run_wrk(url: str, *, duration: int = 30, connections: int = 32, threads: int = 2,
            headers: Mapping[str, str] | None = None, timeout: int = 10) -> dict:
    """Run wrk once against ``url`` and return the parsed sample (with the command)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk)")
    args = wrk_args(url, duration=duration, connections=connections, threads=threads,
                    headers=headers, timeout=timeout, wrk=wrk)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration + 120,
                          check=False)
    sample = parse_wrk(proc.stdout + "\n" + proc.stderr)
    sample.update(url=url, connections=connections, threads=threads, exit_code=proc.returncode,
                  command=" ".join(args[1:]))
    return sample


# --- the HTTP phase ---------------------------------------------------------

class Sampler(Protocol):
    def start(self) -> None: ...
    def stop(self) -> dict: ...


def stack_budget(stack: Mapping, shell: Callable[[str], None]) -> dict[str, int] | None:
    """The plan's budget per service for a stack with a ``plan`` command (run after its
    setup; ``{path}`` in it is where it writes the plan JSON), else None."""
    if not stack.get("plan"):
        return None
    with tempfile.TemporaryDirectory(prefix="stacktune-plan-") as tmp:
        path = Path(tmp) / "plan.json"
        shell(stack["plan"].replace("{path}", str(path)))
        plan = json.loads(path.read_text())
    return memory.plan_budget(plan, stack.get("plan_host"))


def run_http_phase(config: Mapping, *, rounds: int, say: Callable[[str], None] = print,
                   runner: Callable[..., dict] = run_wrk,
                   shell: Callable[[str], None] | None = None,
                   samples: list[dict] | None = None,
                   sampler: Callable[..., Sampler] = memory.MemorySampler) -> list[dict]:
    """Interleaved wrk runs over the stacks and endpoints of ``config``.

    ``config`` (JSON, see bench/http.json)::

        {"stacks": [{"name": "default", "base_url": "https://127.0.0.1:8443",
                     "setup": "shell command (optional)", "teardown": "...",
                     "headers": {"Name": "value"}}, ...],
         "endpoints": [{"name": "list", "path": "/items/"}, ...],
         "headers": {"Name": "value"},
         "duration": 30, "warmup": 5, "connections": 32, "threads": 2,
         "memory": {"container": "stacktune-demo", "interval": 0.5}}

    ``headers``: a stack's own, else the config's, else default_headers() of
    each URL. For each round, each stack: run its ``setup`` (untimed), then for
    each endpoint a warm-up run (discarded) and a measured run; then
    ``teardown``. A stack without ``setup`` runs on what the stack before it
    deployed (the same deployment reached another way, e.g. past nginx).
    Samples are appended to ``samples`` (a new list by default) as they come, so
    a caller that passes its own keeps the runs done before a failed setup.

    ``memory``: each measured run (not the warm-up) samples the memory of each
    service in that container (bench/memory.py) into the sample's ``memory``. A
    stack's ``plan`` (shell command, run after its setup, writing the plan JSON to
    ``{path}``; ``plan_host`` names the host when the plan has several) adds the
    plan's budget per service, ``memory.budget_bytes``.
    """
    run_shell = shell or _shell
    stacks: Sequence[Mapping] = config["stacks"]
    endpoints: Sequence[Mapping] = config["endpoints"]
    config_headers = config.get("headers")
    duration = int(config.get("duration", 30))
    warmup = int(config.get("warmup", 5))
    connections = int(config.get("connections", 32))
    threads = int(config.get("threads", 2))
    memory_config = config.get("memory") or {}
    samples = [] if samples is None else samples
    total = rounds * len(stacks) * len(endpoints)
    done = 0
    for rnd in range(1, rounds + 1):
        for stack in stacks:
            if stack.get("setup"):
                run_shell(stack["setup"])
            headers = stack.get("headers", config_headers)
            try:
                budget = stack_budget(stack, run_shell)
                for endpoint in endpoints:
                    done += 1
                    url = stack["base_url"].rstrip("/") + endpoint["path"]
                    left = (total - done + 1) * (duration + warmup)
                    say(f"[http {done}/{total}] round {rnd} {stack['name']} {endpoint['name']} "
                        f"({duration} s) — about {human(left)} left")
                    if warmup:
                        runner(url, duration=warmup, connections=connections, threads=threads,
                               headers=headers)
                    watch = None
                    if memory_config.get("container"):
                        watch = sampler(memory_config["container"],
                                        interval=float(memory_config.get("interval", 0.5)))
                        watch.start()
                    try:
                        sample = runner(url, duration=duration, connections=connections,
                                        threads=threads, headers=headers)
                    finally:
                        used = watch.stop() if watch else None
                    if used is not None:
                        sample["memory"] = {**used, "budget_bytes": budget}
                    sample.update(round=rnd, stack=stack["name"], endpoint=endpoint["name"])
                    samples.append(sample)
            finally:
                if stack.get("teardown"):
                    run_shell(stack["teardown"])
    return samples


def _shell(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wrk",
                                     description="Run wrk once and print the parsed sample.")
    parser.add_argument("url")
    parser.add_argument("-d", "--duration", type=int, default=10)
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-H", "--header", action="append", default=None,
                        help="'Name: value' (default: X-Forwarded-Proto: https for an http "
                        "URL, none for https)")
    args = parser.parse_args(argv)
    headers = None
    if args.header is not None:
        headers = dict(h.split(":", 1) for h in args.header)
        headers = {k.strip(): v.strip() for k, v in headers.items()}
    sample = run_wrk(args.url, duration=args.duration, connections=args.connections,
                     threads=args.threads, headers=headers)
    json.dump(sample, sys.stdout, indent=2)
    print()
    return 0 if not sample["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())

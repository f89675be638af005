"""The query recorder's overhead: the same HTTP load with it off and on, interleaved.

Runs against a deployed demo whose settings configure the recorder (the app play with
``-e django_settings_query_recorder=true``, as inventory/demo does), in a container:

    .venv/bin/python -m bench.recorder --container stacktune-one-bookworm --rounds 3

Each round runs one phase per sample rate, in a rotated order: the rate is written into
the deployed settings module (``"SAMPLE_RATE": r``; 0 means off: the middleware raises
MiddlewareNotUsed and is not even in the chain), Gunicorn is reloaded, and a load
generator inside the container (loopback, keep-alive connections) requests the page for
a fixed time. The settings module is restored at the end. Writes results.json and
results.md to --out (default bench/results/<UTC time>-recorder).

``run_overhead_phase`` is the benchmark's phase (``scripts/bench --recorder-config
bench/recorder.json``): wrk on this machine against the demo's published port, and the
container's CPU time per request from its cgroup (Gunicorn, PgBouncer, PostgreSQL and
Redis together; the load generator's CPU is not in it). CPU per request holds up on a
busy machine where req/s does not: a contended container serves fewer requests, but
each costs about the same CPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

SETTINGS = "/srv/app/src/demo_site/stacktune_settings.py"
SERVICE = "stacktune-gunicorn"
RATE_LINE = '    "SAMPLE_RATE": '

# Threads of keep-alive HTTP/1.1 requests for `seconds`; prints requests and latencies.
LOAD = r"""
import http.client, json, sys, threading, time
path, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
headers = {"X-Forwarded-Proto": "https", "Host": "localhost"}
latencies, errors, lock = [], [0], threading.Lock()
def worker():
    conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=30)
    mine, bad, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse(); response.read()
            if response.status != 200: bad += 1
        except Exception:
            bad += 1; conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=30)
        mine.append(time.perf_counter() - start)
    with lock:
        latencies.extend(mine); errors[0] += bad
started = time.monotonic()
pool = [threading.Thread(target=worker) for _ in range(threads)]
for t in pool: t.start()
for t in pool: t.join()
print(json.dumps({"requests": len(latencies), "errors": errors[0],
                  "seconds": time.monotonic() - started, "latencies": latencies}))
"""


def _exec(container: str, *argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["docker", "exec", "-i", container, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        raise SystemExit(f"bench.recorder: {' '.join(argv[:3])} failed: {result.stderr[-500:]}")
    return result.stdout


def _set_rate(container: str, rate: float) -> None:
    text = _exec(container, "cat", SETTINGS)
    lines = text.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith(RATE_LINE)]
    if len(at) != 1:
        raise SystemExit(
            "bench.recorder: the deployed settings do not configure the query recorder; "
            "run the app play with -e django_settings_query_recorder=true first"
        )
    lines[at[0]] = f"{RATE_LINE}{rate!r},\n"
    _exec(container, "sh", "-c", f"cat > {SETTINGS}", stdin="".join(lines))
    _exec(container, "systemctl", "reload", SERVICE)
    _wait_for_new_workers(container)


def _wait_for_new_workers(container: str) -> None:
    """After a reload the old workers finish; wait until the page answers steadily."""
    deadline = time.monotonic() + 60
    time.sleep(3)
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [
                "docker",
                "exec",
                container,
                "python3",
                "-c",
                "import urllib.request as u; r = u.urlopen(u.Request('http://127.0.0.1:8000/healthz'),"
                " timeout=5); print(r.status)",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "200":
            time.sleep(2)
            return
        time.sleep(1)
    raise SystemExit("bench.recorder: the app did not answer within 60 s of the reload")


def _phase(container: str, path: str, seconds: float, threads: int, warmup: float) -> dict:
    if warmup > 0:
        _exec(container, "python3", "-c", LOAD, path, str(warmup), str(threads))
    data = json.loads(_exec(container, "python3", "-c", LOAD, path, str(seconds), str(threads)))
    latencies = sorted(data.pop("latencies"))
    n = len(latencies)
    return {
        **data,
        "rps": n / data["seconds"],
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
    }


# --- the benchmark phase: wrk from this machine, CPU from the container's cgroup ---------

CGROUP_CPU = (
    # cgroup v1 (cgroupfs driver, then systemd driver): nanoseconds
    ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage", "ns"),
    ("/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage", "ns"),
    ("/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage", "ns"),
    # cgroup v2: cpu.stat's usage_usec
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat", "stat"),
    ("/sys/fs/cgroup/docker/{id}/cpu.stat", "stat"),
)


def container_cpu_reader(container: str) -> Callable[[], float]:
    """A function returning the container's CPU time so far (seconds, all its processes:
    Gunicorn, PgBouncer, PostgreSQL, Redis), read from its cgroup on this machine."""
    cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", container], capture_output=True,
                         text=True, check=True).stdout.strip()
    for pattern, kind in CGROUP_CPU:
        path = Path(pattern.format(id=cid))
        if path.exists():
            return functools.partial(_usage_ns if kind == "ns" else _usage_usec, path)
    raise RuntimeError(f"no CPU accounting file for {container} under /sys/fs/cgroup "
                       "(cgroup v1 cpuacct or v2 cpu.stat)")


def _usage_ns(path: Path) -> float:
    return int(path.read_text()) / 1e9


def _usage_usec(path: Path) -> float:
    for line in path.read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    raise RuntimeError(f"{path}: no usage_usec")


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize_overhead(phases: list[dict], rates: list[float]) -> list[dict]:
    """Per path and rate: medians and min-max of CPU per request and req/s; the change of
    the medians against the first rate (off)."""
    rows = []
    for path in dict.fromkeys(p["path"] for p in phases):
        base = None
        for rate in rates:
            mine = [p for p in phases if p["path"] == path and p["rate"] == rate
                    and p["requests"]]
            if not mine:
                continue
            cpu = _spread([p["cpu_ms_per_request"] for p in mine])
            rps = _spread([p["requests_per_s"] for p in mine])
            row = {"path": path, "rate": rate, "rounds": len(mine), "cpu_ms_per_request": cpu,
                   "requests_per_s": rps,
                   "p50_ms": statistics.median(p["p50_ms"] for p in mine),
                   "p99_ms": statistics.median(p["p99_ms"] for p in mine),
                   "errors": sum(p["errors"] for p in mine)}
            if base is None:
                base = row
            row["cpu_vs_off_pct"] = 100.0 * (cpu["median"] / base["cpu_ms_per_request"]
                                             ["median"] - 1.0)
            row["rps_vs_off_pct"] = 100.0 * (rps["median"] / base["requests_per_s"]
                                             ["median"] - 1.0)
            rows.append(row)
    return rows


def run_overhead_phase(config: Mapping, *, say: Callable[[str], None] = print,
                       shell: Callable[[str], None] | None = None) -> dict:
    """The recorder off, at the default rate and at rate 1, per path, rounds interleaved
    (the order rotates each round); wrk runs on this machine against the published port,
    so the container's CPU time is the stack's alone."""
    from bench.wrk import run_wrk  # wrk is needed by this phase only

    cfg = {"rates": [0.0, 0.05, 1.0], "rounds": 5, "duration": 15, "warmup": 3,
           "connections": 8, "threads": 2, **config}
    if cfg.get("setup"):
        say(f"[recorder] deploying the demo: {cfg['setup']}")
        (shell or (lambda c: subprocess.run(c, shell=True, check=True)))(cfg["setup"])
    container, rates = cfg["container"], [float(r) for r in cfg["rates"]]
    cpu_now = container_cpu_reader(container)
    original = _exec(container, "cat", SETTINGS)
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    phases: list[dict] = []
    total = cfg["rounds"] * len(rates) * len(cfg["paths"])
    try:
        for round_index in range(cfg["rounds"]):
            shift = round_index % len(rates)
            for rate in rates[shift:] + rates[:shift]:
                _set_rate(container, rate)
                for path in cfg["paths"]:
                    url = cfg["base_url"].rstrip("/") + path
                    say(f"[recorder {len(phases) + 1}/{total}] round {round_index + 1} "
                        f"rate {rate:g} {path} ({cfg['duration']} s)")
                    if cfg["warmup"]:
                        run_wrk(url, duration=cfg["warmup"], connections=cfg["connections"],
                                threads=cfg["threads"], headers=cfg.get("headers"))
                    cpu_before = cpu_now()
                    sample = run_wrk(url, duration=cfg["duration"],
                                     connections=cfg["connections"], threads=cfg["threads"],
                                     headers=cfg.get("headers"))
                    cpu_used = cpu_now() - cpu_before
                    sample.update(round=round_index + 1, rate=rate, path=path,
                                  cpu_seconds=cpu_used,
                                  loadavg=Path("/proc/loadavg").read_text().split()[:3],
                                  cpu_ms_per_request=(1000 * cpu_used / sample["requests"]
                                                      if sample["requests"] else None))
                    phases.append(sample)
                    say(f"    {sample['requests_per_s']:.1f} req/s, "
                        f"{sample['cpu_ms_per_request'] or 0:.2f} ms CPU/request, "
                        f"p50 {sample['p50_ms']} ms, errors {sample['errors']}")
    finally:
        _exec(container, "sh", "-c", f"cat > {SETTINGS}", stdin=original)
        _exec(container, "systemctl", "reload", SERVICE)
    return {"rates": rates, "rounds": cfg["rounds"], "duration": cfg["duration"],
            "connections": cfg["connections"], "paths": cfg["paths"],
            "load_average_start": load_start,
            "load_average_end": Path("/proc/loadavg").read_text().split()[:3],
            "phases": phases, "summary": summarize_overhead(phases, rates),
            "notes": cfg.get("notes", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recorder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--container", required=True, help="the container of the app host")
    parser.add_argument("--path", default="/?page=7", help="the page to load (default /?page=7)")
    parser.add_argument(
        "--rates",
        default="0,0.05,1",
        help="sample rates, comma-separated; 0 is off (default 0,0.05,1)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%MZ")
    out = args.out or Path(__file__).parent / "results" / f"{stamp}-recorder"
    original = _exec(args.container, "cat", SETTINGS)
    phases = []
    try:
        for round_index in range(args.rounds):
            order = rates[round_index % len(rates) :] + rates[: round_index % len(rates)]
            for rate in order:
                _set_rate(args.container, rate)
                result = _phase(args.container, args.path, args.seconds, args.threads, args.warmup)
                phases.append({"round": round_index + 1, "rate": rate, **result})
                print(
                    f"round {round_index + 1} rate {rate}: {result['rps']:.1f} req/s, "
                    f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                    f"errors {result['errors']}",
                    flush=True,
                )
    finally:
        _exec(args.container, "sh", "-c", f"cat > {SETTINGS}", stdin=original)
        _exec(args.container, "systemctl", "reload", SERVICE)
    summary = {}
    for rate in rates:
        mine = [p for p in phases if p["rate"] == rate]
        summary[str(rate)] = {
            "rps_median": statistics.median(p["rps"] for p in mine),
            "p50_ms_median": statistics.median(p["p50_ms"] for p in mine),
            "p99_ms_median": statistics.median(p["p99_ms"] for p in mine),
            "errors": sum(p["errors"] for p in mine),
        }
    base = summary[str(rates[0])]["rps_median"]
    for row in summary.values():
        row["rps_vs_first_pct"] = 100.0 * (row["rps_median"] / base - 1.0)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "path": args.path,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "threads": args.threads,
        "rates": rates,
        "when": stamp,
    }
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "phases": phases, "summary": summary}, indent=2) + "\n"
    )
    lines = [
        f"# Query recorder overhead ({args.path}, {args.threads} threads, "
        f"{args.rounds} rounds x {args.seconds:.0f} s, interleaved)",
        "",
        f"| sample rate | req/s (median) | vs rate {rates[0]:g} | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for rate, row in summary.items():
        lines.append(
            f"| {rate} | {row['rps_median']:.1f} | {row['rps_vs_first_pct']:+.1f} % | "
            f"{row['p50_ms_median']:.1f} | {row['p99_ms_median']:.1f} | {row['errors']} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
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

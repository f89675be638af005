"""The query recorder's CPU cost per request, in one process (no HTTP, no Redis).

HTTP load on a small shared machine is noisy; this measures what the middleware itself
adds: the demo on SQLite (a temporary copy of the small data set), Django's test client,
the same page requested with the recorder off (rate 0: not in the chain) and at rate 1
(every request counted, its shapes normalized, the totals kept in process: the Redis
round trip is not included), interleaved in rounds, CPU time per request
(time.process_time). Run from the repository root:

    .venv/bin/python -m bench.recorder_cpu [--requests 300] [--rounds 5] [--path /]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.test.utils import setup_test_environment

path, requests, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
setup_test_environment()
call_command("migrate", verbosity=0)
call_command("load_demo_data", authors=20, categories=8, articles=200, comments=800,
             stdout=open("/dev/null", "w"))
recorder = "stacktune_queries.QueryShapeMiddleware"


def run(rate):
    overrides = {"DEMO_NAIVE": True}
    if rate:
        overrides.update(MIDDLEWARE=[*settings.MIDDLEWARE, recorder],
                         STACKTUNE_QUERY_RECORDER={"SAMPLE_RATE": rate})
    with override_settings(**overrides):
        client = Client()
        client.get(path, secure=True)  # load the middleware chain, warm the caches
        start = time.process_time()
        for _ in range(requests):
            assert client.get(path, secure=True).status_code == 200
        return (time.process_time() - start) / requests


phases = []
for index in range(rounds):
    for rate in ((0.0, 1.0) if index % 2 == 0 else (1.0, 0.0)):
        phases.append({"round": index + 1, "rate": rate, "cpu_seconds_per_request": run(rate)})
print(json.dumps(phases))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recorder_cpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--path", default="/", help="the page (default /, 4-5 queries)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(ROOT / "demo"), str(ROOT / "templates")]),
            DJANGO_SETTINGS_MODULE="demo_site.settings",
            DATABASE_URL=f"sqlite:///{Path(tmp) / 'demo.sqlite3'}",
            DJANGO_ALLOWED_HOSTS="testserver",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
            DJANGO_LOG_LEVEL="ERROR",
        )
        result = subprocess.run(
            [sys.executable, "-c", CHILD, args.path, str(args.requests), str(args.rounds)],
            cwd=ROOT / "demo",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        return 1
    phases = json.loads(result.stdout.strip().splitlines()[-1])
    off = statistics.median(p["cpu_seconds_per_request"] for p in phases if p["rate"] == 0.0)
    on = statistics.median(p["cpu_seconds_per_request"] for p in phases if p["rate"] == 1.0)
    print(
        json.dumps(
            {"path": args.path, "requests": args.requests, "rounds": args.rounds, "phases": phases},
            indent=2,
        )
    )
    print(
        f"{args.path}: CPU per request, median of {args.rounds} rounds: off {off * 1e6:.0f} us, "
        f"rate 1 {on * 1e6:.0f} us, the recorder adds {(on - off) * 1e6:.0f} us "
        f"({100 * (on / off - 1):+.1f} %); at rate r it adds r times that on average"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

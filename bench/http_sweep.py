"""scripts/bench --http-sweep: the best app-tier settings for the demo stack under wrk, and
the plan's distance from them, page by page.

The swept settings are the app tier's: Gunicorn workers and threads, PgBouncer's pool size,
Django's CONN_MAX_AGE and its cache (Redis or a per-process LocMemCache). Each point is
deployed as ``stacktune_overrides`` on top of the plan, so the engine checks it like any
override: a point the host's memory cannot hold is refused before any change, and counts as
a failed trial. Every endpoint of the HTTP config then gets a warm-up and a measured wrk run.

The search (bench/sweep.py's, optuna TPE) maximizes the geometric mean of req/s over the
pages, from two start points: stacktune's plan and the untuned app tier (one sync-like
worker, no connection reuse, per-process cache). The best few points then run beside
stacktune's plan in interleaved rounds; each page gets its own best (highest median req/s)
and ``http.<page>.stacktune_over_best``.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench import sweep, wrk
from bench.schedule import interleave
from bench.sweep import Dimension
from stacktune.units import parse_pg_duration

CACHE_BACKENDS = {"redis": "django_redis.cache.RedisCache",
                  "locmem": "django.core.cache.backends.locmem.LocMemCache"}
CONN_MAX_AGE_CHOICES = ("0", "60", "600")


def space(cpus: float) -> list[Dimension]:
    """The app tier's settings, for an app host with ``cpus`` CPUs."""
    if cpus <= 0:
        raise ValueError(f"cpus must be positive, got {cpus}")
    return [
        Dimension("gunicorn.workers", 1, max(4, int(4 * cpus) + 1),
                  why="processes: parallel Python, each with its own memory"),
        Dimension("gunicorn.threads", 1, 8, why="concurrent requests per process (I/O waits)"),
        Dimension("pgbouncer.default_pool_size", 1, 20,
                  why="server connections per database and user behind PgBouncer"),
        Dimension("django.CONN_MAX_AGE", choices=CONN_MAX_AGE_CHOICES,
                  why="a connection per request (0) or reused"),
        Dimension("django.CACHE_BACKEND", choices=tuple(CACHE_BACKENDS),
                  why="one shared Redis, or a cache per process"),
    ]


def services_plan(plan: Mapping) -> Mapping:
    """The planned services from `stacktune plan --format json` or the plan_dump playbook's
    output (the same under "plan"): one set of service settings for the whole stack."""
    section = plan.get("plan", plan)
    missing = [s for s in ("gunicorn", "pgbouncer", "django") if s not in section]
    if missing:
        raise ValueError(f"the plan has no {', '.join(missing)}: the HTTP sweep needs the "
                         "app tier, PgBouncer and Django planned")
    return section


def point_from_plan(dims: Sequence[Dimension], plan: Mapping) -> dict:
    """stacktune's own values of the swept settings."""
    point: dict = {}
    for d in dims:
        service, name = d.name.split(".", 1)
        value = plan[service][name]
        if d.name == "django.CACHE_BACKEND":
            value = next((k for k, v in CACHE_BACKENDS.items() if v == value), None)
            if value is None:
                raise ValueError(f"the plan's cache backend {plan[service][name]!r} is not one "
                                 f"the sweep knows ({sorted(CACHE_BACKENDS.values())})")
        point[d.name] = d.coordinate(str(value).strip("'"))
    return point


UNTUNED_APP = {"gunicorn.workers": 1, "gunicorn.threads": 1, "pgbouncer.default_pool_size": 1,
               "django.CONN_MAX_AGE": "0", "django.CACHE_BACKEND": "locmem"}


def overrides(settings: Mapping[str, str]) -> dict:
    """``stacktune_overrides`` for a point: {'gunicorn': {'workers': 5}, ...}."""
    out: dict[str, dict] = {}
    for key, value in settings.items():
        service, name = key.split(".", 1)
        if key == "django.CACHE_BACKEND":
            value = CACHE_BACKENDS[value]
        elif str(value).isdigit():
            value = int(value)
        out.setdefault(service, {})[name] = value
    return out


def geometric_mean(values: Sequence[float]) -> float:
    if not values or any(v <= 0 for v in values):
        return 0.0
    return math.exp(statistics.fmean(math.log(v) for v in values))


# A pool size that moves max_connections restarts PostgreSQL with PgBouncer paused. The
# role's bound (8 s) protects live users, and a loaded benchmark machine took longer. Every
# point, stacktune's included, gets the longest pause the kit's timeout chain allows:
# PAUSE + 1 s <= PgBouncer's query_wait_timeout, and statement_timeout + query_wait_timeout
# < Gunicorn's timeout (stacktune/timeout_chain.py). Neither acts unless a query waits.
def restart_pause_for(plan: Mapping) -> int:
    """The sweep's restart pause (s), from the plan's Gunicorn and statement timeouts."""
    gunicorn_s = int(str(plan["gunicorn"]["timeout"]).strip("'"))
    statement_s = parse_pg_duration(str(plan["postgresql_app_role"]["statement_timeout"]))
    pause = int(gunicorn_s - statement_s) - 2
    if pause < 8:
        raise ValueError(f"gunicorn.timeout {gunicorn_s} s and statement_timeout "
                         f"{statement_s:g} s leave no room for a restart pause longer than "
                         "the role's default (8 s)")
    return pause


Deploy = Callable[[Mapping[str, str] | None], None]
Runner = Callable[..., dict]


def shell_deploy(setup: str, pause_s: int) -> Deploy:
    """Deploy a point: the stack's setup command with the point's overrides as extra vars
    (None: the plan's values), and the sweep's restart pause (restart_pause_for)."""
    def deploy(settings: Mapping[str, str] | None) -> None:
        chosen = overrides(settings) if settings is not None else {}
        chosen.setdefault("pgbouncer", {})["query_wait_timeout"] = pause_s + 1
        extra = {"postgresql_restart_pause_timeout": pause_s, "stacktune_overrides": chosen}
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="stacktune-sweep-",
                                         delete=False) as handle:
            json.dump(extra, handle)
        try:
            subprocess.run(f"{setup} -e @{handle.name}", shell=True, check=True)
        finally:
            Path(handle.name).unlink(missing_ok=True)
    return deploy


def load_pages(config: Mapping, base_url: str, runner: Runner) -> dict[str, dict]:
    """A warm-up and a measured wrk run of every endpoint; the measured samples."""
    duration = int(config.get("duration", 30))
    warmup = int(config.get("warmup", 5))
    connections = int(config.get("connections", 32))
    threads = int(config.get("threads", 2))
    pages = {}
    for endpoint in config["endpoints"]:
        url = base_url.rstrip("/") + endpoint["path"]
        if warmup:
            runner(url, duration=warmup, connections=connections, threads=threads,
                   headers=config.get("headers"))
        pages[endpoint["name"]] = runner(url, duration=duration, connections=connections,
                                         threads=threads, headers=config.get("headers"))
    return pages


def page_ok(sample: Mapping) -> bool:
    """A run that answered, without socket errors or non-2xx answers."""
    errors = sum(int(sample.get(k) or 0) for k in ("non2xx", "errors_connect", "errors_read",
                                                    "errors_write", "errors_timeout"))
    return not sample.get("failed") and float(sample.get("requests_per_s") or 0) > 0 and \
        errors == 0


def measure_point(settings: Mapping[str, str] | None, *, deploy: Deploy, config: Mapping,
                  base_url: str, runner: Runner) -> dict:
    """Deploy a point and load every page: the search's sample (its score: the geometric
    mean of req/s over the pages; a page with errors fails the point)."""
    try:
        deploy(settings)
    except subprocess.CalledProcessError as exc:
        return {"completed": False, "score": 0.0,
                "error_message": f"the deploy failed (exit {exc.returncode}): the engine "
                "refused the point, or the converge failed; see its output above"}
    pages = load_pages(config, base_url, runner)
    ok = all(page_ok(p) for p in pages.values())
    rps = [float(p.get("requests_per_s") or 0) for p in pages.values()]
    return {"completed": ok, "score": geometric_mean(rps) if ok else 0.0, "pages": pages,
            "error_message": None if ok else "a page failed or answered with errors: " +
            ", ".join(n for n, p in pages.items() if not page_ok(p))}


def confirm(candidates: Mapping[str, Mapping[str, str] | None], *, rounds: int,
            measure: Callable[[Mapping[str, str] | None], Mapping],
            say: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Each candidate once per round (rotated); one sample per page and run."""
    samples = []
    for step in interleave(rounds, list(candidates), ["run"], rotate=True):
        result = measure(candidates[step.config])
        for page, sample in (result.get("pages") or {}).items():
            samples.append(dict(sample, round=step.round, config=step.config, endpoint=page,
                                completed=page_ok(sample)))
        say(f"    confirm round {step.round} {step.config}: "
            + ", ".join(f"{p} {float(s.get('requests_per_s') or 0):,.1f} req/s"
                        for p, s in (result.get("pages") or {}).items())
            + ("" if result.get("completed") else f" ({result.get('error_message')})"))
    return samples


def page_verdicts(samples: Sequence[Mapping], names: Sequence[str]) -> dict[str, dict]:
    """Per page: its best candidate and stacktune's paired ratios over it and the others."""
    out = {}
    for page in dict.fromkeys(s["endpoint"] for s in samples):
        mine = [s for s in samples if s["endpoint"] == page]
        present = [n for n in names if any(s["config"] == n for s in mine)]
        out[page] = sweep.verdict(mine, present, value="requests_per_s")
    return out


def run(config: Mapping, *, trials: int, top: int, rounds: int, seed: int = 42,
        say: Callable[[str], None] = print, runner: Runner = wrk.run_wrk,
        deploy: Deploy | None = None, restore: Callable[[], None] | None = None,
        plan_reader: Callable[[], Mapping] | None = None) -> dict:
    """The whole HTTP sweep over the config's ``stacktune`` stack (bench/http.json)."""
    stack = next((s for s in config["stacks"] if s["name"] == "stacktune"), None)
    if stack is None or not stack.get("setup") or not stack.get("plan"):
        raise ValueError("the HTTP config needs a 'stacktune' stack with 'setup' and 'plan' "
                         "commands for --http-sweep (see bench/http.json)")
    restore = restore or (lambda: subprocess.run(stack["setup"], shell=True, check=True))
    base_url = stack["base_url"]
    say("http sweep: deploying stacktune's plan to read its values")
    restore()
    plan = plan_reader() if plan_reader else _read_plan(stack)
    deploy = deploy or shell_deploy(stack["setup"], restart_pause_for(services_plan(plan)))
    # Workers scale with the app host's CPUs: the largest host's, as the plan read them.
    hosts = services_plan(plan).get("hosts") or {}
    dims = space(max((float(h.get("cpus") or 0) for h in hosts.values()), default=1.0) or 1.0)
    mine = point_from_plan(dims, services_plan(plan))
    starts = {"stacktune": mine, "untuned app tier": dict(UNTUNED_APP)}

    def measure(settings: Mapping[str, str] | None) -> dict:
        return measure_point(settings, deploy=deploy, config=config, base_url=base_url,
                             runner=runner)

    records = sweep.search(dims, starts, measure, {}, trials=trials, seed=seed, say=say,
                           score=lambda s: float(s.get("score") or 0),
                           unit="req/s (geometric mean over the pages)")
    best = sweep.top_points(records, top, exclude=[sweep.point_settings(dims, mine)])
    candidates: dict[str, Mapping[str, str] | None] = {"stacktune": None}
    for rank, record in enumerate(best, start=1):
        candidates[f"best-{rank}"] = record["settings"]
    samples = confirm(candidates, rounds=rounds, measure=measure, say=say)
    restore()  # the demo as the plan deploys it, without the sweep's pause bounds
    pages = page_verdicts(samples, list(candidates))
    swept = {"stacktune": sweep.point_settings(dims, mine),
             **{n: dict(s) for n, s in candidates.items() if s is not None}}
    for verdict in pages.values():
        verdict["differences"] = sweep.differences(dims, swept[verdict["best"]],
                                                   swept["stacktune"])
    return {"options": {"trials": trials, "top": top, "rounds": rounds, "seed": seed,
                        "sampler": "optuna TPE", "duration": config.get("duration"),
                        "warmup": config.get("warmup"),
                        "connections": config.get("connections")},
            "space": [{"name": d.name, "low": d.low, "high": d.high, "log": d.log,
                       "choices": list(d.choices), "why": d.why} for d in dims],
            "start_points": {n: sweep.point_settings(dims, p) for n, p in starts.items()},
            "trials": records, "candidates": swept, "confirm_samples": samples,
            "pages": pages}


def _read_plan(stack: Mapping) -> Mapping:
    with tempfile.TemporaryDirectory(prefix="stacktune-plan-") as tmp:
        path = Path(tmp) / "plan.json"
        subprocess.run(stack["plan"].replace("{path}", str(path)), shell=True, check=True)
        return json.loads(path.read_text())

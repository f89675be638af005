"""The HTTP sweep's logic (bench/http_sweep.py) with a stand-in deploy and load generator.

What is tested here is the search, the overrides it deploys, the confirm rounds and the
per-page verdicts; the engine that checks each point's overrides is the real one. The
measurements come from wrk against the demo (scripts/bench --http-sweep).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import http_sweep, report  # noqa: E402

CONFIG = {"stacks": [{"name": "untuned", "base_url": "https://127.0.0.1:8443", "setup": "x"},
                     {"name": "stacktune", "base_url": "https://127.0.0.1:8443",
                      "setup": "deploy", "plan": "dump {path}"}],
          "endpoints": [{"name": "list page", "path": "/?page=7"},
                        {"name": "JSON endpoint", "path": "/api/articles/"}],
          "duration": 10, "warmup": 2, "connections": 32, "threads": 2}


def demo_plan() -> dict:
    proc = subprocess.run([str(ROOT / "scripts" / "stacktune"), "plan", "--format", "json",
                           "--memory", "2GiB", "--cpus", "1.5"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout)


def test_the_space_scales_workers_with_cpus():
    dims = {d.name: d for d in http_sweep.space(2)}
    assert dims["gunicorn.workers"].high == 9
    assert dims["django.CACHE_BACKEND"].choices == ("redis", "locmem")
    assert {d.name: d.high for d in http_sweep.space(0.5)}["gunicorn.workers"] == 4
    with pytest.raises(ValueError, match="cpus must be positive"):
        http_sweep.space(0)


def test_stacktunes_start_point_is_the_plans_app_tier():
    plan = demo_plan()
    point = http_sweep.point_from_plan(http_sweep.space(1.5), http_sweep.services_plan(plan))
    assert point == {"gunicorn.workers": int(plan["gunicorn"]["workers"]),
                     "gunicorn.threads": int(plan["gunicorn"]["threads"]),
                     "pgbouncer.default_pool_size": int(plan["pgbouncer"]["default_pool_size"]),
                     "django.CONN_MAX_AGE": str(plan["django"]["CONN_MAX_AGE"]),
                     "django.CACHE_BACKEND": "redis"}
    with pytest.raises(ValueError, match="the plan has no gunicorn"):
        http_sweep.services_plan({"postgresql": {}})


def test_a_points_overrides_are_what_the_engine_accepts():
    settings = {"gunicorn.workers": "5", "gunicorn.threads": "4",
                "pgbouncer.default_pool_size": "10", "django.CONN_MAX_AGE": "0",
                "django.CACHE_BACKEND": "locmem"}
    overrides = http_sweep.overrides(settings)
    assert overrides == {"gunicorn": {"workers": 5, "threads": 4},
                         "pgbouncer": {"default_pool_size": 10},
                         "django": {"CONN_MAX_AGE": 0, "CACHE_BACKEND":
                                    "django.core.cache.backends.locmem.LocMemCache"}}
    args = [f"--set={svc}.{k}={v}" for svc, kv in overrides.items() for k, v in kv.items()]
    proc = subprocess.run([str(ROOT / "scripts" / "stacktune"), "plan", "--format", "json",
                           "--memory", "2GiB", "--cpus", "1.5", *args],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    plan = json.loads(proc.stdout)
    assert plan["gunicorn"]["workers"] == "5" and plan["pgbouncer"]["default_pool_size"] == "10"
    assert plan["django"]["CONN_MAX_AGE"] == 0
    assert plan["django"]["CACHE_BACKEND"].endswith("LocMemCache")


class FakeStack:
    """Deploys by remembering the point; wrk answers from a surface whose peak is 5 workers
    x 4 threads with Redis, and the JSON page prefers LocMemCache. More than 7 workers
    'does not fit in memory': the deploy fails, as the engine's refusal would."""

    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.current: dict | None = None
        self.deploys: list[dict | None] = []

    def deploy(self, settings):
        self.deploys.append(None if settings is None else dict(settings))
        if settings is not None and int(settings["gunicorn.workers"]) > 7:
            raise subprocess.CalledProcessError(2, "ansible-playbook")
        self.current = None if settings is None else {
            k: v for k, v in http_sweep.overrides(settings).items()}

    def runner(self, url, **_):
        plan = self.plan
        w = int((self.current or plan)["gunicorn"]["workers"])
        t = int((self.current or plan)["gunicorn"]["threads"])
        backend = (self.current or plan)["django"]["CACHE_BACKEND"]
        rps = 400 - 30 * abs(w - 5) - 20 * abs(t - 4)
        if "/api/" in url:
            rps *= 1.5 if backend.endswith("LocMemCache") else 1.0
        return {"requests_per_s": float(rps), "failed": False, "non2xx": 0, "p99_ms": 100.0}


def test_the_sweep_searches_confirms_and_gives_each_page_its_best():
    plan = demo_plan()
    stack = FakeStack(plan)
    said = []
    restored = []
    result = http_sweep.run(CONFIG, trials=8, top=2, rounds=2, seed=3, say=said.append,
                            runner=stack.runner, deploy=stack.deploy,
                            restore=lambda: restored.append(len(stack.deploys)),
                            plan_reader=lambda: {"plan": plan})
    trials = result["trials"]
    assert [t["start"] for t in trials[:2]] == ["stacktune", "untuned app tier"]
    assert len(trials) == 10
    assert all(t["start"] is None for t in trials[2:])
    failed = [t for t in trials if not t["completed"]]
    assert all(int(t["settings"]["gunicorn.workers"]) > 7 for t in failed)
    assert all("deploy failed" in t["error"] for t in failed)
    # The plan is deployed as it is first, and again after the last run.
    assert restored == [0, len(stack.deploys)]
    candidates = result["candidates"]
    assert set(candidates) == {"stacktune", "best-1", "best-2"}
    samples = result["confirm_samples"]
    assert len(samples) == 3 * 2 * 2  # candidates x rounds x pages
    pages = result["pages"]
    assert set(pages) == {"list page", "JSON endpoint"}
    for verdict in pages.values():
        best = verdict["medians"][verdict["best"]]["median"]
        mine = verdict["medians"]["stacktune"]["median"]
        assert verdict["stacktune_over_best"]["median"] == pytest.approx(mine / best)
        assert best >= mine
    ratios = report.comparison_summary({"http_sweep": result})
    assert set(ratios) == {"http.list page.stacktune_over_best",
                           "http.JSON endpoint.stacktune_over_best"}
    md = "\n".join(report.http_sweep_tables({"http_sweep": result}))
    assert "## HTTP sweep" in md and "| list page |" in md


def test_a_page_with_errors_fails_the_point():
    def runner(url, **_):
        return {"requests_per_s": 900.0, "failed": False,
                "non2xx": 3 if "/api/" in url else 0}

    result = http_sweep.measure_point({"gunicorn.workers": "2"}, deploy=lambda s: None,
                                      config=CONFIG, base_url="https://x", runner=runner)
    assert result["completed"] is False and result["score"] == 0.0
    assert "JSON endpoint" in result["error_message"]


def test_the_geometric_mean_is_zero_when_a_page_gave_nothing():
    assert http_sweep.geometric_mean([100.0, 400.0]) == pytest.approx(200.0)
    assert http_sweep.geometric_mean([100.0, 0.0]) == 0.0


def test_the_deploy_passes_the_points_overrides_and_a_longer_restart_pause(tmp_path):
    out = tmp_path / "extra.json"
    # The setup command gets "-e @FILE" appended: this one copies FILE.
    pause = http_sweep.restart_pause_for(demo_plan())
    assert pause == 13  # Gunicorn's 30 s - statement_timeout 15 s - 2
    deploy = http_sweep.shell_deploy(f"sh -c 'cp \"${{2#@}}\" {out}' sh", pause)
    deploy({"gunicorn.workers": "4", "django.CACHE_BACKEND": "redis"})
    extra = json.loads(out.read_text())
    assert extra == {"postgresql_restart_pause_timeout": pause,
                     "stacktune_overrides": {
                         "gunicorn": {"workers": 4},
                         "django": {"CACHE_BACKEND": "django_redis.cache.RedisCache"},
                         "pgbouncer": {"query_wait_timeout": pause + 1}}}
    deploy(None)
    assert json.loads(out.read_text()) == {
        "postgresql_restart_pause_timeout": pause,
        "stacktune_overrides": {"pgbouncer": {"query_wait_timeout": pause + 1}}}
    with pytest.raises(subprocess.CalledProcessError):
        http_sweep.shell_deploy("false", pause)(None)


def test_the_sweeps_pause_and_queue_wait_are_what_the_kits_timeout_chain_accepts():
    pause = http_sweep.restart_pause_for(demo_plan())
    proc = subprocess.run([str(ROOT / "scripts" / "stacktune"), "plan", "--format", "json",
                           "--memory", "2GiB", "--cpus", "1.5",
                           f"--set=pgbouncer.query_wait_timeout={pause + 1}"],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    from stacktune.timeout_chain import check_restart_pause
    assert check_restart_pause(pause, json.loads(proc.stdout)["pgbouncer"]) == pause

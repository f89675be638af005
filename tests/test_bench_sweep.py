"""The sweep's arithmetic (bench/sweep.py) and its report, without a server.

The search is driven here by a synthetic throughput function with a known optimum: what is
tested is the search, picking and pairing logic; the measurements themselves come from
pgbench on the bench container (scripts/bench --sweep, results under bench/results/).
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

from bench import report, sweep  # noqa: E402
from bench.run import make_settings, make_sweep_options, parse_args  # noqa: E402

MEMORY_MB = 4096


def stacktune_postgresql_plan() -> dict:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "stacktune"), "plan", "--format", "json", "--memory", "4GiB",
         "--cpus", "2", "--storage", "ssd", "--pg-version", "15", "--workload", "web",
         "--services", "postgresql,pgbouncer"],
        capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout)["postgresql"]


def test_the_space_scales_with_memory_and_refuses_a_tiny_server():
    dims = {d.name: d for d in sweep.space(MEMORY_MB)}
    assert set(dims) == {"shared_buffers", "work_mem", "max_wal_size", "checkpoint_timeout",
                         "random_page_cost", "effective_io_concurrency", "wal_compression"}
    assert dims["shared_buffers"].high == int(MEMORY_MB * 0.6)
    # 16 clients at the top work_mem stay under a quarter of memory.
    assert dims["work_mem"].high * 16 <= MEMORY_MB / 4
    assert {d.name: d.high for d in sweep.space(16384)}["shared_buffers"] == int(16384 * 0.6)
    with pytest.raises(ValueError, match="at least 512 MB"):
        sweep.space(256)


def test_the_three_start_points_read_each_configurations_values():
    dims = sweep.space(MEMORY_MB)
    plan = stacktune_postgresql_plan()
    mine = sweep.point_from_settings(dims, plan)
    settings = sweep.point_settings(dims, mine)
    # stacktune's values of the swept settings survive the trip through coordinates.
    for name in ("shared_buffers", "work_mem", "random_page_cost", "wal_compression"):
        assert settings[name] == plan[name], name
    assert settings["max_wal_size"] == "2048MB" and plan["max_wal_size"] == "2GB"
    assert settings["checkpoint_timeout"] == "15min" == plan["checkpoint_timeout"]
    default = sweep.point_settings(dims, sweep.point_from_settings(dims, {}))
    assert default == {"shared_buffers": "128MB", "work_mem": "4MB", "max_wal_size": "1024MB",
                       "checkpoint_timeout": "5min", "random_page_cost": "4",
                       "effective_io_concurrency": "1", "wal_compression": "off"}


def test_coordinates_clamp_into_the_range_and_read_wal_compression_on_as_pglz():
    dims = {d.name: d for d in sweep.space(MEMORY_MB)}
    assert dims["shared_buffers"].coordinate("16GB") == int(MEMORY_MB * 0.6)
    assert dims["max_wal_size"].coordinate("64MB") == 512
    assert dims["checkpoint_timeout"].coordinate("300") == 5  # seconds without a unit
    assert dims["wal_compression"].coordinate("on") == "pglz"
    assert dims["random_page_cost"].setting(1.23456) == "1.23"
    with pytest.raises(ValueError, match="wal_compression"):
        dims["wal_compression"].coordinate("brotli")


def synthetic_tps(settings) -> dict:
    """A throughput surface with its peak at shared_buffers 1000MB, work_mem 16MB, lz4;
    points with shared_buffers above 2000MB 'fail to start'."""
    sb = int(settings["shared_buffers"].removesuffix("MB"))
    wm = int(settings["work_mem"].removesuffix("MB"))
    if sb > 2000:
        return {"tps": 0.0, "completed": False, "error_message": "FATAL: could not map"}
    tps = 1000 - abs(sb - 1000) * 0.2 - abs(wm - 16) * 2
    tps += 30 if settings["wal_compression"] == "lz4" else 0
    return {"tps": tps, "completed": True}


def test_the_search_runs_the_start_points_first_then_samples_and_survives_failures():
    dims = sweep.space(MEMORY_MB)
    plan = stacktune_postgresql_plan()
    starts = {"default": sweep.point_from_settings(dims, {}),
              "pgtune": sweep.point_from_settings(dims, {"shared_buffers": "3000MB"}),
              "stacktune": sweep.point_from_settings(dims, plan)}
    seen = []

    def measure(settings):
        seen.append(dict(settings))
        return synthetic_tps(settings)

    records = sweep.search(dims, starts, measure, plan, trials=12, seed=7)
    assert [r["start"] for r in records[:3]] == ["default", "pgtune", "stacktune"]
    assert all(r["start"] is None for r in records[3:]) and len(records) == 15
    # Each trial runs stacktune's whole plan with the point's values on top.
    assert seen[2] == {**plan, **sweep.point_settings(dims, starts["stacktune"])}
    assert all(s["autovacuum_naptime"] == plan["autovacuum_naptime"] for s in seen)
    # PGTune's start point asked for 2,457 MB here: it "failed" and the search went on.
    assert records[1]["completed"] is False and records[1]["score"] == 0.0
    assert "could not map" in records[1]["error"]
    # Seeded: the same trials twice.
    again = sweep.search(dims, starts, synthetic_tps, plan, trials=12, seed=7)
    assert [r["settings"] for r in again] == [r["settings"] for r in records]


def test_top_points_are_distinct_completed_and_leave_out_stacktunes_own():
    rec = [{"settings": {"a": "1"}, "score": 50.0, "completed": True, "point": {}},
           {"settings": {"a": "2"}, "score": 90.0, "completed": True, "point": {}},
           {"settings": {"a": "2"}, "score": 80.0, "completed": True, "point": {}},
           {"settings": {"a": "3"}, "score": 99.0, "completed": False, "point": {}},
           {"settings": {"a": "4"}, "score": 70.0, "completed": True, "point": {}}]
    top = sweep.top_points(rec, 2, exclude=[{"a": "4"}])
    assert [t["settings"] for t in top] == [{"a": "2"}, {"a": "1"}]


def test_confirm_runs_every_configuration_once_per_round_rotated():
    order = []

    def measure(settings):
        order.append(settings["name"])
        return {"tps": {"stacktune": 100.0, "best-1": 110.0, "default": 50.0}[settings["name"]],
                "completed": True}

    configs = {n: {"name": n} for n in ("default", "stacktune", "best-1")}
    samples = sweep.confirm(configs, measure, rounds=3)
    assert order == ["default", "stacktune", "best-1", "stacktune", "best-1", "default",
                     "best-1", "default", "stacktune"]
    verdict = sweep.verdict(samples, list(configs))
    assert verdict["best"] == "best-1"
    entry = verdict["stacktune_over_best"]
    assert entry["rounds"] == 3 and entry["median"] == pytest.approx(100 / 110)
    assert verdict["stacktune_over"]["default"]["median"] == pytest.approx(2.0)


def test_when_stacktune_is_the_best_its_ratio_is_one_and_a_failed_run_counts_zero():
    samples = [{"round": 1, "config": "stacktune", "tps": 100.0, "completed": True},
               {"round": 1, "config": "best-1", "tps": 95.0, "completed": True},
               {"round": 2, "config": "stacktune", "tps": 104.0, "completed": True},
               {"round": 2, "config": "best-1", "tps": 500.0, "completed": False}]
    verdict = sweep.verdict(samples, ["stacktune", "best-1"])
    assert verdict["best"] == "stacktune"
    assert verdict["stacktune_over_best"]["median"] == 1.0
    assert verdict["medians"]["best-1"]["median"] == pytest.approx(47.5)


def sweep_results() -> dict:
    dims = sweep.space(MEMORY_MB)
    plan = stacktune_postgresql_plan()
    mine = sweep.point_settings(dims, sweep.point_from_settings(dims, plan))
    best = dict(mine, shared_buffers="1000MB")
    samples = []
    for rnd, (st, b, d, p) in enumerate([(100, 104, 60, 90), (98, 105, 61, 92)], start=1):
        samples += [{"round": rnd, "config": n, "tps": float(v), "completed": True}
                    for n, v in (("stacktune", st), ("best-1", b), ("default", d),
                                 ("pgtune", p))]
    verdict = sweep.verdict(samples, ["default", "pgtune", "stacktune", "best-1"])
    return {"mode": "sweep (quick)", "rounds": 2, "samples": [], "configs": [],
            "workloads": [],
            "environment": {"timestamp_utc": "2026-11-23T06:00:00Z", "host_cpus": 2},
            "sweep": {"options": {"trials": 3, "top": 1, "trial_duration": 4,
                                  "confirm_duration": 4, "confirm_rounds": 2, "seed": 42,
                                  "sampler": "optuna TPE"},
                      "start_points": {"default": {}, "pgtune": {}, "stacktune": mine},
                      "workloads": {"tpcb-s1": {
                          "trials": [{"completed": True}] * 5 + [{"completed": False}],
                          "candidates": {"stacktune": mine, "best-1": best},
                          "confirm_samples": samples, **verdict,
                          "differences": sweep.differences(dims, best, mine)}}}}


def test_the_report_carries_stacktune_over_best_with_its_spread():
    results = sweep_results()
    ratios = report.comparison_summary(results)
    best = ratios["tpcb-s1.stacktune_over_best"]
    assert best["rounds"] == 2
    assert best["min"] == pytest.approx(98 / 105) and best["max"] == pytest.approx(100 / 104)
    assert ratios["tpcb-s1.stacktune_over_default"]["median"] == pytest.approx(
        (100 / 60 + 98 / 61) / 2)
    text = "\n".join(report.summary_tables(results, ratios))
    assert "stacktune / best point found" in text
    assert "0.95x [0.93-0.96]" in text
    md = report.render_markdown(dict(results, summary={"ratios": ratios}))
    assert "## Sweep: stacktune against the best settings found" in md
    assert "shared_buffers 1000MB (stacktune 913MB)" in md
    assert "5/6" in md
    bars = report.ratio_bars(dict(results, summary={"ratios": ratios}))
    assert "tpcb-s1: stacktune / best point found" in [b["label"] for b in bars]


def test_sweep_options_default_per_mode_and_reject_an_unknown_workload():
    quick = parse_args(["--quick", "--sweep"])
    options = make_sweep_options(quick, make_settings(quick))
    assert (options.workloads, options.trials, options.top, options.duration) == \
        (("tpcb-s1",), 3, 1, 4)
    full = parse_args(["--sweep", "--sweep-trials", "10"])
    options = make_sweep_options(full, make_settings(full))
    assert options.workloads == ("tpcb-s1", "select-s1", "tpcb-s2") and options.trials == 10
    bad = parse_args(["--quick", "--sweep", "--sweep-workloads", "tpcb-s2"])
    with pytest.raises(SystemExit, match="--sweep-workloads tpcb-s2: not a workload"):
        make_sweep_options(bad, make_settings(bad))


def test_the_estimate_counts_every_run_with_its_restart_and_warm_up():
    # 1 workload: (3 + 2) search runs of 10 + 2 + 6 s, and (3 + 1) x 2 confirm runs of
    # 20 + 2 + 6 s.
    assert sweep.estimate_seconds(1, 2, 1, 2, 10, 20, 2) == 5 * 18 + 8 * 28

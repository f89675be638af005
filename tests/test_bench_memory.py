"""Peak memory per service in the HTTP phase: bench/memory.py, bench/memory_sampler.py.

No Docker: fixtures taken from the demo container.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import memory, memory_sampler, naive, report, wrk  # noqa: E402
from bench.run import finish, make_settings, parse_args  # noqa: E402

FIXTURES = ROOT / "bench" / "fixtures"
MiB = 1024 * 1024


# --- inside the container: what the sampler reads ----------------------------------

def test_v1_memory_stat_counts_anon_and_shmem_not_page_cache():
    # The memory.stat of PostgreSQL's unit in the demo container (cgroup v1).
    text = (FIXTURES / "memory-stat-v1-postgresql.txt").read_text()
    stat = dict(line.split() for line in text.splitlines())
    expected = int(stat["total_rss"]) + int(stat["total_shmem"])
    assert memory_sampler.stat_bytes(text) == expected
    # v1's cache holds shmem and the page cache; the page cache (the rest) is left out.
    assert int(stat["total_cache"]) > int(stat["total_shmem"])


def test_v1_memory_stat_without_totals_and_v2():
    assert memory_sampler.stat_bytes("cache 4096\nrss 8192\nshmem 1024\n") == 9216
    v2 = "anon 10485760\nfile 99999999\nkernel 5000\nshmem 2097152\nfile_mapped 77\n"
    assert memory_sampler.stat_bytes(v2) == 10485760 + 2097152


def test_smaps_rollup_pss():
    text = ("55d0c1a4e000-7ffd6b5f1000 ---p 00000000 00:00 0  [rollup]\n"
            "Rss:               25344 kB\nPss:               11829 kB\n"
            "Pss_Anon:           6704 kB\nShared_Clean:      14316 kB\n")
    assert memory_sampler.rollup_pss_bytes(text) == 11829 * 1024
    assert memory_sampler.rollup_pss_bytes("Rss: 1 kB\n") == 0


def test_unit_cgroup_v1_with_its_own_memory_cgroup():
    # /proc/PID/cgroup of the postmaster in the demo container (host cgroup namespace).
    text = (FIXTURES / "proc-cgroup-v1-postgresql.txt").read_text()
    paths = memory_sampler.parse_proc_cgroup(text)
    unit = "postgresql@15-main.service"
    assert paths["memory"].endswith("/system.slice/system-postgresql.slice/" + unit)
    assert paths["name=systemd"] == paths["memory"]
    source, path = memory_sampler.unit_source(unit, paths, v2=False, exists=lambda _: True)
    assert source == "cgroup-v1"
    assert path == "/sys/fs/cgroup/memory" + paths["memory"] + "/memory.stat"


def test_unit_without_its_own_memory_cgroup_falls_back_on_pss():
    # systemd without memory accounting: the memory controller stops at the container.
    text = ("12:memory:/docker/abc\n1:name=systemd:/docker/abc/system.slice/pgbouncer.service\n"
            "0::/docker/abc/system.slice/pgbouncer.service\n")
    paths = memory_sampler.parse_proc_cgroup(text)
    source, path = memory_sampler.unit_source("pgbouncer.service", paths, v2=False,
                                              exists=lambda _: True)
    assert (source, path) == (
        "pss", "/sys/fs/cgroup/systemd/docker/abc/system.slice/pgbouncer.service/cgroup.procs")


def test_unit_cgroup_v2():
    paths = memory_sampler.parse_proc_cgroup("0::/system.slice/redis-server.service\n")
    assert paths == {"": "/system.slice/redis-server.service"}
    assert memory_sampler.unit_source("redis-server.service", paths, v2=True,
                                      exists=lambda _: True) == (
        "cgroup-v2", "/sys/fs/cgroup/system.slice/redis-server.service/memory.stat")
    assert memory_sampler.unit_source("redis-server.service", paths, v2=True,
                                      exists=lambda _: False) == (
        "pss", "/sys/fs/cgroup/system.slice/redis-server.service/cgroup.procs")


# --- on the controller: the sampler's output, peaks, budgets ----------------------

def test_parse_samples_of_a_real_run_and_its_peaks():
    # Output of the sampler in the demo container during a wrk run, with a line that
    # is not JSON (as a cut exec would leave) appended.
    text = (FIXTURES / "memory-sampler.jsonl").read_text() + "\nWARNING: x\n{\"t\": 9, \"by"
    parsed = memory.parse_samples(text)
    assert set(parsed["sources"]) == {"postgresql", "pgbouncer", "redis", "gunicorn", "nginx"}
    assert all(u["source"] == "cgroup-v1" for units in parsed["sources"].values()
               for u in units)
    samples = parsed["samples"]
    assert len(samples) >= 10
    peaks = memory.peak_bytes(samples)
    for service in ("postgresql", "gunicorn", "nginx"):
        values = [s["bytes"][service] for s in samples]
        assert peaks[service] == max(values)


def test_peak_bytes_per_service_keeps_none_for_a_service_never_running():
    samples = [{"t": 0, "bytes": {"postgresql": 100, "redis": None, "gunicorn": 50}},
               {"t": 0.5, "bytes": {"postgresql": 300, "redis": None, "gunicorn": None}},
               {"t": 1.0, "bytes": {"postgresql": 200, "redis": None, "gunicorn": 70}}]
    assert memory.peak_bytes(samples) == {"postgresql": 300, "redis": None, "gunicorn": 70}
    assert memory.peak_bytes([]) == {}


def plan_with_budget(**budget) -> dict:
    base = {"usable_bytes": 2048 * MiB, "os_reserve_bytes": 204 * MiB,
            "postgresql_bytes": 0, "pgbouncer_bytes": 0, "redis_bytes": 0,
            "redis_maxmemory_bytes": 0, "gunicorn_bytes": 0, "gunicorn_workers": 0,
            "total_bytes": 0}
    return {"hosts": {"stacktune-demo": {"budget": {**base, **budget}}}}


def test_plan_budget_of_the_host_from_either_plan_shape():
    plan = plan_with_budget(postgresql_bytes=1000 * MiB, pgbouncer_bytes=32 * MiB,
                            redis_bytes=276 * MiB, gunicorn_bytes=400 * MiB)
    expected = {"postgresql": 1000 * MiB, "pgbouncer": 32 * MiB, "redis": 276 * MiB,
                "gunicorn": 400 * MiB}
    assert memory.plan_budget(plan) == expected
    assert memory.plan_budget({"plan": plan, "views": {}}, "stacktune-demo") == expected
    # A service not placed on the host (0 bytes) has no budget.
    assert memory.plan_budget(plan_with_budget(postgresql_bytes=5)) == {"postgresql": 5}


def test_plan_budget_names_the_host_when_it_cannot_choose():
    plan = plan_with_budget(postgresql_bytes=5)
    plan["hosts"]["db2"] = plan["hosts"]["stacktune-demo"]
    with pytest.raises(ValueError, match="plan_host"):
        memory.plan_budget(plan)
    with pytest.raises(ValueError, match="'web1' is not in the plan"):
        memory.plan_budget(plan, "web1")


def test_against_budget_ratio_and_over_flag():
    peaks = {"postgresql": 512 * MiB, "gunicorn": 450 * MiB, "nginx": 20 * MiB,
             "redis": None}
    budget = {"postgresql": 1024 * MiB, "gunicorn": 400 * MiB, "redis": 200 * MiB}
    out = memory.against_budget(peaks, budget)
    assert out["postgresql"] == {"peak_mib": 512.0, "budget_mib": 1024.0,
                                 "peak_over_budget": 0.5, "over_budget": False}
    assert out["gunicorn"]["peak_over_budget"] == pytest.approx(1.125)
    assert out["gunicorn"]["over_budget"] is True
    # nginx has no share in the plan; Redis did not run.
    assert out["nginx"] == {"peak_mib": 20.0, "budget_mib": None, "peak_over_budget": None,
                            "over_budget": None}
    assert out["redis"]["peak_mib"] is None and out["redis"]["over_budget"] is None
    assert memory.against_budget({"postgresql": MiB}, None)["postgresql"]["budget_mib"] is None


def http_sample(stack, endpoint, rnd, peaks, budget=None):
    return {"stack": stack, "endpoint": endpoint, "round": rnd, "requests_per_s": 10.0,
            "errors": 0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0,
            "memory": {"sources": {}, "samples": 20, "peak_bytes": peaks,
                       "budget_bytes": budget}}


def test_summary_takes_the_largest_peak_over_rounds():
    budget = {"postgresql": 100 * MiB, "gunicorn": 100 * MiB}
    samples = [
        http_sample("untuned", "list", 1, {"postgresql": 50 * MiB, "redis": None}),
        http_sample("stacktune", "list", 1, {"postgresql": 60 * MiB, "gunicorn": 90 * MiB},
                    budget),
        http_sample("untuned", "list", 2, {"postgresql": 70 * MiB, "redis": None}),
        http_sample("stacktune", "list", 2, {"postgresql": 40 * MiB, "gunicorn": 110 * MiB},
                    budget),
        {"stack": "stacktune", "endpoint": "json", "round": 1},  # no memory: not summarized
    ]
    out = memory.summarize(samples)
    assert list(out) == ["list"]
    assert out["list"]["untuned"]["postgresql"]["peak_mib"] == 70.0
    assert out["list"]["untuned"]["postgresql"]["budget_mib"] is None
    assert out["list"]["untuned"]["redis"]["peak_mib"] is None
    tuned = out["list"]["stacktune"]
    assert tuned["postgresql"] == {"peak_mib": 60.0, "budget_mib": 100.0,
                                   "peak_over_budget": 0.6, "over_budget": False}
    assert tuned["gunicorn"]["peak_over_budget"] == pytest.approx(1.1)
    assert tuned["gunicorn"]["over_budget"] is True


# --- the HTTP phase and the report --------------------------------------------------

class FakeSampler:
    log: ClassVar[list] = []

    def __init__(self, container, *, interval):
        self.container, self.interval = container, interval

    def start(self):
        self.log.append(("start", self.container, self.interval))

    def stop(self):
        self.log.append(("stop", self.container))
        return {"sources": {}, "samples": 3,
                "peak_bytes": {"postgresql": 300 * MiB, "gunicorn": 500 * MiB}}


def test_http_phase_samples_memory_during_the_measured_run_with_the_plans_budget():
    FakeSampler.log = []
    order = []

    def runner(url, *, duration, **_):
        order.append(("wrk", duration))
        FakeSampler.log.append(("wrk", duration))
        return {"requests_per_s": 1.0, "errors": 0}

    plan = plan_with_budget(postgresql_bytes=1000 * MiB, gunicorn_bytes=400 * MiB)
    commands = []

    def shell(command):
        commands.append(command)
        if command.startswith("dump "):
            Path(command.split()[1]).write_text(json.dumps({"plan": plan}))

    config = {"stacks": [{"name": "untuned", "base_url": "http://a", "setup": "up"},
                         {"name": "stacktune", "base_url": "http://a", "setup": "up",
                          "plan": "dump {path}"}],
              "endpoints": [{"name": "list", "path": "/"}], "duration": 4, "warmup": 1,
              "memory": {"container": "demo-x", "interval": 0.25}}
    samples = wrk.run_http_phase(config, rounds=1, say=lambda _: None, runner=runner,
                                 shell=shell, sampler=FakeSampler)
    # The warm-up (1 s) runs unsampled; the measured run (4 s) inside start/stop.
    assert FakeSampler.log == [("wrk", 1), ("start", "demo-x", 0.25), ("wrk", 4),
                               ("stop", "demo-x")] * 2
    assert commands[0] == "up" and commands[2].startswith("dump ")
    untuned, tuned = samples
    assert untuned["memory"]["peak_bytes"]["gunicorn"] == 500 * MiB
    assert untuned["memory"]["budget_bytes"] is None
    assert tuned["memory"]["budget_bytes"] == {"postgresql": 1000 * MiB,
                                               "gunicorn": 400 * MiB}


def test_http_phase_without_a_memory_container_samples_nothing():
    FakeSampler.log = []
    config = {"stacks": [{"name": "a", "base_url": "http://a"}],
              "endpoints": [{"name": "list", "path": "/"}], "duration": 1, "warmup": 0}
    samples = wrk.run_http_phase(config, rounds=1, say=lambda _: None,
                                 runner=lambda url, **_: {"requests_per_s": 1.0},
                                 shell=print, sampler=FakeSampler)
    assert FakeSampler.log == [] and "memory" not in samples[0]


def test_http_config_samples_the_demo_container_and_dumps_the_stacktune_plan():
    config = naive.expand(json.loads((ROOT / "bench" / "http.json").read_text()),
                          {"STACKTUNE_DEMO_NAME": "stacktune-demo-x"})
    assert config["memory"]["container"] == "stacktune-demo-x"
    plans = {s["name"]: s.get("plan") for s in config["stacks"]}
    assert plans["untuned"] is None
    assert "tests/playbooks/plan_dump.yml" in plans["stacktune"]
    assert "plan_dump_path={path}" in plans["stacktune"]


def test_results_and_markdown_flag_a_service_over_its_budget(tmp_path):
    budget = {"postgresql": 1000 * MiB, "gunicorn": 400 * MiB}
    results = {"samples": [], "configs": [], "workloads": [], "environment": {},
               "http": [
                   http_sample("untuned", "list page", 1,
                               {"postgresql": 80 * MiB, "gunicorn": 90 * MiB, "nginx": 12 * MiB}),
                   http_sample("stacktune", "list page", 1,
                               {"postgresql": 300 * MiB, "gunicorn": 450 * MiB,
                                "nginx": 15 * MiB}, budget)]}
    s = make_settings(parse_args(["--skip-pgbench", "--out", str(tmp_path)]))
    finish(results, s, 0.0)
    entry = results["summary"]["http_memory"]["list page"]["stacktune"]
    assert entry["gunicorn"]["over_budget"] is True
    assert entry["postgresql"]["peak_over_budget"] == pytest.approx(0.3)
    text = "\n".join(report.http_tables(results))
    assert "| stack | postgresql | gunicorn | nginx |" in text
    assert "| untuned | 80.0 | 90.0 | 12.0 |" in text
    assert "| stacktune | 300.0 / 1,000.0 (30 %) | 450.0 / 400.0 (112 %) **over budget** | " \
           "15.0 |" in text
    assert text.count("over budget") == 1

"""The benchmark's naive-mode and query-recorder phases: their configs, the demo container's
name and port from the environment, the summaries and tables. No Docker (the phases
themselves run in `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import naive, recorder, report  # noqa: E402
from bench.run import parse_args  # noqa: E402

ANSIBLE = Path(sys.executable).parent / "ansible"


def load(name: str, environ: dict) -> dict:
    return naive.expand(json.loads((ROOT / "bench" / name).read_text()), environ)


def test_expand_defaults_and_values():
    assert naive.expand("http://127.0.0.1:${STACKTUNE_DEMO_PORT:-8000}/", {}) == \
        "http://127.0.0.1:8000/"
    assert naive.expand(["${A:-x}", {"k": "${A}"}, 3], {"A": "y"}) == ["y", {"k": "y"}, 3]
    assert naive.expand("${MISSING}", {}) == ""


# The HTTP phase goes through nginx (the demo's HTTPS port); the naive and recorder
# phases reach Gunicorn directly.
@pytest.mark.parametrize(("name", "moved", "default"), [
    ("http.json", "https://127.0.0.1:8453", "https://127.0.0.1:8443"),
    ("naive.json", "http://127.0.0.1:8010", "http://127.0.0.1:8000"),
    ("recorder.json", "http://127.0.0.1:8010", "http://127.0.0.1:8000")])
def test_bench_configs_follow_the_demo_port(name, moved, default):
    config = load(name, {"STACKTUNE_DEMO_PORT": "8010", "STACKTUNE_DEMO_HTTPS_PORT": "8453",
                         "STACKTUNE_DEMO_NAME": "demo-b"})
    urls = [s["base_url"] for s in config.get("stacks", [])] or [config["base_url"]]
    assert urls and all(url == moved for url in urls)
    if "container" in config:
        assert config["container"] == "demo-b"
    defaults = load(name, {})
    urls = [s["base_url"] for s in defaults.get("stacks", [])] or [defaults["base_url"]]
    assert all(url == default for url in urls)


def test_naive_config_pages_and_recorder_rates():
    pages = load("naive.json", {})["pages"]
    assert [p["path"] for p in pages if p.get("kind", "naive") == "naive"] == [
        "/naive/articles/", "/naive/comments/?author={author}", "/naive/archive/?page=450"]
    fixed = {p["fixes"]: p["path"] for p in pages if p.get("kind") == "fixed"}
    assert fixed == {"N+1": "/naive/articles/fixed/",
                     "deep OFFSET": "/naive/archive/keyset/?after={archive_key:450}"}
    # Every fix the report names has its after: a fixed variant, or the index.
    assert {p["name"]: p["fixed_by"] for p in pages if p.get("fixed_by")} == {
        "N+1": "code", "unindexed filter": "index", "deep OFFSET": "code"}
    rec = load("recorder.json", {})
    assert rec["rates"] == [0, 0.05, 1] and rec["rounds"] >= 3


def test_make_bench_runs_the_phases_and_quick_does_not():
    makefile = (ROOT / "Makefile").read_text().split("\n\n")
    bench = next(block for block in makefile if "\nbench: " in f"\n{block}")
    quick = next(block for block in makefile if "bench-quick:" in block)
    assert "--naive-config bench/naive.json" in bench
    assert "--recorder-config bench/recorder.json" in bench
    assert "naive" not in quick and "recorder" not in quick
    a = parse_args(["--skip-pgbench", "--naive-config", "bench/naive.json",
                    "--recorder-config", "bench/recorder.json"])
    assert a.naive_config == Path("bench/naive.json")
    assert a.recorder_config == Path("bench/recorder.json")


def demo_host_var(environ: dict, inventory: str = "inventory/demo") -> str:
    env = {k: v for k, v in os.environ.items() if k != "STACKTUNE_DEMO_NAME"}
    env.update(environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(ANSIBLE), "-i", inventory, "stacktune-demo", "-c", "local", "-m",
         "ansible.builtin.debug", "-a", "var=ansible_host"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("inventory", ["inventory/demo", "bench/inventory/untuned"])
def test_demo_inventory_connects_to_the_named_container(inventory):
    assert "ansible_host: stacktune-demo\n" in demo_host_var({}, inventory)
    assert "ansible_host: stacktune-demo-b\n" in demo_host_var(
        {"STACKTUNE_DEMO_NAME": "stacktune-demo-b"}, inventory)


def test_demo_container_script_takes_the_name():
    text = (ROOT / "scripts" / "demo-container").read_text()
    assert "name=${STACKTUNE_DEMO_NAME:-stacktune-demo}" in text
    assert "name=${STACKTUNE_DEMO_NAME:-stacktune-demo}" in (ROOT / "scripts" / "demo").read_text()


def phase(path, rate, rnd, cpu_ms, rps):
    return {"path": path, "rate": rate, "round": rnd, "requests": 1000,
            "cpu_ms_per_request": cpu_ms, "requests_per_s": rps, "p50_ms": 10.0,
            "p99_ms": 40.0, "errors": 0}


def fake_recorder() -> dict:
    phases = [phase("/", 0.0, r, c, q) for r, c, q in ((1, 10.0, 100.0), (2, 12.0, 90.0),
                                                      (3, 11.0, 95.0))]
    phases += [phase("/", 1.0, r, c, q) for r, c, q in ((1, 11.0, 92.0), (2, 13.2, 80.0),
                                                       (3, 12.1, 85.0))]
    return {"rates": [0.0, 1.0], "rounds": 3, "duration": 15, "connections": 8,
            "paths": ["/"], "phases": phases, "load_average_start": ["1.0", "2", "3"],
            "load_average_end": ["4.0", "5", "6"],
            "summary": recorder.summarize_overhead(phases, [0.0, 1.0]), "notes": ["n1"]}


def test_recorder_overhead_summary():
    off, on = fake_recorder()["summary"]
    assert off["cpu_ms_per_request"] == {"median": 11.0, "min": 10.0, "max": 12.0}
    assert on["cpu_ms_per_request"]["median"] == pytest.approx(12.1)
    assert on["cpu_vs_off_pct"] == pytest.approx(10.0)
    assert on["rps_vs_off_pct"] == pytest.approx(100 * (85.0 / 95.0 - 1))
    assert off["cpu_vs_off_pct"] == 0.0


def test_recorder_table():
    md = "\n".join(report.recorder_tables({"recorder": fake_recorder()}))
    assert "## The query recorder's overhead" in md
    assert "| `/` | off | 3 | 11.00 | 10.00-12.00 | +0.0 % | 95.0 | 90.0-100.0 | +0.0 % |" in md
    assert "| `/` | 1 | 3 | 12.10 | 11.00-13.20 | +10.0 % | 85.0 | 80.0-92.0 | -10.5 % |" in md
    assert "Load average 1.0 2 3 → 4.0 5 6." in md


def sample(stage, page, rps, top_ms, statements):
    return {"stage": stage, "page": page, "requests_per_s": rps, "p50_ms": 5.0,
            "p99_ms": 9.0, "errors": 0, "statements_per_request": statements,
            "db_ms_per_request": top_ms * statements, "top_mean_ms": top_ms, "top_calls": 100}


def test_naive_table_before_after_and_fixed_page():
    result = {
        "pages": [{"name": "filter", "path": "/naive/comments/?author=A"},
                  {"name": "fixed list", "path": "/", "kind": "fixed"}],
        "samples": [sample("before", "filter", 50.0, 7.49, 1.0),
                    sample("before", "fixed list", 300.0, 0.2, 4.0),
                    sample("after", "filter", 400.0, 0.018, 1.0)],
        "report": {"command": "scripts/stacktune report ...", "file": "report.json",
                   "apply_file": "report-applied.json",
                   "applied": ["CREATE INDEX CONCURRENTLY x ON t (c)"],
                   "findings": [{"kind": "missing_index", "severity": "high",
                                 "title": "t.c needs an index", "fix": "CREATE INDEX ..."},
                                {"kind": "cache_hit_ratio", "severity": "low", "title": "z",
                                 "fix": "y"}]},
        "finding_kinds": ["missing_index"], "notes": ["a note"]}
    md = "\n".join(report.naive_tables({"naive": result}))
    assert "| filter `/naive/comments/?author=A` | naive, before | 50.0 | 5.00 | 9.00 | 0 " \
        "| 1.0 | 7.490 | 7.490 (100 calls) |" in md
    assert "| filter `/naive/comments/?author=A` | naive, after --apply | 400.0 |" in md
    assert "0.018 (100 calls) |" in md
    assert "| fixed list `/` | fixed variant (code) | 300.0 |" in md
    assert "- `CREATE INDEX CONCURRENTLY x ON t (c)`" in md
    assert "- high: t.c needs an index — fix: CREATE INDEX ..." in md
    assert "cache_hit_ratio" not in md and "- z" not in md
    assert "- a note" in md


def test_fix_table_one_before_after_row_per_fix():
    result = {
        "pages": [{"name": "N+1", "path": "/naive/articles/", "fixed_by": "code",
                   "fix": "select_related"},
                  {"name": "N+1, fixed", "path": "/naive/articles/fixed/", "kind": "fixed",
                   "fixes": "N+1"},
                  {"name": "filter", "path": "/naive/comments/?author=A", "fixed_by": "index",
                   "fix": "index"},
                  {"name": "OFFSET", "path": "/naive/archive/?page=450", "fixed_by": "code",
                   "fix": "keyset"},
                  {"name": "OFFSET, keyset", "path": "/naive/archive/keyset/?after=7,3",
                   "kind": "fixed", "fixes": "OFFSET"}],
        "samples": [sample("before", "N+1", 30.0, 0.04, 41.0),
                    sample("before", "N+1, fixed", 90.0, 1.5, 2.0),
                    sample("after", "N+1", 31.0, 0.04, 41.0),
                    sample("before", "filter", 50.0, 7.49, 1.0),
                    sample("after", "filter", 400.0, 0.018, 1.0),
                    sample("before", "OFFSET", 40.0, 45.0, 1.0),
                    sample("after", "OFFSET", 41.0, 44.0, 1.0),
                    sample("before", "OFFSET, keyset", 120.0, 6.0, 1.0)],
        "same_content": {"N+1, fixed": True, "OFFSET, keyset": False},
        "load_average_start": ["1.00", "2.00", "3.00"], "load_average_end": ["4.00", "5", "6"]}
    rows = naive.fix_rows(result)
    assert [(r["page"]["name"], r["after_page"]["name"], r["after"]["stage"]) for r in rows] \
        == [("N+1", "N+1, fixed", "before"), ("filter", "filter", "after"),
            ("OFFSET", "OFFSET, keyset", "before")]
    md = "\n".join(report.naive_tables({"naive": result}))
    assert "| N+1: select_related | `/naive/articles/` → `/naive/articles/fixed/` (same rows) " \
        "| 30.0 → 90.0 | 5.00 → 5.00 | 9.00 → 9.00 | 0 → 0 | 41.0 → 2.0 | 1.640 → 3.000 " \
        "| 0.040 → 1.500 |" in md
    assert "| filter: index | `/naive/comments/?author=A` before → after --apply | 50.0 → 400.0 " \
        "|" in md and "| 7.490 → 0.018 |" in md
    assert "| OFFSET: keyset | `/naive/archive/?page=450` → `/naive/archive/keyset/?after=7,3` " \
        "(NOT the same rows) | 40.0 → 120.0 |" in md and "| 45.000 → 6.000 |" in md
    assert "Load average during this phase: 1.00 2.00 3.00 → 4.00 5 6." in md
    # The fix table comes before the table of every page measured.
    assert md.index("### Each fix") < md.index("### Every page measured")


def test_fix_table_without_a_fixed_variant_says_so():
    result = {"pages": [{"name": "OFFSET", "path": "/a", "fixed_by": "code"}],
              "samples": [sample("before", "OFFSET", 40.0, 45.0, 1.0)]}
    md = "\n".join(report.naive_tables({"naive": result}))
    assert "| OFFSET: code | `/a` → no fixed variant | 40.0 → - |" in md


def test_keyset_key_for_an_offset_page_and_same_content_check():
    # Page 450 of 20 starts at row 8980: ?after= takes row 8979, page 449's last.
    assert naive.archive_key_offset(450) == 8979
    assert naive.archive_key_offset(2) == 19
    with pytest.raises(ValueError, match="N >= 2"):
        naive.archive_key_offset(1)
    queries = []

    def fake_psql(container, database, sql):
        queries.append(sql)
        return "812,4411"

    original = naive.psql
    naive.psql = fake_psql
    try:
        pages = naive.resolve_paths({"container": "c", "database": "app", "pages": [
            {"name": "k", "path": "/naive/archive/keyset/?after={archive_key:450}"}]})
    finally:
        naive.psql = original
    assert pages[0]["path"] == "/naive/archive/keyset/?after=812,4411"
    assert queries == ["SELECT word_count || ',' || id FROM publishing_article "
                       "ORDER BY word_count DESC, id DESC OFFSET 8979 LIMIT 1"]
    served = {"/n": [1, 2], "/f": [1, 2], "/o": [3, 4], "/k": [4, 3]}
    pages = [{"name": "n", "path": "/n"}, {"name": "f", "path": "/f", "kind": "fixed",
                                            "fixes": "n"},
             {"name": "o", "path": "/o"}, {"name": "k", "path": "/k", "kind": "fixed",
                                           "fixes": "o"}]
    assert naive.same_content({}, pages, fetch=lambda cfg, path: served[path]) == \
        {"f": True, "k": False}


def test_markdown_of_a_run_without_pgbench_claims_no_pgbench_rounds():
    results = {"mode": "full", "rounds": 3, "workloads": [], "configs": [], "summary": {},
               "round_orders": [["default", "pgtune", "stacktune"]],
               "environment": {"timestamp_utc": "2026-01-01T00:00:00Z", "host_cpus": 2,
                               "container_limits": "--memory 4096m --cpus 2",
                               "load_average_start": ["1.0", "1", "1"],
                               "load_average_end": ["5.0", "4", "3"]},
               "recorder": fake_recorder()}
    md = report.render_markdown(results)
    assert "Mode: **phases on the demo only** (no pgbench)." in md
    assert "configurations interleaved" not in md and "--memory 4096m" not in md
    assert "load average up to 5.0 on 2 CPUs" in md
    assert "## The query recorder's overhead" in md

"""results.json, results.md and results.png from the samples of a run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.kit import STEPS, TITLES
from bench.naive import fix_rows
from bench.stats import (
    paired_ratios,
    ratio,
    ratio_spread_text,
    ratio_text,
    spread_text,
    summarize,
    total,
)

COLORS = {"default": "#9e9e9e", "pgtune": "#4c72b0", "stacktune": "#dd8452"}
FALLBACK_COLORS = ("#55a868", "#c44e52", "#8172b2", "#937860")

ERRORS_NOTE = (
    "Errors are counted, never skipped: `errors = failed transactions + aborted clients`. "
    "pgbench 15 reports failed transactions (serialization/deadlock failures) in its summary. "
    "A client whose connection is refused (max_connections, or PgBouncer's max_client_conn) "
    "is aborted by pgbench: under `-C` it counts once and sends no more transactions; "
    "the run goes on with the other clients, so the storm's tps is what the surviving "
    "clients achieved. A run that produced no result counts all its clients as errors "
    "and 0 tps. In the storms each transaction opens one connection, so the share given "
    "is errors / (transactions + errors): the refused share of connection attempts."
)


def summarize_groups(samples: Sequence[Mapping], group: str, item: str, value: str,
                     items: Sequence[str], baselines: Sequence[str] = ("default", "pgtune"),
                     extra: Sequence[str] = ()) -> dict:
    """{group: {item: {value: summary, errors, ...}, '_ratios': {...}}} over rounds.

    ``_ratios`` holds, for each item, the ratio of its median ``value`` to each
    baseline item's median ("stacktune/default").
    """
    out: dict = {}
    groups = list(dict.fromkeys(s[group] for s in samples))
    for name in groups:
        rows = [s for s in samples if s[group] == name]
        entry: dict = {}
        for it in items:
            mine = [s for s in rows if s[item] == it]
            if not mine:
                continue
            entry[it] = {
                value: summarize(s.get(value) for s in mine),
                "errors": total([s.get("errors") for s in mine]),
                "rounds": len(mine),
                **{key: summarize(s.get(key) for s in mine) for key in extra},
            }
            if "clients" in mine[0]:
                entry[it]["clients"] = sorted({s["clients"] for s in mine
                                               if s.get("clients") is not None})
                entry[it]["clients_total"] = total([s.get("clients") for s in mine])
            if "transactions" in mine[0]:
                entry[it]["transactions_total"] = total([s.get("transactions") for s in mine])
        ratios = {}
        for it in entry:
            for base in baselines:
                if base in entry and base != it:
                    ratios[f"{it}/{base}"] = ratio(entry[it][value]["median"],
                                                   entry[base][value]["median"])
        entry["_ratios"] = ratios
        out[name] = entry
    return out


PGBENCH_BASELINES = ("default", "pgtune")
BASELINE_TITLES = {"default": "default", "pgtune": "PGTune", "best": "best point found"}


def _by_round(samples: Sequence[Mapping], group: str, name: str, item: str, it: str,
              value: str) -> dict[int, float | None]:
    return {s["round"]: s.get(value) for s in samples
            if s.get(group) == name and s.get(item) == it and "round" in s}


def comparison_summary(results: Mapping) -> dict:
    """One entry per comparison, from the paired rounds (see stats.paired_ratios):

    - ``<workload>.stacktune_over_default`` and ``.stacktune_over_pgtune`` (pgbench tps),
      with ``same_clients`` false where the two ran different client counts (older
      storms: each configuration got a multiple of its own max_connections);
    - ``http.<endpoint>.<stack>_over_<first stack>`` (requests/s) when the HTTP phase ran.

    - ``<workload>.stacktune_over_best`` (and over default and PGTune, where the
      three-configuration comparison did not run that workload) from a ``--sweep``'s confirm
      rounds.
    """
    out: dict = {}
    samples = results.get("samples") or []
    names = [w["name"] for w in results.get("workloads") or []] or \
        list(dict.fromkeys(s["workload"] for s in samples))
    for name in names:
        mine = [s for s in samples if s.get("workload") == name]
        for base in PGBENCH_BASELINES:
            entry = paired_ratios(_by_round(mine, "workload", name, "config", "stacktune", "tps"),
                                  _by_round(mine, "workload", name, "config", base, "tps"))
            if not entry["rounds"]:
                continue
            clients = [{s.get("clients") for s in mine if s["config"] == c}
                       for c in ("stacktune", base)]
            entry["same_clients"] = clients[0] == clients[1]
            out[f"{name}.stacktune_over_{base}"] = entry
    for name, swept in ((results.get("sweep") or {}).get("workloads") or {}).items():
        for base in PGBENCH_BASELINES:
            entry = (swept.get("stacktune_over") or {}).get(base)
            if entry and entry.get("rounds") and f"{name}.stacktune_over_{base}" not in out:
                out[f"{name}.stacktune_over_{base}"] = dict(entry, same_clients=True)
        if (swept.get("stacktune_over_best") or {}).get("rounds"):
            out[f"{name}.stacktune_over_best"] = dict(swept["stacktune_over_best"])
    for page, verdict in ((results.get("http_sweep") or {}).get("pages") or {}).items():
        if (verdict.get("stacktune_over_best") or {}).get("rounds"):
            out[f"http.{page}.stacktune_over_best"] = dict(verdict["stacktune_over_best"])
    http = results.get("http") or []
    stacks = list(dict.fromkeys(x["stack"] for x in http))
    for endpoint in dict.fromkeys(x["endpoint"] for x in http):
        for stack in stacks[1:]:
            entry = paired_ratios(
                _by_round(http, "endpoint", endpoint, "stack", stack, "requests_per_s"),
                _by_round(http, "endpoint", endpoint, "stack", stacks[0], "requests_per_s"))
            if entry["rounds"]:
                out[f"http.{endpoint}.{stack}_over_{stacks[0]}"] = entry
    return out


def _refused_share(entry: Mapping | None) -> str:
    if not entry:
        return "-"
    attempts = entry.get("transactions_total", 0) + entry["errors"]
    return f"{100 * entry['errors'] / attempts:.0f}%" if attempts else "-"


def summary_tables(results: Mapping, ratios: Mapping | None = None) -> list[str]:
    """The summary tables: one line per workload, stacktune's ratio over each baseline."""
    if ratios is None:
        ratios = comparison_summary(results)
    if not ratios:
        return []
    lines = ["", "## Summary: stacktune over each baseline", "",
             "Median of the per-round ratios (round k's stacktune over round k's baseline: "
             "the rounds are interleaved, so each pair ran in the same state of the "
             "machine) and, in brackets, the lowest and highest of those ratios. pgbench: "
             "tps; HTTP: requests/s. In results.json: `summary.ratios`; `python -m bench.report "
             "--summary-md results.json` prints these tables from any run's samples."]
    pgbench = (results.get("summary") or {}).get("pgbench") or {}
    rows, unequal = [], False
    swept = list((results.get("sweep") or {}).get("workloads") or {})
    workloads = results.get("workloads") or [
        {"name": n, "short": n} for n in dict.fromkeys(
            [*(s["workload"] for s in results.get("samples", [])), *swept])]
    # A sweep adds stacktune / best (bench/sweep.py).
    bases = PGBENCH_BASELINES + (("best",) if any(k.endswith(".stacktune_over_best")
                                                  for k in ratios) else ())
    for w in workloads:
        cells = []
        for base in bases:
            entry = ratios.get(f"{w['name']}.stacktune_over_{base}")
            text = ratio_spread_text(entry)
            if entry and not entry.get("same_clients", True):
                text += " †"
                unequal = True
            cells.append(text)
        if all(c == "-" for c in cells):
            continue
        rounds = max((ratios.get(f"{w['name']}.stacktune_over_{b}") or {}).get("rounds", 0)
                     for b in bases)
        refused = "-"
        if w.get("storm") or w["name"].startswith("storm"):
            entry = pgbench.get(w["name"]) or {}
            refused = " / ".join(_refused_share(entry.get(c))
                                 for c in ("default", "pgtune", "stacktune"))
        rows.append([w.get("short") or w["name"], *cells, str(rounds), refused])
    if rows:
        titles = [f"stacktune / {BASELINE_TITLES[b]}" for b in bases]
        lines += ["", *_table(["workload (pgbench)", *titles, "rounds",
                               "refused connections: default / PGTune / stacktune"],
                              rows, "l" + "r" * (len(bases) + 2))]
        if unequal:
            lines += ["", "† The configurations ran different client counts here (this "
                          "run's storms gave each a multiple of its own max_connections): "
                          "not the same load, so this ratio does not compare them."]
    http_rows = []
    for key, entry in ratios.items():
        if key.startswith("http."):
            endpoint, comparison = key[len("http."):].rsplit(".", 1)
            stack, base = comparison.split("_over_", 1)
            http_rows.append([endpoint, f"{stack} / {base}", ratio_spread_text(entry),
                              str(entry["rounds"])])
    if http_rows:
        lines += ["", *_table(["page (HTTP, wrk)", "comparison", "req/s ratio", "rounds"],
                              http_rows, "llrr")]
    return lines


def sweep_tables(results: Mapping) -> list[str]:
    """The sweep: per workload, stacktune over the best point found (and over default and
    PGTune) from the confirm rounds, and where the best point's settings differ."""
    swept = (results.get("sweep") or {}).get("workloads") or {}
    if not swept:
        return []
    opts = results["sweep"].get("options") or {}
    lines = ["", "## Sweep: stacktune against the best settings found", "",
             f"Per workload: {len(results['sweep'].get('start_points') or {})} start points "
             f"(the swept settings' values under PostgreSQL's defaults, PGTune and stacktune) "
             f"and {opts.get('trials')} points sampled by {opts.get('sampler')} (seed "
             f"{opts.get('seed')}), {opts.get('trial_duration')} s each on stacktune's plan "
             "with the point's values on top; then the best "
             f"{opts.get('top')} distinct point(s), stacktune, default and PGTune over "
             f"{opts.get('confirm_rounds')} interleaved round(s) of "
             f"{opts.get('confirm_duration')} s. The best is the highest median of those "
             "rounds; ratios are medians of the per-round ratios [min-max].", ""]
    rows = []
    for name, entry in swept.items():
        best = entry.get("best")
        medians = entry.get("medians") or {}
        ok = sum(1 for t in entry.get("trials") or [] if t.get("completed"))
        rows.append([name, best or "-",
                     _fmt((medians.get(best) or {}).get("median")),
                     _fmt((medians.get("stacktune") or {}).get("median")),
                     ratio_spread_text(entry.get("stacktune_over_best")),
                     ratio_spread_text((entry.get("stacktune_over") or {}).get("default")),
                     ratio_spread_text((entry.get("stacktune_over") or {}).get("pgtune")),
                     f"{ok}/{len(entry.get('trials') or [])}"])
    lines += _table(["workload", "best", "best tps", "stacktune tps", "stacktune / best",
                     "stacktune / default", "stacktune / PGTune", "trials completed"],
                    rows, "llrrrrrr")
    for name, entry in swept.items():
        diffs = entry.get("differences") or {}
        if diffs:
            text = "; ".join(f"{k} {v[0]} (stacktune {v[1]})" for k, v in diffs.items())
            lines += ["", f"- {name}: the best point ({entry['best']}) differs in {text}."]
        else:
            lines += ["", f"- {name}: the best point is stacktune's own values of the swept "
                          "settings."]
    return lines


def http_sweep_tables(results: Mapping) -> list[str]:
    """The HTTP sweep: per page, stacktune's plan over the best app-tier point found."""
    swept = results.get("http_sweep") or {}
    if not swept.get("pages"):
        return []
    opts = swept.get("options") or {}
    ok = sum(1 for t in swept.get("trials") or [] if t.get("completed"))
    lines = ["", "## HTTP sweep: stacktune's app tier against the best point found", "",
             f"{len(swept.get('start_points') or {})} start points "
             f"({', '.join(swept.get('start_points') or {})}) and {opts.get('trials')} points "
             f"sampled by {opts.get('sampler')} (seed {opts.get('seed')}), each deployed as "
             "stacktune_overrides and loaded page by page (the search maximizes the geometric "
             f"mean of req/s); {ok} of {len(swept.get('trials') or [])} completed. The best "
             f"{opts.get('top')} then ran beside stacktune's plan over {opts.get('rounds')} "
             "interleaved round(s); each page's best is its highest median req/s.", ""]
    rows = []
    for page, verdict in swept["pages"].items():
        medians = verdict.get("medians") or {}
        rows.append([page, verdict["best"], _fmt((medians.get(verdict["best"]) or {})
                                                 .get("median")),
                     _fmt((medians.get("stacktune") or {}).get("median")),
                     ratio_spread_text(verdict.get("stacktune_over_best"))])
    lines += _table(["page", "best", "best req/s", "stacktune req/s", "stacktune / best"],
                    rows, "llrrr")
    for page, verdict in swept["pages"].items():
        diffs = verdict.get("differences") or {}
        text = "; ".join(f"{k} {v[0]} (stacktune {v[1]})" for k, v in diffs.items())
        lines += ["", f"- {page}: " + (f"the best point ({verdict['best']}) differs in "
                                       f"{text}." if diffs else "stacktune's plan was the "
                                       "best point.")]
    return lines


def summarize_kit(samples: Sequence[Mapping]) -> dict:
    out = {}
    floor = None
    for step in STEPS:
        mine = [s for s in samples if s["step"] == step]
        if mine:
            out[step] = {"seconds": summarize(s["seconds"] for s in mine),
                         "failures": sum(1 for s in mine if not s["ok"])}
            for key in ("controller_cpu_s", "container_cpu_s"):
                values = [s[key] for s in mine if s.get(key) is not None]
                out[step][key] = summarize(values) if values else None
            loads = [s[k] for s in mine for k in ("load1_start", "load1_end") if k in s]
            out[step]["load1"] = [min(loads), max(loads)] if loads else None
    if "facts" in out:
        floor = out["facts"]["seconds"]["median"]
    for entry in out.values():
        entry["over_floor_s"] = (None if floor is None
                                 else entry["seconds"]["median"] - floor)
    return out


# --- Markdown -----------------------------------------------------------------

def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def pgbench_tables(results: Mapping) -> list[str]:
    lines: list[str] = []
    configs = [c["name"] for c in results["configs"]]
    summary = results["summary"]["pgbench"]
    for workload in results["workloads"]:
        name = workload["name"]
        if name not in summary:
            continue
        entry = summary[name]
        lines += ["", f"### {workload['title']}", "",
                  f"`{workload['command']}` — {workload['rounds']} round(s) of "
                  f"{workload['duration']} s, warm-up excluded", ""]
        rows = []
        for config in configs:
            if config not in entry:
                continue
            e = entry[config]
            clients = ", ".join(str(c) for c in e.get("clients", [])) or "-"
            errors = str(e["errors"])
            if workload.get("storm") and e["errors"]:
                attempts = e.get("transactions_total", 0) + e["errors"]
                errors += f" ({100 * e['errors'] / attempts:.0f}% of connections)"
            rows.append([
                config, clients, _fmt(e["tps"]["median"]), spread_text(e["tps"], 1),
                _fmt(e["latency_avg_ms"]["median"], 2), errors,
                ratio_text(entry["_ratios"].get(f"{config}/default")),
                ratio_text(entry["_ratios"].get(f"{config}/pgtune")),
            ])
        lines += _table(["configuration", "clients", "median tps", "spread (min-max)",
                         "latency avg (ms)", "errors (all rounds)", "vs default",
                         "vs pgtune"], rows, "lrrrrrrr")
        st_d = entry["_ratios"].get("stacktune/default")
        st_p = entry["_ratios"].get("stacktune/pgtune")
        if st_d is not None or st_p is not None:
            lines += ["", f"stacktune / default: **{ratio_text(st_d)}** · "
                          f"stacktune / pgtune: **{ratio_text(st_p)}** (median tps)"]
    return lines


def http_tables(results: Mapping) -> list[str]:
    summary = results["summary"].get("http")
    if not summary:
        return []
    stacks = list(dict.fromkeys(s["stack"] for s in results["http"]))
    lines = ["", "## The Django stack over HTTP (wrk)"]
    for endpoint, entry in summary.items():
        lines += ["", f"### {endpoint}", ""]
        rows = []
        for stack in stacks:
            if stack not in entry:
                continue
            e = entry[stack]
            rows.append([stack, _fmt(e["requests_per_s"]["median"]),
                         spread_text(e["requests_per_s"], 1), _fmt(e["p50_ms"]["median"], 2),
                         _fmt(e["p95_ms"]["median"], 2), _fmt(e["p99_ms"]["median"], 2),
                         str(e["errors"]),
                         ratio_text(entry["_ratios"].get(f"{stack}/{stacks[0]}"))])
        lines += _table(["stack", "median req/s", "spread (min-max)", "p50 ms", "p95 ms",
                         "p99 ms", "errors (non-2xx + socket)", f"vs {stacks[0]}"], rows,
                        "lrrrrrrr")
        lines += memory_table(results["summary"].get("http_memory", {}).get(endpoint))
    return lines


def memory_cell(entry: Mapping | None) -> str:
    """'412.0' for a peak without budget; '412.0 / 1,234.0 (33 %)' against one, with
    'over budget' when the peak went over."""
    if not entry or entry.get("peak_mib") is None:
        return "-"
    text = _fmt(entry["peak_mib"])
    if entry.get("budget_mib") is not None:
        text += f" / {_fmt(entry['budget_mib'])} ({entry['peak_over_budget'] * 100:.0f} %)"
        if entry.get("over_budget"):
            text += " **over budget**"
    return text


def memory_table(per_stack: Mapping | None) -> list[str]:
    """Peak memory of each service per stack (one endpoint), against the plan's budget."""
    if not per_stack:
        return []
    services = list(dict.fromkeys(s for entry in per_stack.values() for s in entry))
    rows = [[stack] + [memory_cell(entry.get(s)) for s in services]
            for stack, entry in per_stack.items()]
    return ["", "Peak memory during the measured runs (MiB, the largest over the rounds; "
            "anon + shmem of each service's cgroup, see bench/memory.py), and against the "
            "plan's budget where the stack has one: peak / budget (peak as a share of it).",
            "", *_table(["stack", *services], rows, "l" + "r" * len(services))]


def _before_after(before: Mapping | None, after: Mapping | None, key: str,
                  digits: int) -> str:
    def one(sample):
        return _fmt(sample.get(key) if sample else None, digits)
    return f"{one(before)} → {one(after)}"


def fix_table(naive: Mapping) -> list[str]:
    """One row per fix the report names: the naive page before, its fix after."""
    rows = []
    for row in fix_rows(naive):
        before, after, page, after_page = row["before"], row["after"], row["page"], \
            row["after_page"]
        if row["page"]["fixed_by"] == "index":
            variants = f"`{page['path']}` before → after --apply"
        else:
            same = {True: "same rows", False: "NOT the same rows", None: "rows not compared"}[
                row["same_content"]]
            variants = (f"`{page['path']}` → `{after_page['path']}` ({same})" if after_page
                        else f"`{page['path']}` → no fixed variant")
        rows.append([f"{page['name']}: {row['fix']}", variants,
                     _before_after(before, after, "requests_per_s", 1),
                     _before_after(before, after, "p50_ms", 2),
                     _before_after(before, after, "p99_ms", 2),
                     _before_after(before, after, "errors", 0),
                     _before_after(before, after, "statements_per_request", 1),
                     _before_after(before, after, "db_ms_per_request", 3),
                     _before_after(before, after, "top_mean_ms", 3)])
    if not rows:
        return []
    lines = ["", "### Each fix, before → after", "",
             "Before: the naive page; after: its fixed variant in the demo (same rows, "
             "measured in the same stage), or the same page after `stacktune report "
             "--apply` for an index.", ""]
    lines += _table(["fix", "pages", "req/s", "p50 ms", "p99 ms", "errors",
                     "statements / request", "DB ms / request",
                     "heaviest statement: mean ms"], rows, "llrrrrrrr")
    start = " ".join(naive.get("load_average_start") or [])
    end = " ".join(naive.get("load_average_end") or [])
    if start or end:
        lines += ["", f"Load average during this phase: {start or '?'} → {end or '?'}."]
    return lines


def naive_tables(results: Mapping) -> list[str]:
    """One before/after row per fix, then every naive page before and after `stacktune
    report --apply` and each fixed variant."""
    naive = results.get("naive")
    if not naive:
        return []
    by = {(s["stage"], s["page"]): s for s in naive.get("samples", [])}
    rows = []
    for page in naive.get("pages", []):
        stages = (("before", "naive, before"), ("after", "naive, after --apply")) \
            if page.get("kind", "naive") == "naive" else (("before", "fixed variant (code)"),)
        for stage, label in stages:
            s = by.get((stage, page["name"]))
            if not s:
                continue
            top = "-" if s.get("top_mean_ms") is None else \
                f"{s['top_mean_ms']:,.3f} ({s['top_calls']} calls)"
            rows.append([f"{page['name']} `{page['path']}`", label,
                         _fmt(s["requests_per_s"]), _fmt(s["p50_ms"], 2),
                         _fmt(s["p99_ms"], 2), str(s["errors"]),
                         _fmt(s.get("statements_per_request"), 1),
                         _fmt(s.get("db_ms_per_request"), 3), top])
    lines = ["", "## The demo's naive mode, before and after the report's advice"]
    lines += fix_table(naive)
    lines += ["", "### Every page measured", ""]
    lines += _table(["page", "variant", "req/s", "p50 ms", "p99 ms", "errors",
                     "statements / request", "DB ms / request",
                     "heaviest statement: mean ms"], rows, "llrrrrrrr")
    rep = naive.get("report") or {}
    if rep:
        lines += ["", f"Report: `{rep.get('command')}` (`{rep.get('file')}`); applied with "
                      f"`--apply` (`{rep.get('apply_file')}`):", ""]
        lines += [f"- `{fix}`" for fix in rep.get("applied") or []] or ["- nothing"]
        wanted = [f for f in rep.get("findings", [])
                  if f.get("kind") in set(naive.get("finding_kinds") or [])] \
            or rep.get("findings", [])
        if wanted:
            lines += ["", "The report's findings on this traffic:", ""]
            lines += [f"- {f.get('severity')}: {f.get('title')} — fix: {f.get('fix')}"
                      for f in wanted]
    if naive.get("notes"):
        lines += ["", *[f"- {n}" for n in naive["notes"]]]
    return lines


def recorder_tables(results: Mapping) -> list[str]:
    """The query recorder's cost: CPU per request and req/s per sample rate."""
    rec = results.get("recorder")
    if not rec:
        return []
    rows = []
    for r in rec.get("summary", []):
        cpu, rps = r["cpu_ms_per_request"], r["requests_per_s"]
        rows.append([f"`{r['path']}`", "off" if not r["rate"] else f"{r['rate']:g}",
                     str(r["rounds"]), _fmt(cpu["median"], 2),
                     f"{_fmt(cpu['min'], 2)}-{_fmt(cpu['max'], 2)}",
                     f"{r['cpu_vs_off_pct']:+.1f} %", _fmt(rps["median"]),
                     f"{_fmt(rps['min'])}-{_fmt(rps['max'])}", f"{r['rps_vs_off_pct']:+.1f} %",
                     _fmt(r["p50_ms"], 2), str(r["errors"])])
    start = " ".join(rec.get("load_average_start") or [])
    end = " ".join(rec.get("load_average_end") or [])
    lines = ["", "## The query recorder's overhead", "",
             f"wrk on the host, {rec['connections']} connections, {rec['rounds']} rounds of "
             f"{rec['duration']} s per rate, the rate order rotating each round; CPU = the "
             f"demo container's cgroup CPU time (Gunicorn, PgBouncer, PostgreSQL, Redis) / "
             f"requests. Load average {start} → {end}.", ""]
    lines += _table(["page", "sample rate", "rounds", "CPU ms / request (median)",
                     "spread", "vs off", "req/s (median)", "spread", "vs off", "p50 ms",
                     "errors"], rows, "llrrrrrrrrr")
    if rec.get("notes"):
        lines += ["", *[f"- {n}" for n in rec["notes"]]]
    return lines


def kit_table(results: Mapping) -> list[str]:
    summary = results["summary"].get("kit")
    if not summary:
        return []
    rows = []
    for step, e in summary.items():
        cpu = [e.get(key) for key in ("controller_cpu_s", "container_cpu_s")]
        load = e.get("load1")
        rows.append([TITLES[step], _fmt(e["seconds"]["median"]),
                     spread_text(e["seconds"], 1), _fmt(e["over_floor_s"]),
                     *[_fmt(c["median"] if c else None) for c in cpu],
                     "-" if not load else f"{load[0]:.1f}-{load[1]:.1f}",
                     str(e["failures"])])
    table = _table(["step", "median wall s", "spread (min-max)", "over the floor (s)",
                    "controller CPU s", "container CPU s", "load average (1 min)",
                    "failed runs"], rows, "lrrrrrrr")
    return ["", "## The kit (wall time and CPU)", "",
            "Wall time follows the machine's load; the CPU columns (the controller's "
            "ansible-playbook and workers, the target container's cgroup) barely do.",
            "", *table]


def settings_table(results: Mapping) -> list[str]:
    configs = results["configs"]
    names = sorted({n for c in configs for n in c.get("effective", {})})
    if not names:
        return []
    rows = [[f"`{n}`", *[str(c.get("effective", {}).get(n, "-")) for c in configs]]
            for n in names]
    lines = ["", "## Settings in effect (SHOW, after restart)", ""]
    lines += _table(["setting", *[c["name"] for c in configs]], rows, "l" * (1 + len(configs)))
    dropped = {c["name"]: c["dropped"] for c in configs if c.get("dropped")}
    if dropped:
        lines += ["", "Dropped (unknown to this PostgreSQL): " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in dropped.items())]
    return lines


def render_markdown(results: Mapping) -> str:
    env = results["environment"]
    orders = results.get("round_orders") or []
    order_text = "; ".join(f"round {n}: {', '.join(o)}" for n, o in enumerate(orders, 1))
    lines = [f"# stacktune benchmark — {env['timestamp_utc']}", ""]
    if results.get("workloads"):
        lines += [f"Mode: **{results['mode']}**, {results['rounds']} round(s), configurations "
                  f"interleaved ({order_text or 'one round'}).", ""]
    elif results.get("sweep"):
        lines += [f"Mode: **{results['mode']}**: the search and its confirm rounds "
                  "(below).", ""]
    else:  # --skip-pgbench: the hooks' own sections say how they ran
        lines += ["Mode: **phases on the demo only** (no pgbench).", ""]
    if results.get("interrupted") or results.get("error"):
        why = "interrupted" if results.get("interrupted") else f"error: {results['error']}"
        lines += [f"**Partial results** ({why}): only the runs that finished are shown.", ""]
    busy = [float(x) for key in ("load_average_start", "load_average_end")
            for x in (env.get(key) or [])[:1]]
    if busy and env.get("host_cpus") and max(busy) > env["host_cpus"]:
        lines += [f"**Warning:** the machine was busy (1-minute load average up to "
                  f"{max(busy):.1f} on {env['host_cpus']} CPUs): other processes shared "
                  "its CPUs, so these numbers are noisy.", ""]
    facts = [("CPU", env.get("cpu_model")), ("host CPUs / memory",
             f"{env.get('host_cpus')} / {env.get('host_memory')}"),
             ("container limits", env.get("container_limits")
              if results.get("workloads") or results.get("sweep") else None),
             ("PostgreSQL", env.get("postgresql_version")),
             ("pgbench", env.get("pgbench_version")), ("PgBouncer", env.get("pgbouncer_version")),
             ("stacktune commit", env.get("stacktune_commit")),
             ("load average (start → end)", env.get("load_average")),
             ("wall time", env.get("wall_time"))]
    lines += [f"- {k}: {v}" for k, v in facts if v]
    lines += summary_tables(results, (results.get("summary") or {}).get("ratios"))
    if results.get("workloads"):
        lines += ["", "## PostgreSQL (pgbench)"]
        lines += pgbench_tables(results)
        lines += ["", "**How errors are counted.** " + ERRORS_NOTE]
        if results.get("notes"):
            lines += ["", *[f"- {n}" for n in results["notes"]]]
    lines += sweep_tables(results)
    lines += kit_table(results)
    lines += http_tables(results)
    lines += http_sweep_tables(results)
    lines += naive_tables(results)
    lines += recorder_tables(results)
    lines += settings_table(results)
    return "\n".join(lines) + "\n"


# --- PNG ----------------------------------------------------------------------

def _panels(results: Mapping) -> list[dict]:
    """One panel per pgbench workload and per HTTP endpoint."""
    panels = []
    configs = [c["name"] for c in results.get("configs", [])]
    for workload in results.get("workloads", []):
        entry = results["summary"]["pgbench"].get(workload["name"])
        if entry:
            panels.append({"title": workload["short"], "ylabel": "tps", "entry": entry,
                           "items": [c for c in configs if c in entry], "value": "tps"})
    http = results["summary"].get("http") or {}
    stacks = list(dict.fromkeys(s["stack"] for s in results.get("http", [])))
    for endpoint, entry in http.items():
        panels.append({"title": f"HTTP {endpoint}", "ylabel": "requests/s", "entry": entry,
                       "items": [s for s in stacks if s in entry], "value": "requests_per_s"})
    return panels


def ratio_bars(results: Mapping) -> list[dict]:
    """The chart's ratio panel: one bar per comparison, median with its min-max."""
    ratios = (results.get("summary") or {}).get("ratios")
    if ratios is None:
        ratios = comparison_summary(results)
    shorts = {w["name"]: w.get("short") or w["name"] for w in results.get("workloads") or []}
    bars = []
    for key, entry in ratios.items():
        if not entry.get("rounds"):
            continue
        if key.startswith("http."):
            endpoint, comparison = key[len("http."):].rsplit(".", 1)
            stack, base = comparison.split("_over_", 1)
            label = f"HTTP {endpoint}: {stack} / {base}"
        else:
            name, comparison = key.split(".", 1)
            base = comparison.split("_over_", 1)[1]
            label = f"{shorts.get(name, name)}: stacktune / {BASELINE_TITLES.get(base, base)}"
            if not entry.get("same_clients", True):
                label += " (different clients)"
        bars.append({"label": label, "median": entry["median"], "min": entry["min"],
                     "max": entry["max"], "rounds": entry["rounds"]})
    return bars


def _draw_ratios(ax, bars: Sequence[Mapping]) -> None:
    # Log scale: 1.03x and 20x on one axis, and 0.5x as far below 1 as 2x is above.
    y = list(range(len(bars)))[::-1]
    medians = [b["median"] for b in bars]
    low = [b["median"] - b["min"] for b in bars]
    high = [b["max"] - b["median"] for b in bars]
    colors = [COLORS["stacktune"] if b["median"] >= 1 else COLORS["default"] for b in bars]
    # Bars grow from 1.0 (no difference) to the ratio, right for a gain, left for a loss.
    ax.barh(y, [m - 1.0 for m in medians], left=1.0, color=colors, height=0.6)
    ax.errorbar(medians, y, xerr=[low, high], fmt="none", capsize=4, elinewidth=1.2,
                ecolor="#333333")
    ax.set_xscale("log")
    ax.axvline(1.0, color="#333333", linewidth=1)
    ax.set_yticks(y, [b["label"] for b in bars], fontsize=8)
    for yy, b in zip(y, bars, strict=True):
        # The figure beside the bar's outer end: right of a gain, left of a loss.
        if b["median"] >= 1:
            ax.text(b["max"] * 1.04, yy, ratio_spread_text(b), va="center", fontsize=8)
        else:
            ax.text(b["min"] / 1.04, yy, ratio_spread_text(b), va="center", ha="right",
                    fontsize=8)
    low = min([b["min"] for b in bars] + [1.0])
    high = max([b["max"] for b in bars] + [1.0])
    ax.set_xlim(low / (2.2 if low < 1 else 1.3), high * 2.2)
    ticks = [2.0 ** k for k in range(-6, 7) if low / 2.2 <= 2.0 ** k <= high * 2.2]
    ax.set_xticks(ticks, [f"{v:g}x" for v in ticks])
    ax.minorticks_off()
    ax.set_title("stacktune over each baseline: median of the per-round ratios, "
                 "bars min-max (log scale)", fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.set_axisbelow(True)


def render_png(results: Mapping, path: Path) -> bool:
    panels = _panels(results)
    bars = ratio_bars(results)
    if not panels and not bars:
        return False
    try:
        import matplotlib
    except ImportError:  # results.json and results.md are written all the same
        print("bench: matplotlib is not installed (scripts/setup installs it): no results.png",
              file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2 if len(panels) in (2, 4) else max(1, min(3, len(panels)))
    rows_n = (len(panels) + cols - 1) // cols
    heights = [3.9] * rows_n + ([1.2 + 0.32 * len(bars)] if bars else [])
    fig = plt.figure(figsize=(max(4.6 * cols, 9.2), sum(heights)))
    grid = fig.add_gridspec(len(heights), cols, height_ratios=heights)
    axes = [fig.add_subplot(grid[r, c]) for r in range(rows_n) for c in range(cols)]
    if bars:
        _draw_ratios(fig.add_subplot(grid[-1, :]), bars)
    for ax, panel in zip(axes, panels, strict=False):
        items, entry, value = panel["items"], panel["entry"], panel["value"]
        medians = [entry[i][value]["median"] or 0 for i in items]
        low = [m - (entry[i][value]["min"] or 0) for m, i in zip(medians, items, strict=True)]
        high = [(entry[i][value]["max"] or 0) - m for m, i in zip(medians, items, strict=True)]
        colors = [COLORS.get(i, FALLBACK_COLORS[n % len(FALLBACK_COLORS)])
                  for n, i in enumerate(items)]
        x = range(len(items))
        ax.bar(x, medians, color=colors, yerr=[low, high], capsize=5, width=0.65,
               error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
        top = max([m + h for m, h in zip(medians, high, strict=True)] + [1])
        for n, i in enumerate(items):
            label = f"{medians[n]:,.0f}"
            if entry[i]["errors"]:
                label += f"\n{entry[i]['errors']:,} err"
            ax.text(n, medians[n] + high[n] + top * 0.02, label, ha="center", va="bottom",
                    fontsize=8)
        ax.set_xticks(list(x), items)
        ax.set_ylim(0, top * 1.28)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_ylabel(panel["ylabel"])
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ratios = entry.get("_ratios", {})
        note = " · ".join(f"{k.split('/', 1)[1]} {ratio_text(v)}" for k, v in ratios.items()
                          if k.startswith("stacktune/") and v is not None)
        if note:
            ax.set_xlabel(f"stacktune vs {note}", fontsize=8)
    for ax in axes[len(panels):]:
        ax.axis("off")
    env = results["environment"]
    limits = f" — container {env['container_limits']}" if results.get("workloads") else ""
    fig.suptitle(f"stacktune benchmark ({results['mode']}; median over rounds, bars min-max)"
                 f"{limits}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / sum(heights)))  # room for the suptitle
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_results(results: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "md": out_dir / "results.md",
             "png": out_dir / "results.png"}
    paths["json"].write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    paths["md"].write_text(render_markdown(results))
    if not render_png(results, paths["png"]):
        paths.pop("png")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """python -m bench.report --summary-md results.json: the summary tables, for the README."""
    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("--summary-md", type=Path, required=True, metavar="RESULTS_JSON",
                   help="print the summary tables (stacktune's ratios) of this results.json")
    a = p.parse_args(argv)
    try:
        results = json.loads(a.summary_md.read_text())
    except (OSError, ValueError) as exc:
        p.error(f"--summary-md: cannot read {a.summary_md}: {exc}")
    lines = summary_tables(results, comparison_summary(results))
    if not lines:
        print(f"{a.summary_md}: no pgbench or HTTP samples to compare", file=sys.stderr)
        return 1
    # Drop the section heading: the README has its own.
    print("\n".join(lines[3:]).strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

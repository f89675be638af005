"""Render a report (snapshot + analysis) as Markdown, JSON or one self-contained HTML page."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from stacktune.report.analyse import overrides_yaml
from stacktune.report.collect import STATEMENT_ORDERS

FORMATS = ("md", "json", "html")
STATEMENT_COLUMNS = ("calls", "total_exec_time", "mean_exec_time", "rows", "shared_blks_read",
                     "temp_blks_written")
# Sections printed as tables: (snapshot key, title, row path, columns).
TABLE_SECTIONS = (
    ("foreign_keys_without_index", "Foreign keys without an index", "rows",
     ("table", "constraint", "columns", "references")),
    ("tables_without_pk", "Tables without a primary key", "rows",
     ("table", "estimated_rows", "bytes")),
    ("vacuum", "Vacuum state (most dead tuples first)", "rows",
     ("table", "n_live_tup", "n_dead_tup", "last_autovacuum", "last_autoanalyze", "xid_age",
      "bloat_bytes_estimate")),
)


def report_data(snapshot: Mapping[str, Any], analysis: Mapping[str, Any],
                source: str = "", plan: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What every format shows; the plan's PostgreSQL settings when the report compared them."""
    data = {"source": source, "snapshot": dict(snapshot), "analysis": dict(analysis)}
    if plan and isinstance(plan.get("postgresql"), dict):
        data["planned_postgresql"] = dict(plan["postgresql"])
    return data


def render(report: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def _short(text: str, length: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _statement_table(snapshot: Mapping[str, Any], order: str) -> list[list[str]]:
    statements = snapshot.get("statements") or {}
    by_id = {row["queryid"]: row for row in statements.get("rows", [])}
    return [[_short(by_id[q]["query"]), *(_cell(by_id[q][c]) for c in STATEMENT_COLUMNS)]
            for q in statements.get("top", {}).get(order, []) if q in by_id]


def _sections(report: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(title, content) blocks shared by Markdown and HTML: content is text or a table."""
    snapshot, analysis = report["snapshot"], report["analysis"]
    server = snapshot.get("server") or {}
    blocks: list[tuple[str, Any]] = []
    findings = analysis.get("findings", [])
    blocks.append(("Findings", {"columns": ("severity", "kind", "title", "fix"),
                                "rows": [[f["severity"], f["kind"], f["title"], f["fix"]]
                                         for f in findings]}
                   if findings else "No findings."))
    errors = analysis.get("errors") or {}
    if errors:
        blocks.append(("Not computed", {"columns": ("section", "why and how to enable"),
                                        "rows": [[k, v] for k, v in sorted(errors.items())]}))
    statements = snapshot.get("statements") or {}
    if "error" not in statements:
        for order in STATEMENT_ORDERS:
            blocks.append((f"Top statements by {order}",
                           {"columns": ("query", *STATEMENT_COLUMNS),
                            "rows": _statement_table(snapshot, order)}))
        hidden = (statements.get("summary") or {}).get("hidden")
        if hidden:
            blocks.append(("Hidden statements", f"{hidden} statements of other roles are hidden "
                           "from this login: GRANT pg_monitor (or pg_read_all_stats) TO "
                           f"{snapshot.get('user', '<login>')};"))
    plans = snapshot.get("plans") or {}
    if isinstance(plans, dict) and "error" not in plans:
        for queryid, plan in plans.items():
            blocks.append((f"Generic plan of statement {queryid}",
                           json.dumps(plan.get("plan") or plan.get("error"), indent=1)[:4000]))
    for key, title, path, columns in TABLE_SECTIONS:
        section = snapshot.get(key)
        if isinstance(section, dict) and "error" not in section:
            blocks.append((title, {"columns": columns, "rows": [
                [_cell(row.get(c)) for c in columns] for row in section.get(path, [])]}))
    database = snapshot.get("database_stats") or {}
    checkpoints = snapshot.get("checkpoints") or {}
    counters = [[k, _cell(database.get(k))] for k in ("blks_hit", "blks_read", "temp_files",
                                                      "temp_bytes", "deadlocks")
                if "error" not in database]
    counters += [[f"checkpoints {k} ({checkpoints.get('view')})", _cell(checkpoints.get(k))]
                 for k in ("timed", "requested") if "error" not in checkpoints]
    blocks.append(("Counters", {"columns": ("counter", "value"), "rows": counters}))
    deltas = analysis.get("deltas")
    if deltas:
        blocks.append((f"Since {deltas.get('from')}", {"columns": ("counter", "increase"), "rows": [
            [k, _cell(v)] for k, v in sorted(deltas["counters"].items())
            if not k.startswith("statement.") or v]}))
    settings = server.get("settings") or {}
    planned = report.get("planned_postgresql") or {}
    blocks.append(("Settings", {"columns": ("name", "setting", "unit", "source", "planned"),
                                "rows": [
        [name, _cell(row.get("setting")), _cell(row.get("unit")), _cell(row.get("source")),
         _cell(planned.get(name))] for name, row in sorted(settings.items())]}))
    proposals = analysis.get("proposals") or {}
    if proposals:
        blocks.append(("Proposed stacktune_overrides", overrides_yaml(proposals)))
    return blocks


def _header(report: Mapping[str, Any]) -> str:
    server = report["snapshot"].get("server") or {}
    return (f"database {report['snapshot'].get('database')} on {report.get('source') or '?'}, "
            f"{_short(server.get('version', ''), 60)}, collected {server.get('collected_at', '?')}")


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = ["# stacktune report", "", _header(report), ""]
    for title, content in _sections(report):
        lines += [f"## {title}", ""]
        if isinstance(content, str):
            lines += ["```", content.rstrip(), "```"] if "\n" in content else [content]
        else:
            lines.append("| " + " | ".join(content["columns"]) + " |")
            lines.append("|" + "---|" * len(content["columns"]))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                      for row in content["rows"]]
        lines.append("")
    return "\n".join(lines)


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.high{background:#fdd}td.medium{background:#ffe9c7}td.low{background:#eef}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:20em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
"""


def bar_svg(values: list[tuple[str, float]], width: int = 600) -> str:
    """An inline SVG bar chart (label, value): no scripts, no external assets."""
    if not values:
        return ""
    top = max(v for _, v in values) or 1.0
    row = 18
    bars = []
    for i, (label, value) in enumerate(values):
        length = int((width - 260) * value / top)
        bars.append(
            f'<text x="0" y="{i * row + 13}" font-size="11">{html.escape(label[:40])}</text>'
            f'<rect x="250" y="{i * row + 3}" width="{length}" height="{row - 6}" fill="#4a7"/>'
            f'<text x="{255 + length}" y="{i * row + 13}" font-size="11">{value:,.0f}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{len(values) * row + 4}" role="img">{"".join(bars)}</svg>')


def render_html(report: Mapping[str, Any]) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>stacktune report</title>",
             f"<style>{CSS}</style></head><body><h1>stacktune report</h1>",
             f"<p>{html.escape(_header(report))}</p>"]
    deltas = report["analysis"].get("deltas")
    if deltas:
        statements = {r["queryid"]: r["query"] for r in
                      (report["snapshot"].get("statements") or {}).get("rows", [])}
        growth = sorted(((_short(statements.get(k.split(".")[1], k), 40), v)
                         for k, v in deltas["counters"].items()
                         if k.endswith(".total_exec_time") and v > 0), key=lambda x: -x[1])[:10]
        parts.append(f"<h2>Statement time since {html.escape(str(deltas.get('from')))} (ms)</h2>")
        parts.append(bar_svg(growth))
    for title, content in _sections(report):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(content, str):
            parts.append(f"<pre>{html.escape(content)}</pre>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>"
                                             for c in content["columns"]) + "</tr>")
        for row in content["rows"]:
            cells = []
            for index, value in enumerate(row):
                css = f' class="{value}"' if index == 0 and value in ("high", "medium", "low") \
                    else ""
                cells.append(f"<td{css}>{html.escape(value)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)

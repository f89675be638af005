"""The naive-mode phase: the demo's slow pages before and after the report's advice.

On the demo deployed with naive mode on (``django_settings_extra: {DEMO_NAIVE: true}``):

1. wrk loads each page of the config in turn; pg_stat_statements is reset after the
   page's warm-up, so the statements read after its measured run are that page's alone
   (req/s, p50/p99 latency, errors; statements per request, database time per request,
   and the heaviest statement's mean time);
2. ``stacktune report --format json`` reads the server, then ``stacktune report --apply``
   creates the missing indexes it proposes (CREATE INDEX CONCURRENTLY);
3. the same pages are measured again.

The report's other fixes for these pages are code changes (select_related /
prefetch_related for the N+1, keyset pagination for the deep OFFSET): the phase cannot
apply them, so the demo serves each fixed variant beside its naive page (same rows; a
config page of kind "fixed" names the naive page it ``fixes``), measured the same way.
Before measuring, the phase checks over HTTP that each fixed variant returns the naive
page's rows. ``fix_rows`` pairs one before and one after sample per fix: the naive page
and its fixed variant, or the naive page before and after ``--apply``.

Before the report, pg_stat_statements is reset and each naive page gets a short burst of
traffic, so that the report reads all three patterns. The report runs in the container,
as the playbook's report does: the postgres superuser over the local socket (the index
advisor sets superuser-only parameters), with this checkout's stacktune package (and
its jinja2) copied in and the app's virtualenv (psycopg, redis) as its Python, and
``--redis`` pointing at the app's Redis, where the query recorder keeps its per-view
counts.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from bench.progress import human
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
CLI_DIR = "/var/tmp/stacktune-bench-cli"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value, environ: Mapping[str, str]):
    """``${NAME}`` and ``${NAME:-default}`` in the strings of a JSON config."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [expand(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, environ) for k, v in value.items()}
    return value


def docker_exec(container: str, *argv: str, check: bool = True, timeout: int = 300,
                detach: bool = False) -> str:
    cmd = ["docker", "exec", *(["-d"] if detach else []), container, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} in {container} failed: "
                           f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


def psql(container: str, database: str, sql: str) -> str:
    return docker_exec(container, "runuser", "-u", "postgres", "--", "psql", "-X", "-qAt",
                       "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql).strip()


STATEMENTS = """
SELECT coalesce(json_agg(s ORDER BY s.total_ms DESC), '[]') FROM (
  SELECT calls, total_exec_time AS total_ms, mean_exec_time AS mean_ms, rows,
         left(regexp_replace(query, '\\s+', ' ', 'g'), 300) AS query
  FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid
  WHERE d.datname = '{db}' AND query NOT ILIKE '%pg_stat_statements%') s
"""


def page_statements(container: str, database: str, requests: int) -> dict:
    """What the page's requests cost PostgreSQL since the last reset."""
    rows = json.loads(psql(container, database, STATEMENTS.format(db=database)) or "[]")
    # Connection setup (SET ..., SHOW ...) is not the page's query: the heaviest SELECT is.
    selects = [r for r in rows if r["query"].lstrip().upper().startswith(("SELECT", "WITH"))]
    top = selects[0] if selects else None
    calls = sum(r["calls"] for r in rows)
    total = sum(r["total_ms"] for r in rows)
    return {
        "statements_per_request": calls / requests if requests else None,
        "db_ms_per_request": total / requests if requests else None,
        "top_query": top["query"] if top else None,
        "top_calls": top["calls"] if top else None,
        "top_mean_ms": top["mean_ms"] if top else None,
        "statements": rows[:10],
    }


def measure_pages(cfg: Mapping, pages: list[dict], *, stage: str, say: Callable[[str], None],
                  runner: Callable[..., dict] = run_wrk) -> list[dict]:
    samples = []
    for page in pages:
        url = cfg["base_url"].rstrip("/") + page["path"]
        say(f"[naive {stage}] {page['name']}: {page['path']} ({cfg['duration']} s)")
        if cfg.get("warmup"):
            runner(url, duration=cfg["warmup"], connections=cfg["connections"],
                   threads=cfg["threads"], headers=cfg.get("headers"))
        psql(cfg["container"], cfg["database"], "SELECT pg_stat_statements_reset()")
        sample = runner(url, duration=cfg["duration"], connections=cfg["connections"],
                        threads=cfg["threads"], headers=cfg.get("headers"))
        sample.update(stage=stage, page=page["name"], path=page["path"],
                      kind=page.get("kind", "naive"), problem=page.get("problem"))
        sample.update(page_statements(cfg["container"], cfg["database"], sample["requests"]))
        say(f"    {sample['requests_per_s']:.1f} req/s, p50 {sample['p50_ms']} ms, "
            f"p99 {sample['p99_ms']} ms, errors {sample['errors']}, "
            f"{sample['statements_per_request'] or 0:.1f} statements/request, "
            f"heaviest statement {sample['top_mean_ms'] or 0:.3f} ms mean")
        samples.append(sample)
    return samples


def install_cli(container: str) -> None:
    """This checkout's stacktune package, and jinja2 (its CLI imports the renderer), in the
    container; the app's virtualenv brings psycopg and redis."""
    import jinja2
    import markupsafe

    docker_exec(container, "sh", "-c", f"rm -rf {CLI_DIR} && mkdir -p {CLI_DIR}")
    for source in (ROOT / "stacktune", Path(jinja2.__file__).parent,
                   Path(markupsafe.__file__).parent):
        subprocess.run(["docker", "cp", str(source), f"{container}:{CLI_DIR}/{source.name}"],
                       capture_output=True, text=True, check=True)
    docker_exec(container, "sh", "-c", f"chown -R postgres: {CLI_DIR} && chmod -R go-w {CLI_DIR}")


def run_report(cfg: Mapping, out: Path, *, apply: bool) -> dict:
    """stacktune report --format json [--apply] in the container, as postgres; the parsed
    report and the command."""
    name = "report-applied.json" if apply else "report.json"
    report_args = ["report", "--dsn", cfg["dsn"], "--redis", cfg["redis"], "--format", "json",
                   "--out", f"{CLI_DIR}/{name}", *(["--apply"] if apply else [])]
    argv = ["runuser", "-u", "postgres", "--", "env", f"PYTHONPATH={CLI_DIR}", cfg["python"],
            "-m", "stacktune.cli", *report_args]
    proc = subprocess.run(["docker", "exec", cfg["container"], *argv], capture_output=True,
                          text=True, check=False, timeout=900)
    shown = "stacktune " + " ".join(shlex.quote(a) for a in report_args
                                    if a not in ("--out", f"{CLI_DIR}/{name}"))
    shown = re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", shown)  # the Redis password
    if proc.returncode != 0:
        raise RuntimeError(f"{shown} failed: {proc.stderr.strip()[-800:]}")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["docker", "cp", f"{cfg['container']}:{CLI_DIR}/{name}", str(out / name)],
                   capture_output=True, text=True, check=True)
    return {"command": shown, "file": name, "stderr": proc.stderr.strip().splitlines(),
            "report": json.loads((out / name).read_text())}


def report_traffic(cfg: Mapping, pages: list[dict], *, say: Callable[[str], None],
                   runner: Callable[..., dict] = run_wrk) -> None:
    """pg_stat_statements from a clean start with every naive page in it."""
    psql(cfg["container"], cfg["database"], "SELECT pg_stat_statements_reset()")
    for page in pages:
        say(f"[naive] traffic for the report: {page['path']} ({cfg['report_traffic']} s)")
        runner(cfg["base_url"].rstrip("/") + page["path"], duration=cfg["report_traffic"],
               connections=cfg["connections"], threads=cfg["threads"],
               headers=cfg.get("headers"))


def _findings(report: Mapping) -> list[dict]:
    """The report's findings: kind, severity, title and fix."""
    findings = (report.get("analysis") or {}).get("findings") or []
    return [{k: f.get(k) for k in ("kind", "severity", "title", "fix")} for f in findings]


ARCHIVE_KEY = re.compile(r"\{archive_key:(\d+)\}")
# The naive archive's order and page size (demo/publishing/views.py: ARCHIVE_ORDER,
# NAIVE_ARCHIVE_PAGE_SIZE).
ARCHIVE_KEY_SQL = ("SELECT word_count || ',' || id FROM publishing_article "
                   "ORDER BY word_count DESC, id DESC OFFSET {offset} LIMIT 1")
ARCHIVE_PAGE_SIZE = 20


def archive_key_offset(page: int, page_size: int = ARCHIVE_PAGE_SIZE) -> int:
    """The row whose key ``?after=`` takes to serve OFFSET page ``page``: the last row of
    the page before it (keyset pages start after the key)."""
    if page < 2:
        raise ValueError("{archive_key:N} needs N >= 2: page 1 has no key before it")
    return (page - 1) * page_size - 1


def resolve_paths(cfg: Mapping) -> list[dict]:
    """Pages whose path needs the data: ``{author}`` becomes a real commenter's name,
    ``{archive_key:N}`` the sort key (word_count,id) that starts the keyset archive at
    OFFSET page N."""
    pages = []
    author = None
    for page in cfg["pages"]:
        path = page["path"]
        if "{author}" in path:
            if author is None:
                # The busiest commenter: the filter returns rows, as a real lookup would.
                author = psql(cfg["container"], cfg["database"],
                              "SELECT author_name FROM publishing_comment GROUP BY 1 "
                              "ORDER BY count(*) DESC LIMIT 1")
            path = path.replace("{author}", quote(author))
        for match in ARCHIVE_KEY.finditer(path):
            offset = archive_key_offset(int(match.group(1)))
            key = psql(cfg["container"], cfg["database"], ARCHIVE_KEY_SQL.format(offset=offset))
            path = path.replace(match.group(0), key)
        pages.append({**page, "path": path})
    return pages


def _rows(cfg: Mapping, path: str) -> list:
    request = urllib.request.Request(cfg["base_url"].rstrip("/") + path,
                                     headers=dict(cfg.get("headers") or {}))
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["results"]


def same_content(cfg: Mapping, pages: list[dict],
                 fetch: Callable[[Mapping, str], list] = _rows) -> dict[str, bool]:
    """For each fixed variant: does it return its naive page's rows, in the same order?"""
    by_name = {p["name"]: p for p in pages}
    return {page["name"]: fetch(cfg, page["path"]) == fetch(cfg, by_name[page["fixes"]]["path"])
            for page in pages if page.get("kind") == "fixed" and page.get("fixes") in by_name}


def run_naive_phase(config: Mapping, *, out: Path, say: Callable[[str], None] = print,
                    shell: Callable[[str], None] | None = None) -> dict:
    cfg = {"duration": 20, "warmup": 5, "connections": 8, "threads": 2, "database": "app",
           "report_traffic": 10, "python": "/srv/app/venv/bin/python", **config}
    run_shell = shell or (lambda command: subprocess.run(command, shell=True, check=True,
                                                         cwd=ROOT))
    started = time.monotonic()
    if cfg.get("setup"):
        say(f"[naive] deploying the demo in naive mode: {cfg['setup']}")
        run_shell(cfg["setup"])
    pages = resolve_paths(cfg)
    naive_pages = [p for p in pages if p.get("kind", "naive") == "naive"]
    result: dict = {"pages": pages, "samples": [], "notes": cfg.get("notes", []),
                    "finding_kinds": cfg.get("finding_kinds", []),
                    "load_average_start": Path("/proc/loadavg").read_text().split()[:3]}
    # A rerun on the same container: drop what an earlier --apply created, so that
    # "before" is the naive schema.
    for statement in cfg.get("before", []):
        psql(cfg["container"], cfg["database"], statement)
    result["same_content"] = same_content(cfg, pages)
    for name, same in result["same_content"].items():
        say(f"[naive] {name}: {'the same rows as' if same else 'NOT the same rows as'} "
            "its naive page")
    result["samples"] += measure_pages(cfg, pages, stage="before", say=say)
    report_traffic(cfg, naive_pages, say=say)
    install_cli(cfg["container"])
    say("[naive] stacktune report --format json (in the container, as postgres)")
    report = run_report(cfg, out, apply=False)
    say("[naive] stacktune report --format json --apply")
    applied = run_report(cfg, out, apply=True)
    index_section = (applied["report"].get("snapshot") or {}).get("missing_indexes") or {}
    result["report"] = {
        "command": report["command"], "file": report["file"],
        "apply_command": applied["command"], "apply_file": applied["file"],
        "findings": _findings(report["report"]),
        "applied": index_section.get("applied") or [],
    }
    for fix in result["report"]["applied"]:
        say(f"    applied: {fix}")
    result["samples"] += measure_pages(cfg, naive_pages, stage="after", say=say)
    result["wall_time"] = human(time.monotonic() - started)
    result["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return result


def summary_rows(result: Mapping) -> list[dict]:
    """One row per page: before, after (naive pages) or the fixed page's own figures."""
    rows = []
    by = {(s["stage"], s["page"]): s for s in result.get("samples", [])}
    for page in result.get("pages", []):
        before = by.get(("before", page["name"]))
        after = by.get(("after", page["name"]))
        rows.append({"page": page, "before": before, "after": after})
    return rows



def fix_rows(result: Mapping) -> list[dict]:
    """One before/after pair per fix: a naive page with ``fixed_by: index`` before and
    after ``--apply``; one with ``fixed_by: code`` beside the fixed variant that names it
    in ``fixes`` (measured in the same stage)."""
    by = {(s["stage"], s["page"]): s for s in result.get("samples", [])}
    pages = result.get("pages", [])
    rows = []
    for page in pages:
        if page.get("kind", "naive") != "naive" or not page.get("fixed_by"):
            continue
        before = by.get(("before", page["name"]))
        if page["fixed_by"] == "index":
            after_page, after = page, by.get(("after", page["name"]))
        else:
            after_page = next((p for p in pages if p.get("fixes") == page["name"]), None)
            after = by.get(("before", after_page["name"])) if after_page else None
        rows.append({"page": page, "fix": page.get("fix") or page["fixed_by"],
                     "before": before, "after_page": after_page, "after": after,
                     "same_content": (result.get("same_content") or {}).get(
                         after_page["name"]) if after_page is not page and after_page
                     else None})
    return rows

"""N+1 suspects from the query recorder's per-view totals in Redis.

The recorder (templates/stacktune_queries.py, installed beside the app's
stacktune_settings.py by the django_settings role) adds each sampled request to
its view's totals with atomic increments. ``read_records`` reads them back,
``n_plus_one_findings`` names the views that run the same query shape many
times per request, with the SQL and the relation to load in bulk.

Run as a script on an app host with the app's Python (playbooks/report.yml does, since
on a cluster only the app tier may reach the cache), it prints the report's ``nplusone``
section as JSON, reading the recorder's Redis address and key prefix from the app's own
settings module: no credential leaves the host.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Must match templates/stacktune_queries.py (DEFAULT_KEY_PREFIX and the key layout).
DEFAULT_KEY_PREFIX = "stacktune:queries"

# A shape run at least this many times per request, on average over the view's
# sampled requests, is an N+1 suspect. A list page repeats its per-row query once per
# row, and list pages show 10 to 50 rows; legitimate repeats (a handful of settings
# or permission lookups) stay well below 5.
REPEATS_PER_REQUEST_MIN = 5.0
# Severity by repeats per request: each repeat is a round trip through PgBouncer,
# about 0.1-0.5 ms even when the query itself is free.
REPEATS_HIGH = 20.0
REPEATS_MEDIUM = 10.0

_SHAPE_FIELD = re.compile(r"^shape:(?P<id>[0-9a-f]+):(?P<what>count|requests)$")
_FROM_TABLE = re.compile(r'\bFROM "(?P<table>[^"]+)"')
_JOIN_TABLE = re.compile(r'\bJOIN "(?P<table>[^"]+)"')
_WHERE_COLUMN = re.compile(r'\bWHERE "(?P<table>[^"]+)"\."(?P<column>[^"]+)" (?:= \?|IN \()')


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_records(redis_url: str, prefix: str = DEFAULT_KEY_PREFIX) -> list[dict]:
    """The recorder's per-view totals in Redis, one record per view, sorted by view.

    Uses only the commands the app's Redis ACL user is allowed (SMEMBERS, HGETALL,
    ZRANGE, GET on keys under the cache prefix), so the app's credentials suffice.
    A record: ``{"view", "requests", "queries", "max_queries", "lost_samples",
    "shapes": [{"sql", "count", "requests", "max_per_request"}]}``, shapes by count.
    """
    import redis  # a runtime dependency of stacktune

    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    views = sorted(_text(v) for v in client.smembers(f"{prefix}:views"))
    sql_by_id = {_text(k): _text(v) for k, v in client.hgetall(f"{prefix}:sql").items()}
    max_by_view = {
        _text(k): int(v) for k, v in client.zrange(f"{prefix}:max", 0, -1, withscores=True)
    }
    lost = int(client.get(f"{prefix}:errors") or 0)
    records = []
    for view in views:
        fields = {_text(k): int(v) for k, v in client.hgetall(f"{prefix}:view:{view}").items()}
        shape_max = {
            _text(k): int(v)
            for k, v in client.zrange(f"{prefix}:shape_max:{view}", 0, -1, withscores=True)
        }
        shapes: dict[str, dict[str, Any]] = {}
        for field, value in fields.items():
            match = _SHAPE_FIELD.match(field)
            if match:
                sid = match["id"]
                shape = shapes.setdefault(
                    sid,
                    {
                        "sql": sql_by_id.get(sid, f"<unknown {sid}>"),
                        "count": 0,
                        "requests": 0,
                        "max_per_request": shape_max.get(sid, 0),
                    },
                )
                shape[match["what"]] = value
        records.append(
            {
                "view": view,
                "requests": fields.get("requests", 0),
                "queries": fields.get("queries", 0),
                "max_queries": max_by_view.get(view, 0),
                "lost_samples": lost,
                "shapes": sorted(shapes.values(), key=lambda s: (-s["count"], s["sql"])),
            }
        )
    return records


def _model_name(table: str) -> str:
    """Django's default table name is <app_label>_<model>: the model part, as a guess."""
    return table.split("_", 1)[1] if "_" in table else table


def relation_fix(sql: str) -> str:
    """The bulk-loading fix the SQL shape points to (Django's select_related and
    prefetch_related documentation: a forward foreign key joins, reverse and
    many-to-many relations prefetch in one more query)."""
    where = _WHERE_COLUMN.search(sql)
    join = _JOIN_TABLE.search(sql)
    source = _FROM_TABLE.search(sql)
    if where and join and where["table"] == join["table"] and where["column"].endswith("_id"):
        # Many-to-many through its join table: "<app>_<model>_<field>" filtered on <model>_id.
        owner = where["column"][: -len("_id")]
        through = where["table"]
        marker = f"_{owner}_"
        field = through.split(marker, 1)[1] if marker in through else through
        return (
            f'prefetch_related("{field}") on the queryset of {owner} rows: the many-to-many '
            f'join table "{through}" is read once per {owner}.'
        )
    if where and where["column"] == "id" and source:
        table = source["table"]
        return (
            f'select_related("{_model_name(table)}") (the foreign key to "{table}"; adjust to '
            f"the field's name) on the list's queryset: each row loads its related "
            f"{_model_name(table)} with its own query."
        )
    if where and where["column"].endswith("_id") and source:
        table, parent = source["table"], where["column"][: -len("_id")]
        return (
            f'prefetch_related on the reverse relation from {parent} to "{table}" (its '
            f"related_name, {_model_name(table)}_set by default): each {parent} reads its "
            f"{_model_name(table)} rows with its own query."
        )
    return (
        "load these rows in bulk before the loop (prefetch_related, or one filter(pk__in=...) "
        "query) instead of one query per item."
    )


def _severity(repeats: float) -> str:
    if repeats >= REPEATS_HIGH:
        return "high"
    if repeats >= REPEATS_MEDIUM:
        return "medium"
    return "low"


def n_plus_one_findings(records: list[dict]) -> list[dict]:
    """One finding per (view, repeated shape) run REPEATS_PER_REQUEST_MIN+ times per request
    on average; the most repeated first."""
    findings = []
    for record in records:
        requests = record.get("requests", 0)
        if requests <= 0:
            continue
        for shape in record.get("shapes", []):
            repeats = shape["count"] / requests
            if repeats < REPEATS_PER_REQUEST_MIN:
                continue
            view, sql = record["view"], shape["sql"]
            findings.append(
                {
                    "kind": "n_plus_one",
                    "severity": _severity(repeats),
                    "title": (
                        f"N+1 in view {view}: the same query {repeats:.0f} times per request"
                    ),
                    "evidence": {
                        "requests": requests,
                        "mean_queries_per_request": round(record.get("queries", 0) / requests, 1),
                        "max_queries_per_request": record.get("max_queries", 0),
                        "repeated_sql": sql,
                        "repeats_per_request": round(repeats, 1),
                        "max_repeats_per_request": shape.get("max_per_request", 0),
                        "lost_samples": record.get("lost_samples", 0),
                    },
                    "fix": relation_fix(sql),
                    "objects": {"view": view, "sql": sql},
                }
            )
    findings.sort(key=lambda f: (-f["evidence"]["repeats_per_request"], f["objects"]["view"]))
    return findings


RECORDER_OFF_HINT = ("set django_settings_query_recorder: true (the django_settings role) and "
                     "add MIDDLEWARE += STACKTUNE_MIDDLEWARE to the app's settings")


def settings_module_path(package: str, source_dir: str) -> Path:
    """Where the django_settings role wrote stacktune_settings.py: beside the WSGI module, in
    the package found from the source tree or the virtualenv (a project installed as a
    wheel). Finding the package does not import it."""
    import importlib.util
    import sys

    sys.path.insert(0, source_dir)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"no package {package!r} in {source_dir} or the app's virtualenv")
    return Path(next(iter(spec.submodule_search_locations))) / "stacktune_settings.py"


def section_from_settings(settings_path: str) -> dict[str, Any]:
    """The report's ``nplusone`` section from the recorder configured in ``settings_path``:
    ``{"findings", "views"}``, or ``{"error"}`` saying what to enable."""
    import runpy

    try:
        settings = runpy.run_path(settings_path)
    except OSError as error:
        return {"error": f"cannot read the app's settings module {settings_path} "
                         f"({error.strerror}): the django_settings role writes it"}
    recorder = settings.get("STACKTUNE_QUERY_RECORDER") or {}
    if not recorder.get("REDIS_URL"):
        return {"error": f"the query recorder is off in {settings_path}: {RECORDER_OFF_HINT}"}
    try:
        records = read_records(recorder["REDIS_URL"],
                               recorder.get("KEY_PREFIX") or DEFAULT_KEY_PREFIX)
    except Exception as error:  # redis' errors: connection, timeout, ACL
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return {"error": f"cannot read the N+1 records from the recorder's Redis: {first}"}
    return {"findings": n_plus_one_findings(records), "views": len(records)}


def _main(argv: list[str]) -> int:
    """nplusone.py SETTINGS_PATH | nplusone.py --package PACKAGE SOURCE_DIR"""
    import json

    if argv[:1] == ["--package"] and len(argv) == 3:
        try:
            path = str(settings_module_path(argv[1], argv[2]))
        except (LookupError, ImportError, ValueError) as error:
            print(json.dumps({"error": f"cannot find the app's settings module: {error}"}))
            return 0
    elif len(argv) == 1:
        path = argv[0]
    else:
        print(_main.__doc__)
        return 2
    print(json.dumps(section_from_settings(path)))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))

"""Compare a plan with what a running service reports (pure functions on the reported rows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stacktune import pg_params
from stacktune.model import PlanError
from stacktune.units import UnitError, parse_redis_memory

# Redis settings that hold a size: CONFIG GET reports them in bytes.
REDIS_SIZE_SETTINGS = frozenset({"maxmemory", "proto-max-bulk-len", "client-query-buffer-limit"})


def pending_restart_settings(planned: Mapping[str, object], pg_settings_rows: Iterable[Mapping],
                             version: int) -> list[str]:
    """Planned PostgreSQL settings whose live value differs and that only a restart applies.

    ``pg_settings_rows`` are rows of `SELECT name, setting, context FROM pg_settings`.
    Values are compared in the parameter's base unit, so '1GB' equals a setting of 131072
    (8kB pages).
    """
    rows = {str(row["name"]): row for row in pg_settings_rows}
    pending = []
    for name, value in planned.items():
        row = rows.get(name)
        if row is None or str(row.get("context")) != "postmaster":
            continue
        if not _same(name, str(value), str(row["setting"]), int(version)):
            pending.append(name)
    return sorted(pending)


def _same(name: str, planned: str, live: str, version: int) -> bool:
    try:
        param = pg_params.param_for(name, version)
    except PlanError:
        return planned == live
    if param.vartype in ("integer", "real"):
        try:
            return abs(pg_params.value_in_base_units(name, planned, version) - float(live)) < 1e-9
        except (PlanError, ValueError):
            return planned == live
    if param.vartype == "bool":
        return pg_params.validate_pg_value(name, planned, version) == (
            "on" if live in ("on", "true") else "off")
    return planned.strip().lower() == live.strip().lower()


def pgbouncer_config_mismatches(planned: Mapping[str, object],
                                show_config_lines: Iterable[str]) -> list[str]:
    """Planned PgBouncer settings that the running PgBouncer does not report (SHOW CONFIG).

    ``show_config_lines`` are psql -At rows 'key|value|default|changeable'. After a RELOAD
    PgBouncer keeps its old values when the new file is bad, so a mismatch means the
    reload did not take.
    """
    live = {}
    for line in show_config_lines:
        fields = str(line).split("|")
        if len(fields) >= 2:
            live[fields[0]] = fields[1]
    mismatches = []
    for name, value in planned.items():
        if name not in live:
            mismatches.append(f"{name}: planned {value}, not reported by PgBouncer")
        elif not _same_text(str(value), live[name]):
            mismatches.append(f"{name}: planned {value}, running {live[name]}")
    return mismatches


def _same_text(planned: str, live: str) -> bool:
    try:
        return float(planned) == float(live)
    except ValueError:
        return planned.strip().lower() == live.strip().lower()


def redis_config_changes(planned: Mapping[str, object],
                         config_get_lines: Iterable[str]) -> dict[str, str]:
    """Planned Redis settings whose live value differs: {name: value for CONFIG SET}.

    ``config_get_lines`` are redis-cli's lines for one `CONFIG GET name...` (name, value,
    name, value...; an empty value is an empty line). Sizes are compared in bytes, since
    Redis reports '1gb' as 1073741824; the plan's '""' (an empty value, as redis.conf
    writes it) is the empty string. A planned setting Redis does not report is a change:
    CONFIG SET then names it in its error.
    """
    lines = [str(line) for line in config_get_lines]
    if len(lines) % 2:
        lines.append("")  # the last value was empty and its line was trimmed
    live = dict(zip(lines[::2], lines[1::2], strict=True))
    changes = {}
    for name, value in planned.items():
        wanted = _redis_value(value)
        if name not in live or not _same_redis(name, wanted, live[name]):
            changes[name] = wanted
    return changes


def _redis_value(value: object) -> str:
    text = str(value).strip()
    return "" if text in ('""', "''") else text


def _same_redis(name: str, planned: str, live: str) -> bool:
    if name in REDIS_SIZE_SETTINGS:
        try:
            return parse_redis_memory(planned) == parse_redis_memory(live)
        except UnitError:
            return planned == live
    return planned.strip().lower() == live.strip().lower()


def redis_config_set_line(changes: Mapping[str, object]) -> str:
    """One redis-cli line that sets every changed setting at once (Redis 7.0+ CONFIG SET)."""
    words = ["CONFIG", "SET"]
    for name, value in sorted(changes.items()):
        words += [str(name), str(value)]
    return " ".join(_redis_cli_quote(word) for word in words)


def _redis_cli_quote(word: str) -> str:
    # redis-cli splits a line like sdssplitargs: double quotes, with \\ and \" escaped.
    # A line break would end the command and start another: refused.
    if "\n" in word or "\r" in word:
        raise ValueError(f"a Redis setting may not hold a line break: {word!r}")
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'

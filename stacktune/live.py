"""Compare a plan with what a running service reports (pure functions on the reported rows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stacktune import pg_params
from stacktune.model import PlanError


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

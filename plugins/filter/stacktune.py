"""Filters the roles use to compare the plan with what services report; logic is the engine's."""

from __future__ import annotations

# The engine shipped in this collection (imported for that side effect, before stacktune).
from ansible_collections.stacktune.stacktune.plugins.module_utils import (  # noqa: F401
    stacktune_engine,
)

from stacktune.addresses import host_address
from stacktune.live import (
    pending_restart_settings,
    pgbouncer_config_mismatches,
    redis_config_changes,
    redis_config_set_line,
)
from stacktune.render import (
    comment,
    conf_comment,
    conf_value,
    conf_word,
    connstr_word,
    pg_quote,
    plain,
    py,
    py_literal,
)


def _host_address(explicit: object, host: str, ipv4_addresses: list) -> str:
    """``explicit | stacktune_host_address(host, ipv4_addresses)``; a task error naming the fix."""
    from ansible.errors import AnsibleFilterError

    from stacktune.model import PlanError

    try:
        return host_address(host, explicit, ipv4_addresses)
    except PlanError as error:
        raise AnsibleFilterError(str(error)) from None


def _restart_pause(pause_seconds: object, bouncer: dict,
                   name: str = "postgresql_restart_pause_timeout") -> float:
    """``pause | stacktune_restart_pause(pgbouncer_plan)``: the pause in seconds, checked
    against the clients' query_wait_timeout; a task error naming the fix."""
    from ansible.errors import AnsibleFilterError

    from stacktune.model import PlanError
    from stacktune.timeout_chain import check_restart_pause

    try:
        return check_restart_pause(pause_seconds, plain(bouncer), name)
    except PlanError as error:
        raise AnsibleFilterError(str(error)) from None


def _replica_action(probe: dict, **kwargs: object) -> str:
    """``probe | stacktune_replica_action(host=..., ...)``: keep or build a replica, or a task
    error naming the host and the fix (stacktune.replicas.replica_action)."""
    from ansible.errors import AnsibleFilterError

    from stacktune.model import PlanError
    from stacktune.replicas import replica_action

    try:
        return replica_action(**{**plain(probe), **plain(kwargs)})
    except PlanError as error:
        raise AnsibleFilterError(str(error)) from None


def _engine_call(function, *args):
    """The engine's answer, or its PlanError as a task error naming the fix."""
    from ansible.errors import AnsibleFilterError

    from stacktune.model import PlanError

    try:
        return function(*args)
    except PlanError as error:
        raise AnsibleFilterError(str(error)) from None


def _restart_time_left(pause_seconds: object, pause_deltas: list) -> int:
    """``pause | stacktune_restart_time_left(pause_results | map(attribute='delta'))``."""
    from stacktune.timeout_chain import restart_time_left

    return _engine_call(restart_time_left, pause_seconds, list(pause_deltas))


def _held_seconds(pause_starts: list, resume_starts: list) -> list[float]:
    """``pause_starts | stacktune_held_seconds(resume_starts)``: seconds each PgBouncer held."""
    from stacktune.timeout_chain import held_seconds

    return _engine_call(held_seconds, list(pause_starts), list(resume_starts))


def _pgbouncer_restart(wanted: dict, show_config_lines: list, package_version: str,
                       allow_restart: bool, allow_plain_restart: bool) -> dict:
    """``new_file_values | stacktune_pgbouncer_restart(show_config, version, allow, plain)``."""
    from stacktune.pgbouncer_restart import decide_restart

    return _engine_call(decide_restart, plain(wanted), list(show_config_lines),
                        str(package_version), bool(allow_restart),
                        bool(allow_plain_restart)).as_dict()


def _report(snapshot: dict, fmt: str = "md", plan: dict | None = None, source: str = "") -> str:
    """``snapshot | stacktune_report('html', plan)``: the rendered report, analysed here."""
    from stacktune.report.analyse import analyse
    from stacktune.report.render import render, report_data

    snapshot, plan = plain(snapshot), plain(plan) or None
    return render(report_data(snapshot, analyse(snapshot, plan=plan), source, plan), fmt)


def _report_overrides(snapshot: dict, plan: dict | None = None) -> str:
    """``snapshot | stacktune_report_overrides``: the proposals as a stacktune_overrides file."""
    from stacktune.report.analyse import analyse, overrides_yaml

    return overrides_yaml(analyse(plain(snapshot), plan=plain(plan) or None)["proposals"])


def _alert_rules(plan: dict, target_down_for: str = "2m") -> dict:
    """``stacktune_plan_result.plan | stacktune_alert_rules(for)``: the rules file's data."""
    from stacktune.monitoring import alert_rules

    return _engine_call(alert_rules, plain(plan), str(target_down_for))


def _exporter_queries(pg_version: object) -> dict:
    """``pg_version | stacktune_exporter_queries``: the stacktune_pg_* queries, as data."""
    from stacktune.monitoring import postgres_exporter_queries

    return postgres_exporter_queries(int(pg_version))


class FilterModule:
    def filters(self):
        return {
            "stacktune_pending_restart": pending_restart_settings,
            "stacktune_replica_action": _replica_action,
            "stacktune_pgbouncer_mismatches": pgbouncer_config_mismatches,
            "stacktune_host_address": _host_address,
            "stacktune_redis_changes": redis_config_changes,
            "stacktune_restart_pause": _restart_pause,
            "stacktune_restart_time_left": _restart_time_left,
            "stacktune_held_seconds": _held_seconds,
            "stacktune_pgbouncer_restart": _pgbouncer_restart,
            "stacktune_redis_config_set": redis_config_set_line,
            "pg_quote": pg_quote,
            "py": py,
            "stacktune_comment": comment,
            "stacktune_report": _report,
            "stacktune_report_overrides": _report_overrides,
            "stacktune_alert_rules": _alert_rules,
            "stacktune_exporter_queries": _exporter_queries,
            # Render-time guards, the same functions as the CLI's renderer.
            "py_literal": py_literal,
            "conf_comment": conf_comment,
            "conf_value": conf_value,
            "conf_word": conf_word,
            "connstr_word": connstr_word,
        }

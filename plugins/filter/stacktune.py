"""Filters the roles use to compare the plan with what services report; logic is the engine's."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import stacktune  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
    py,
    py_literal,
)


class FilterModule:
    def filters(self):
        return {
            "stacktune_pending_restart": pending_restart_settings,
            "stacktune_pgbouncer_mismatches": pgbouncer_config_mismatches,
            "stacktune_redis_changes": redis_config_changes,
            "stacktune_redis_config_set": redis_config_set_line,
            "pg_quote": pg_quote,
            "py": py,
            "stacktune_comment": comment,
            # Render-time guards, the same functions as the CLI's renderer.
            "py_literal": py_literal,
            "conf_comment": conf_comment,
            "conf_value": conf_value,
            "conf_word": conf_word,
            "connstr_word": connstr_word,
        }

"""PostgreSQL parameters stacktune may write, with their legal values per major version.

The catalogue is data: one ``PgParam`` per parameter, in the terms of
``pg_settings`` (vartype, unit, min_val, max_val, enumvals, context), for
PostgreSQL 13 to 18. Where a parameter differs between versions, ``overrides``
says from which version on which fields change.

Sources: the figures were read from ``pg_settings`` of a live PostgreSQL 15
server (with pg_stat_statements and auto_explain loaded) and, for the other
versions, from the PostgreSQL source (``guc_tables.c`` of the 18 branch and
the commits that changed a parameter) and release notes. Facts that rest on
release notes only carry a comment. Figures assume the default 8kB block
size and a 64-bit build.

``validate_pg_value`` reads a value the way PostgreSQL reads postgresql.conf:
memory units B/kB/MB/GB/TB and time units us/ms/s/min/h/d (case-sensitive), a
bare number in the parameter's own unit, fractions rounded to the nearest
whole unit for integer parameters (as PostgreSQL does), booleans as
on/off/true/false/yes/no/1/0 (and their unique prefixes), enums without
regard to case. It is stricter than PostgreSQL in one place: an integer with a
leading zero ('010') or in hex ('0x40') is refused, because PostgreSQL reads
'010' as octal 8, which no plan means.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from stacktune.model import SUPPORTED_PG_VERSIONS, PlanError
from stacktune.units import GiB, KiB, MiB, TiB

VARTYPES = ("bool", "integer", "real", "string", "enum")
CONTEXTS = (
    "internal", "postmaster", "sighup", "superuser-backend", "backend", "superuser", "user",
)

INT_MAX = 2_147_483_647
MAX_KILOBYTES = INT_MAX  # 64-bit builds
MAX_BACKENDS = 0x3FFFF  # 262143
MAX_PARALLEL_WORKER_LIMIT = 1024
MAX_IO_CONCURRENCY = 1000
DBL_MAX = sys.float_info.max
BLOCK_SIZE = 8 * KiB  # BLCKSZ and XLOG_BLCKSZ of every mainstream build

Overrides = tuple[tuple[int, tuple[tuple[str, object], ...]], ...]


@dataclass(frozen=True)
class PgParam:
    """One parameter as pg_settings describes it (in one version, or in general)."""

    name: str
    vartype: str  # "bool" | "integer" | "real" | "string" | "enum"
    unit: str | None  # pg_settings.unit: "B", "kB", "8kB", "MB", "ms", "s", "min", or None
    min_value: float | None  # in the parameter's unit (as pg_settings.min_val)
    max_value: float | None
    enum_values: tuple[str, ...] = ()
    context: str = "sighup"  # postmaster | sighup | superuser-backend | superuser | user ...
    since: int = 13  # first major version that has it (13 = supported floor)
    until: int | None = None  # last major version that has it; None = still in 18
    # From a version on, some fields differ: ((15, (("vartype", "enum"), ...)), ...).
    # param_for() applies them and returns a PgParam without overrides.
    overrides: Overrides = ()
    # Spellings PostgreSQL accepts but does not list in enumvals (hidden
    # entries), mapped to the listed value they mean: (("true", "on"), ...).
    enum_aliases: tuple[tuple[str, str], ...] = ()
    # Library that defines the parameter (it must be in shared_preload_libraries).
    extension: str | None = None

    def exists_in(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)

    def at(self, version: int) -> PgParam:
        """This parameter as it is in ``version`` (overrides applied, none left)."""
        changed: dict[str, object] = {}
        for from_version, changes in sorted(self.overrides):
            if from_version <= version:
                changed.update(changes)
        return replace(self, overrides=(), **changed)  # type: ignore[arg-type]


def _from(version: int, **changes: object) -> tuple[int, tuple[tuple[str, object], ...]]:
    known = {f.name for f in fields(PgParam)}
    unknown = set(changes) - known
    if unknown:
        raise TypeError(f"PgParam has no field {sorted(unknown)}")
    return version, tuple(sorted(changes.items()))


# Hidden spellings of on/off that PostgreSQL's "on/off-like" enums accept.
_ON_OFF_ALIASES = (
    ("true", "on"), ("yes", "on"), ("1", "on"),
    ("false", "off"), ("no", "off"), ("0", "off"),
)


def _int(name: str, unit: str | None, lo: float, hi: float, context: str, **kw: object) -> PgParam:
    return PgParam(name, "integer", unit, lo, hi, context=context, **kw)  # type: ignore[arg-type]


def _real(name: str, unit: str | None, lo: float, hi: float, context: str, **kw: object) -> PgParam:
    return PgParam(name, "real", unit, lo, hi, context=context, **kw)  # type: ignore[arg-type]


def _bool(name: str, context: str, **kw: object) -> PgParam:
    return PgParam(name, "bool", None, None, None, context=context, **kw)  # type: ignore[arg-type]


def _enum(name: str, values: tuple[str, ...], context: str, **kw: object) -> PgParam:
    return PgParam(name, "enum", None, None, None, enum_values=values, context=context,
                   **kw)  # type: ignore[arg-type]


def _str(name: str, context: str, **kw: object) -> PgParam:
    return PgParam(name, "string", None, None, None, context=context, **kw)  # type: ignore[arg-type]


_CATALOGUE: tuple[PgParam, ...] = (
    # --- Connections and authentication -------------------------------------------
    # The sum max_connections + autovacuum workers (+ launcher) + max_worker_processes
    # + max_wal_senders must also stay within MAX_BACKENDS (13-15 refuse the value,
    # 16+ refuse to start); a per-value check cannot see that.
    _int("max_connections", None, 1, MAX_BACKENDS, "postmaster"),
    _int("superuser_reserved_connections", None, 0, MAX_BACKENDS, "postmaster"),
    _int("reserved_connections", None, 0, MAX_BACKENDS, "postmaster", since=16),
    _str("listen_addresses", "postmaster"),
    _int("port", None, 1, 65535, "postmaster"),
    _enum(
        "password_encryption", ("md5", "scram-sha-256"), "user",
        # 13 still took the legacy boolean-like spellings as md5; 14 removed them
        # (14 release notes: "no longer accepted").
        enum_aliases=(("on", "md5"), ("true", "md5"), ("yes", "md5"), ("1", "md5")),
        overrides=(_from(14, enum_aliases=()),),
    ),
    _int("tcp_keepalives_idle", "s", 0, INT_MAX, "user"),
    _int("tcp_keepalives_interval", "s", 0, INT_MAX, "user"),
    _int("tcp_keepalives_count", None, 0, INT_MAX, "user"),
    # --- Memory ---------------------------------------------------------------------
    _int("shared_buffers", "8kB", 16, INT_MAX // 2, "postmaster"),
    _enum("huge_pages", ("off", "on", "try"), "postmaster", enum_aliases=_ON_OFF_ALIASES),
    _int("huge_page_size", "kB", 0, INT_MAX, "postmaster", since=14),
    _int("temp_buffers", "8kB", 100, INT_MAX // 2, "user"),
    _int("work_mem", "kB", 64, MAX_KILOBYTES, "user"),
    _real("hash_mem_multiplier", None, 1, 1000, "user"),
    # Minimum lowered from 1MB to 64kB in 17 (commit bbf668d, with the TID store).
    _int("maintenance_work_mem", "kB", 1024, MAX_KILOBYTES, "user",
         overrides=(_from(17, min_value=64),)),
    # Values between 0 and the minimum of maintenance_work_mem are raised to it
    # by PostgreSQL's check hook, not refused.
    _int("autovacuum_work_mem", "kB", -1, MAX_KILOBYTES, "sighup"),
    _int("logical_decoding_work_mem", "kB", 64, MAX_KILOBYTES, "user"),
    # Legal values are 0 or 128kB..16GB (check hook); see _EXTRA_CHECKS.
    _int("vacuum_buffer_usage_limit", "kB", 0, 16 * MiB, "user", since=16),
    _int("effective_cache_size", "8kB", 1, INT_MAX, "user"),
    _int("temp_file_limit", "kB", -1, INT_MAX, "superuser"),
    _int("max_prepared_transactions", None, 0, MAX_BACKENDS, "postmaster"),
    # --- Write-ahead log --------------------------------------------------------------
    _enum(
        "wal_level", ("minimal", "replica", "logical"), "postmaster",
        enum_aliases=(("archive", "replica"), ("hot_standby", "replica")),
    ),
    _int("wal_buffers", "8kB", -1, INT_MAX // BLOCK_SIZE, "postmaster"),
    # A boolean until 14; an enum of methods from 15. lz4 and zstd exist only in
    # builds with those libraries (the PGDG and Debian packages have both).
    _bool(
        "wal_compression", "superuser",
        overrides=(_from(15, vartype="enum", enum_values=("pglz", "lz4", "zstd", "on", "off"),
                         enum_aliases=_ON_OFF_ALIASES),),
    ),
    _int("wal_writer_delay", "ms", 1, 10000, "sighup"),
    _enum(
        "synchronous_commit", ("local", "remote_write", "remote_apply", "on", "off"), "user",
        enum_aliases=_ON_OFF_ALIASES,
    ),
    _bool("full_page_writes", "sighup"),
    _int("min_wal_size", "MB", 2, MAX_KILOBYTES, "sighup"),
    _int("max_wal_size", "MB", 2, MAX_KILOBYTES, "sighup"),
    _int("checkpoint_timeout", "s", 30, 86400, "sighup"),
    _real("checkpoint_completion_target", None, 0, 1, "sighup"),
    _int("checkpoint_warning", "s", 0, INT_MAX, "sighup"),
    _int("max_wal_senders", None, 0, MAX_BACKENDS, "postmaster"),
    _int("max_replication_slots", None, 0, MAX_BACKENDS, "postmaster"),
    _int("wal_keep_size", "MB", 0, MAX_KILOBYTES, "sighup"),
    # --- Standby servers (streaming replicas) ---------------------------------------
    _bool("hot_standby", "postmaster"),
    _bool("hot_standby_feedback", "sighup"),
    _int("max_standby_streaming_delay", "ms", -1, INT_MAX, "sighup"),
    _int("wal_receiver_status_interval", "s", 0, INT_MAX // 1000, "sighup"),
    # --- Planner costs and I/O --------------------------------------------------------
    _real("random_page_cost", None, 0, DBL_MAX, "user"),
    _real("seq_page_cost", None, 0, DBL_MAX, "user"),
    # Max 1000 in every supported version; 18 changed the defaults (1 -> 16 and
    # 10 -> 16), not the range.
    _int("effective_io_concurrency", None, 0, MAX_IO_CONCURRENCY, "user"),
    _int("maintenance_io_concurrency", None, 0, MAX_IO_CONCURRENCY, "user"),
    # io_uring only in builds with liburing (the PGDG 18 packages have it).
    _enum("io_method", ("sync", "worker", "io_uring"), "postmaster", since=18),
    _int("io_workers", None, 1, 32, "sighup", since=18),  # MAX_IO_WORKERS
    # In 8kB blocks. 17: up to 256kB (32 blocks); 18 raised the limit to 1MB
    # (128 blocks, commit 06fb561) where the OS allows it (Windows stays 128kB).
    _int("io_combine_limit", "8kB", 1, 32, "user", since=17,
         overrides=(_from(18, max_value=128),)),
    _int("io_max_combine_limit", "8kB", 1, 128, "postmaster", since=18),
    _int("io_max_concurrency", None, -1, 1024, "postmaster", since=18),
    _int("default_statistics_target", None, 1, 10000, "user"),
    _bool("jit", "user"),
    # --- Worker processes -------------------------------------------------------------
    _int("max_worker_processes", None, 0, MAX_BACKENDS, "postmaster"),
    _int("max_parallel_workers", None, 0, MAX_PARALLEL_WORKER_LIMIT, "user"),
    _int("max_parallel_workers_per_gather", None, 0, MAX_PARALLEL_WORKER_LIMIT, "user"),
    _int("max_parallel_maintenance_workers", None, 0, MAX_PARALLEL_WORKER_LIMIT, "user"),
    _bool("parallel_leader_participation", "user"),
    # --- Autovacuum and vacuum --------------------------------------------------------
    _bool("autovacuum", "sighup"),
    # 18 made it reloadable; the slots it may use are autovacuum_worker_slots.
    _int("autovacuum_max_workers", None, 1, MAX_BACKENDS, "postmaster",
         overrides=(_from(18, context="sighup"),)),
    _int("autovacuum_worker_slots", None, 1, MAX_BACKENDS, "postmaster", since=18),
    _int("autovacuum_naptime", "s", 1, INT_MAX // 1000, "sighup"),
    _int("autovacuum_vacuum_threshold", None, 0, INT_MAX, "sighup"),
    _real("autovacuum_vacuum_scale_factor", None, 0, 100, "sighup"),
    _int("autovacuum_vacuum_insert_threshold", None, -1, INT_MAX, "sighup"),
    _real("autovacuum_vacuum_insert_scale_factor", None, 0, 100, "sighup"),
    _int("autovacuum_vacuum_max_threshold", None, -1, INT_MAX, "sighup", since=18),
    _int("autovacuum_analyze_threshold", None, 0, INT_MAX, "sighup"),
    _real("autovacuum_analyze_scale_factor", None, 0, 100, "sighup"),
    _int("autovacuum_vacuum_cost_limit", None, -1, 10000, "sighup"),
    _real("autovacuum_vacuum_cost_delay", "ms", -1, 100, "sighup"),
    _int("autovacuum_freeze_max_age", None, 100_000, 2_000_000_000, "postmaster"),
    _int("vacuum_cost_limit", None, 1, 10000, "user"),
    _real("vacuum_cost_delay", "ms", 0, 100, "user"),
    # --- Background writer ------------------------------------------------------------
    _int("bgwriter_delay", "ms", 10, 10000, "sighup"),
    _int("bgwriter_lru_maxpages", None, 0, INT_MAX // 2, "sighup"),
    _real("bgwriter_lru_multiplier", None, 0, 10, "sighup"),
    # --- Locks ------------------------------------------------------------------------
    _int("max_locks_per_transaction", None, 10, INT_MAX, "postmaster"),
    _int("max_pred_locks_per_transaction", None, 10, INT_MAX, "postmaster"),
    # --- Client defaults --------------------------------------------------------------
    _int("statement_timeout", "ms", 0, INT_MAX, "user"),
    _int("lock_timeout", "ms", 0, INT_MAX, "user"),
    _int("idle_in_transaction_session_timeout", "ms", 0, INT_MAX, "user"),
    _int("idle_session_timeout", "ms", 0, INT_MAX, "user", since=14),
    _int("transaction_timeout", "ms", 0, INT_MAX, "user", since=17),
    # lz4 only in builds with lz4 (the PGDG and Debian packages have it).
    _enum("default_toast_compression", ("pglz", "lz4"), "user", since=14),
    _str("shared_preload_libraries", "postmaster"),
    # --- Logging and statistics -------------------------------------------------------
    _int("log_min_duration_statement", "ms", -1, INT_MAX, "superuser"),
    _bool("log_lock_waits", "superuser"),
    _int("log_temp_files", "kB", -1, INT_MAX, "superuser"),
    _bool("log_checkpoints", "sighup"),
    _int("log_autovacuum_min_duration", "ms", -1, INT_MAX, "sighup"),
    _str("log_line_prefix", "sighup"),
    _enum("log_statement", ("none", "ddl", "mod", "all"), "superuser"),
    # A boolean until 17; in 18 a list of aspects (receipt, authentication,
    # authorization, setup_durations, all), still taking on/off & co. alone.
    _bool("log_connections", "superuser-backend", overrides=(_from(18, vartype="string"),)),
    _bool("log_disconnections", "superuser-backend"),
    _bool("track_io_timing", "superuser"),
    _bool("track_wal_io_timing", "superuser", since=14),
    _int("track_activity_query_size", "B", 100, 1_048_576, "postmaster"),
    # --- pg_stat_statements -----------------------------------------------------------
    # Max INT_MAX/2 (commit 82ebc70, 2022); 13.x/14.x releases older than that
    # fix allowed INT_MAX, so the lower bound here is the safe one.
    _int("pg_stat_statements.max", None, 100, INT_MAX // 2, "postmaster",
         extension="pg_stat_statements"),
    _enum("pg_stat_statements.track", ("none", "top", "all"), "superuser",
          extension="pg_stat_statements"),
    _bool("pg_stat_statements.track_utility", "superuser", extension="pg_stat_statements"),
    _bool("pg_stat_statements.save", "sighup", extension="pg_stat_statements"),
    # --- pg_qualstats (the index advisor's predicate statistics) ------------------------
    _real("pg_qualstats.sample_rate", None, -1, 1, "user", extension="pg_qualstats"),
    _int("pg_qualstats.max", None, 100, INT_MAX, "postmaster", extension="pg_qualstats"),
    _bool("pg_qualstats.enabled", "user", extension="pg_qualstats"),
    _bool("pg_qualstats.track_constants", "user", extension="pg_qualstats"),
    # --- auto_explain -----------------------------------------------------------------
    _int("auto_explain.log_min_duration", "ms", -1, INT_MAX, "superuser",
         extension="auto_explain"),
    _bool("auto_explain.log_analyze", "superuser", extension="auto_explain"),
    _bool("auto_explain.log_buffers", "superuser", extension="auto_explain"),
    _bool("auto_explain.log_timing", "superuser", extension="auto_explain"),
    _bool("auto_explain.log_nested_statements", "superuser", extension="auto_explain"),
    _enum("auto_explain.log_format", ("text", "xml", "json", "yaml"), "superuser",
          extension="auto_explain"),
)

PG_PARAMS: dict[str, PgParam] = {p.name: p for p in _CATALOGUE}


# --- Units --------------------------------------------------------------------------

_MEMORY_UNITS = {"B": 1, "kB": KiB, "MB": MiB, "GB": GiB, "TB": TiB}
_TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
# The size or duration of one base unit of a parameter (pg_settings.unit).
_MEMORY_BASE = {"B": 1, "kB": KiB, "8kB": BLOCK_SIZE, "MB": MiB}
_TIME_BASE_MS = {"ms": 1, "s": 1000, "min": 60_000}

_NUMBER_RE = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[A-Za-z]*)$",
    re.ASCII,  # PostgreSQL reads ASCII digits only; \d alone also matches Arabic-Indic digits
)


def _unit_kind(unit: str | None) -> str | None:
    if unit in _MEMORY_BASE:
        return "memory"
    if unit in _TIME_BASE_MS:
        return "time"
    return None


# --- Look-ups -----------------------------------------------------------------------


def _check_version(version: int) -> None:
    if version not in SUPPORTED_PG_VERSIONS:
        supported = f"{SUPPORTED_PG_VERSIONS[0]} to {SUPPORTED_PG_VERSIONS[-1]}"
        raise PlanError(
            f"PostgreSQL {version!r} is not a supported major version; stacktune plans for "
            f"PostgreSQL {supported}"
        )


def _versions_text(param: PgParam) -> str:
    last = param.until if param.until is not None else SUPPORTED_PG_VERSIONS[-1]
    if param.since == last:
        return f"PostgreSQL {last} only"
    return f"PostgreSQL {param.since} to {last}"


def param_for(name: str, version: int) -> PgParam:
    """The parameter ``name`` as it is in PostgreSQL ``version``.

    PlanError if stacktune does not know the parameter or the version does not have it.
    """
    _check_version(version)
    param = PG_PARAMS.get(name)
    if param is None:
        close = difflib.get_close_matches(name, PG_PARAMS, n=3)
        hint = (f"; did you mean {', '.join(close)}?" if close else
                "; check the name against PostgreSQL's documentation, or remove the override")
        raise PlanError(f"postgresql.{name} is not a parameter stacktune knows{hint}")
    if not param.exists_in(version):
        raise PlanError(
            f"postgresql.{name} does not exist in PostgreSQL {version}; "
            f"it exists in {_versions_text(param)}"
        )
    return param.at(version)


def known_names(version: int) -> list[str]:
    """Names of the catalogued parameters that PostgreSQL ``version`` has, sorted."""
    _check_version(version)
    return sorted(p.name for p in _CATALOGUE if p.exists_in(version))


def restart_required(name: str, version: int) -> bool:
    """Whether a change takes a server restart (context postmaster) rather than a reload."""
    return param_for(name, version).context == "postmaster"


# --- Values -------------------------------------------------------------------------


def _fmt_number(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e18:
        return str(int(x))
    return f"{x:g}"


def _fmt_amount(param: PgParam, base: float) -> str:
    """A value in the parameter's base unit, as a person reads it."""
    if param.unit is None or base == -1:
        return _fmt_number(base)
    if param.unit == "8kB":
        return f"{_fmt_number(base * 8)}kB"
    return f"{_fmt_number(base)}{param.unit}"


def _range_text(param: PgParam) -> str:
    assert param.min_value is not None and param.max_value is not None
    text = f"range {_fmt_amount(param, param.min_value)}..{_fmt_amount(param, param.max_value)}"
    if param.unit == "8kB":
        text += "; a bare number counts 8kB pages"
    elif param.unit is not None:
        text += f"; a bare number is in {param.unit}"
    return text


def _fail(name: str, value: str, problem: str) -> PlanError:
    return PlanError(f"postgresql.{name} = {value!r}: {problem}")


def _parse_bool(text: str) -> bool | None:
    """PostgreSQL's parse_bool: on/off, true/false, yes/no, 1/0 and unique prefixes."""
    low = text.lower()
    if not low:
        return None
    if low in ("1", "0"):
        return low == "1"
    for word, meaning in (("true", True), ("false", False), ("yes", True), ("no", False)):
        if word.startswith(low):
            return meaning
    if len(low) >= 2 and "on".startswith(low):
        return True
    if len(low) >= 2 and "off".startswith(low):
        return False
    return None


def _example(param: PgParam, number: str) -> str:
    kind = _unit_kind(param.unit)
    if kind == "memory":
        return f"'{number}MB'"
    if param.unit in ("s", "min"):
        return f"'{number}s'"
    return f"'{number}ms'"


def _parse_numeric(param: PgParam, value: str) -> float:
    """The value in the parameter's base unit, rounded for integer parameters."""
    name = param.name
    bounds = f" ({_range_text(param)})"
    if not value:
        raise _fail(name, value, f"a number is needed{bounds}")
    match = _NUMBER_RE.match(value)
    if match is None:
        expected = "a number"
        if param.unit is not None:
            expected += f" with an optional unit, like {_example(param, '64')}"
        raise _fail(name, value, f"not {expected}{bounds}")
    number_text, unit = match.group("number"), match.group("unit")
    if (param.vartype == "integer" and re.match(r"^[+-]?0\d", number_text)
            and not re.search(r"[.eE]", number_text)):
        raise _fail(
            name, value,
            f"leading zeros make PostgreSQL read the number as octal; write it without "
            f"them{bounds}",
        )
    number = float(number_text)
    base = number
    kind = _unit_kind(param.unit)
    if unit:
        if kind is None:
            raise _fail(name, value, f"postgresql.{name} takes a plain number, without a unit"
                                     f"{bounds}")
        if kind == "memory":
            if unit not in _MEMORY_UNITS:
                raise _fail(
                    name, value,
                    f"unit {unit!r} is not a memory unit; write it like "
                    f"{_example(param, number_text)}{bounds}",
                )
            base = number * _MEMORY_UNITS[unit] / _MEMORY_BASE[param.unit or "kB"]
        else:
            if unit not in _TIME_UNITS_MS:
                problem = (
                    f"unit {unit!r} is a memory unit but this is a duration"
                    if unit in _MEMORY_UNITS else f"unit {unit!r} is not a time unit"
                )
                raise _fail(
                    name, value,
                    f"{problem}; write it like {_example(param, number_text)} "
                    f"(units us, ms, s, min, h, d){bounds}",
                )
            base = number * _TIME_UNITS_MS[unit] / _TIME_BASE_MS[param.unit or "ms"]
    if not math.isfinite(base):
        raise _fail(name, value, f"out of range{bounds}")
    if param.vartype == "integer":
        # PostgreSQL rounds to the nearest whole unit (rint: halves to even).
        base = float(round(base))
    assert param.min_value is not None and param.max_value is not None
    if base < param.min_value or base > param.max_value:
        if param.unit == "8kB":
            shown = f"{_fmt_number(base)} pages of 8kB ({_fmt_amount(param, base)})"
            if unit:
                shown = f"{value} = {shown}"
        else:
            shown = _fmt_amount(param, base)
            if unit and param.unit != unit:
                shown = f"{value} = {shown}"
        side = "below the minimum" if base < param.min_value else "above the maximum"
        raise _fail(name, value, f"{shown} is {side}{bounds}")
    return base


def _check_vacuum_buffer_usage_limit(param: PgParam, value: str, base: float) -> None:
    if base != 0 and base < 128:
        raise _fail(
            param.name, value,
            "must be 0 (no ring buffer) or between 128kB and 16GB",
        )


_LOG_CONNECTIONS_OPTIONS = ("receipt", "authentication", "authorization", "setup_durations", "all")
_LOG_CONNECTIONS_COMPAT = ("on", "off", "true", "false", "yes", "no", "1", "0")


def _check_log_connections_list(param: PgParam, value: str) -> str:
    """PostgreSQL 18's log_connections: '' , one of on/off & co. alone, or a list of aspects."""
    items = [item.strip() for item in value.split(",")]
    if value.strip() == "":
        return ""
    expected = (
        f"expected a comma-separated list of {', '.join(_LOG_CONNECTIONS_OPTIONS)}, "
        f"or one of {'/'.join(_LOG_CONNECTIONS_COMPAT)} alone, or '' for none"
    )
    if any(not item for item in items):
        raise _fail(param.name, value, f"empty item in the list; {expected}")
    lowered = [item.lower() for item in items]
    if lowered[0] in _LOG_CONNECTIONS_COMPAT:
        if len(items) > 1:
            raise _fail(param.name, value, f"{items[0]!r} cannot be combined with other "
                                           f"options; {expected}")
        return lowered[0]
    for item, low in zip(items, lowered, strict=True):
        if low not in _LOG_CONNECTIONS_OPTIONS:
            raise _fail(param.name, value, f"unknown option {item!r}; {expected}")
    return ",".join(lowered)


_NUMERIC_CHECKS: dict[str, Callable[[PgParam, str, float], None]] = {
    "vacuum_buffer_usage_limit": _check_vacuum_buffer_usage_limit,
}
_STRING_CHECKS: dict[str, Callable[[PgParam, str], str]] = {
    "log_connections": _check_log_connections_list,
}


def _later_hint(name: str, low: str, version: int) -> str:
    """'; 'lz4' needs PostgreSQL 15 or later' when a later version lists the value."""
    general = PG_PARAMS[name]
    later = [
        v for v in SUPPORTED_PG_VERSIONS
        if v > version and general.exists_in(v) and low in general.at(v).enum_values
    ]
    return f"; {low!r} needs PostgreSQL {later[0]} or later" if later else ""


def validate_pg_value(name: str, value: str, version: int) -> str:
    """Check a postgresql.conf value for that version; return it normalised.

    Normalised means: surrounding whitespace stripped, booleans as on/off, enums
    as the listed value in lower case (hidden spellings such as 'true' for
    synchronous_commit become the listed value they mean). Numbers are returned
    as written; strings are returned exactly as given (log_line_prefix may end
    in a space). PlanError names ``postgresql.<name>``, the bad value and the
    expected form or range.
    """
    param = param_for(name, version)
    raw = value if isinstance(value, str) else str(value)
    if param.vartype == "string":
        if any(ch in raw for ch in "\n\r\0"):
            raise _fail(name, raw, "line breaks and NUL characters cannot be written in "
                                   "postgresql.conf")
        check = _STRING_CHECKS.get(name)
        return check(param, raw) if check else raw
    text = raw.strip()
    if param.vartype == "bool":
        parsed = _parse_bool(text)
        if parsed is None:
            raise _fail(name, raw, "expected on or off (PostgreSQL also reads true/false, "
                                   f"yes/no, 1/0){_later_hint(name, text.lower(), version)}")
        return "on" if parsed else "off"
    if param.vartype == "enum":
        low = text.lower()
        if low in param.enum_values:
            return low
        aliases = dict(param.enum_aliases)
        if low in aliases:
            return aliases[low]
        raise _fail(name, raw, f"expected one of {', '.join(param.enum_values)} in "
                               f"PostgreSQL {version}{_later_hint(name, low, version)}")
    base = _parse_numeric(param, text)
    numeric_check = _NUMERIC_CHECKS.get(name)
    if numeric_check:
        numeric_check(param, text, base)
    return text


def value_in_base_units(name: str, value: str, version: int) -> float:
    """The value in the parameter's base unit (pg_settings.unit), for range checks.

    '1GB' for shared_buffers (unit 8kB) is 131072; '1.5s' for statement_timeout
    (unit ms) is 1500. Integer parameters are rounded as PostgreSQL rounds them.
    PlanError for parameters that are not numbers and for invalid values.
    """
    param = param_for(name, version)
    if param.vartype not in ("integer", "real"):
        raise PlanError(
            f"postgresql.{name} is a {param.vartype} parameter in PostgreSQL {version}, "
            "not a number"
        )
    validate_pg_value(name, value, version)
    return _parse_numeric(param, str(value).strip())

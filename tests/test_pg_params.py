"""The PostgreSQL parameter catalogue (stacktune.pg_params) and its value validator.

The core tests are pure: the catalogue is data. One test compares the
catalogue with pg_settings of a live PostgreSQL 15 server; it runs only when
psql can reach such a server (set STACKTUNE_PG_DSN to a libpq connection
string, otherwise libpq's PGHOST/PGPORT/PGUSER defaults are used).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacktune.model import SUPPORTED_PG_VERSIONS, PlanError
from stacktune.pg_params import (
    CONTEXTS,
    PG_PARAMS,
    VARTYPES,
    PgParam,
    known_names,
    param_for,
    restart_required,
    validate_pg_value,
    value_in_base_units,
)
from stacktune.units import format_pg_duration, format_pg_memory

# Every parameter the plan engine may write (the brief's list), and from which
# major version on it exists.
REQUIRED = {
    "max_connections": 13, "superuser_reserved_connections": 13, "reserved_connections": 16,
    "shared_buffers": 13, "effective_cache_size": 13, "work_mem": 13, "hash_mem_multiplier": 13,
    "maintenance_work_mem": 13, "autovacuum_work_mem": 13, "logical_decoding_work_mem": 13,
    "temp_buffers": 13, "huge_pages": 13, "huge_page_size": 14, "wal_buffers": 13,
    "wal_compression": 13, "wal_level": 13, "min_wal_size": 13, "max_wal_size": 13,
    "checkpoint_timeout": 13, "checkpoint_completion_target": 13, "checkpoint_warning": 13,
    "max_wal_senders": 13, "wal_writer_delay": 13, "synchronous_commit": 13,
    "random_page_cost": 13, "seq_page_cost": 13, "effective_io_concurrency": 13,
    "maintenance_io_concurrency": 13, "io_method": 18, "io_workers": 18, "io_combine_limit": 17,
    "default_statistics_target": 13, "jit": 13, "max_worker_processes": 13,
    "max_parallel_workers": 13, "max_parallel_workers_per_gather": 13,
    "max_parallel_maintenance_workers": 13, "parallel_leader_participation": 13,
    "autovacuum": 13, "autovacuum_max_workers": 13, "autovacuum_worker_slots": 18,
    "autovacuum_naptime": 13, "autovacuum_vacuum_threshold": 13,
    "autovacuum_vacuum_scale_factor": 13, "autovacuum_vacuum_insert_threshold": 13,
    "autovacuum_vacuum_insert_scale_factor": 13, "autovacuum_vacuum_max_threshold": 18,
    "autovacuum_analyze_threshold": 13, "autovacuum_analyze_scale_factor": 13,
    "autovacuum_vacuum_cost_limit": 13, "autovacuum_vacuum_cost_delay": 13,
    "autovacuum_freeze_max_age": 13, "vacuum_cost_limit": 13, "vacuum_buffer_usage_limit": 16,
    "shared_preload_libraries": 13, "pg_stat_statements.max": 13, "pg_stat_statements.track": 13,
    "pg_stat_statements.track_utility": 13, "pg_stat_statements.save": 13,
    "auto_explain.log_min_duration": 13, "auto_explain.log_analyze": 13,
    "auto_explain.log_buffers": 13, "auto_explain.log_timing": 13,
    "auto_explain.log_nested_statements": 13, "auto_explain.log_format": 13,
    "log_min_duration_statement": 13, "log_lock_waits": 13, "log_temp_files": 13,
    "log_checkpoints": 13, "log_autovacuum_min_duration": 13, "log_line_prefix": 13,
    "log_statement": 13, "log_connections": 13, "log_disconnections": 13,
    "track_io_timing": 13, "track_wal_io_timing": 14, "track_activity_query_size": 13,
    "idle_in_transaction_session_timeout": 13, "idle_session_timeout": 14,
    "statement_timeout": 13, "lock_timeout": 13, "password_encryption": 13,
    "listen_addresses": 13, "port": 13, "bgwriter_delay": 13, "bgwriter_lru_maxpages": 13,
    "bgwriter_lru_multiplier": 13, "default_toast_compression": 14, "full_page_writes": 13,
    "max_locks_per_transaction": 13, "max_pred_locks_per_transaction": 13,
    "tcp_keepalives_idle": 13, "tcp_keepalives_interval": 13, "tcp_keepalives_count": 13,
}


def rejects(name: str, value: str, version: int = 15) -> str:
    """The PlanError message for an invalid value (fails the test if it is accepted)."""
    with pytest.raises(PlanError) as info:
        validate_pg_value(name, value, version)
    message = str(info.value)
    assert f"postgresql.{name}" in message
    return message


# --- The catalogue -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "since"), sorted(REQUIRED.items()))
def test_required_parameter_is_catalogued_from_its_version(name: str, since: int) -> None:
    assert name in PG_PARAMS
    assert PG_PARAMS[name].since == since
    assert PG_PARAMS[name].until is None
    assert name in known_names(18)
    if since > 13:
        assert name not in known_names(since - 1)


@pytest.mark.parametrize("version", SUPPORTED_PG_VERSIONS)
def test_every_entry_is_consistent(version: int) -> None:
    for name in known_names(version):
        p = param_for(name, version)
        assert p.name == name
        assert p.vartype in VARTYPES, name
        assert p.context in CONTEXTS, name
        assert p.overrides == ()
        if p.vartype in ("integer", "real"):
            assert p.min_value is not None and p.max_value is not None, name
            assert p.min_value <= p.max_value, name
            assert p.unit in (None, "B", "kB", "8kB", "MB", "ms", "s", "min"), name
        else:
            assert p.unit is None and p.min_value is None and p.max_value is None, name
        if p.vartype == "enum":
            assert p.enum_values and all(v == v.lower() for v in p.enum_values), name
            assert all(target in p.enum_values for _, target in p.enum_aliases), name
        else:
            assert p.enum_values == () and p.enum_aliases == (), name
        assert p.extension is None or name.startswith(f"{p.extension}.")


def test_catalogue_is_keyed_by_name_and_hashable() -> None:
    assert all(key == p.name for key, p in PG_PARAMS.items())
    assert len({hash(p) for p in PG_PARAMS.values()}) == len(PG_PARAMS)
    assert len(PG_PARAMS) >= len(REQUIRED)
    for p in PG_PARAMS.values():
        assert p.since in SUPPORTED_PG_VERSIONS
        assert all(v in SUPPORTED_PG_VERSIONS and v > p.since for v, _ in p.overrides), p.name


def test_known_names_are_sorted_and_grow_with_versions() -> None:
    names = {v: known_names(v) for v in SUPPORTED_PG_VERSIONS}
    for listed in names.values():
        assert listed == sorted(listed)
    assert set(names[13]) < set(names[14]) < set(names[16]) < set(names[17]) < set(names[18])
    assert "io_method" not in names[17] and "io_method" in names[18]


def test_unknown_parameter_and_version() -> None:
    with pytest.raises(PlanError, match=r"postgresql\.work_mm .*did you mean work_mem"):
        param_for("work_mm", 15)
    with pytest.raises(PlanError, match=r"postgresql\.no_such_thing"):
        validate_pg_value("no_such_thing", "1", 15)
    with pytest.raises(PlanError, match="PostgreSQL 12 is not a supported"):
        param_for("work_mem", 12)
    with pytest.raises(PlanError, match="PostgreSQL 19 is not a supported"):
        known_names(19)


# --- Version-specific facts ----------------------------------------------------------


def test_version_gating_names_the_versions_that_have_it() -> None:
    message = rejects("io_method", "worker", 15)
    assert "does not exist in PostgreSQL 15" in message
    assert "PostgreSQL 18" in message
    assert validate_pg_value("io_method", "worker", 18) == "worker"
    assert validate_pg_value("io_method", "IO_URING", 18) == "io_uring"
    rejects("io_method", "posix", 18)
    assert "PostgreSQL 16 to 18" in rejects("reserved_connections", "3", 15)
    assert validate_pg_value("reserved_connections", "3", 16) == "3"
    assert "PostgreSQL 14 to 18" in rejects("idle_session_timeout", "10min", 13)
    assert validate_pg_value("track_wal_io_timing", "on", 14) == "on"
    rejects("vacuum_buffer_usage_limit", "2MB", 15)
    rejects("io_combine_limit", "128kB", 16)
    rejects("autovacuum_worker_slots", "16", 17)
    rejects("autovacuum_vacuum_max_threshold", "100000000", 17)
    rejects("default_toast_compression", "lz4", 13)


def test_wal_compression_is_bool_until_14_and_a_method_from_15() -> None:
    message = rejects("wal_compression", "lz4", 14)
    assert "'lz4' needs PostgreSQL 15" in message
    assert validate_pg_value("wal_compression", "on", 14) == "on"
    assert validate_pg_value("wal_compression", "yes", 13) == "on"
    assert param_for("wal_compression", 14).vartype == "bool"
    for method in ("lz4", "zstd", "pglz", "on", "off"):
        assert validate_pg_value("wal_compression", method, 15) == method
    assert validate_pg_value("wal_compression", "LZ4", 18) == "lz4"
    assert validate_pg_value("wal_compression", "true", 15) == "on"
    rejects("wal_compression", "gzip", 15)


def test_autovacuum_max_workers_is_reloadable_from_18() -> None:
    assert param_for("autovacuum_max_workers", 17).context == "postmaster"
    assert param_for("autovacuum_max_workers", 18).context == "sighup"
    assert PG_PARAMS["autovacuum_max_workers"].context == "postmaster"


def test_maintenance_work_mem_minimum_is_64kb_from_17() -> None:
    assert "range 1024kB.." in rejects("maintenance_work_mem", "64kB", 16)
    assert validate_pg_value("maintenance_work_mem", "64kB", 17) == "64kB"
    rejects("maintenance_work_mem", "63kB", 18)


def test_io_combine_limit_range_grew_to_1mb_in_18() -> None:
    assert value_in_base_units("io_combine_limit", "256kB", 17) == 32
    assert "above the maximum" in rejects("io_combine_limit", "512kB", 17)
    assert value_in_base_units("io_combine_limit", "1MB", 18) == 128
    rejects("io_combine_limit", "2MB", 18)
    rejects("io_combine_limit", "0", 18)


def test_io_workers_and_concurrency_ranges() -> None:
    assert validate_pg_value("io_workers", "32", 18) == "32"
    rejects("io_workers", "33", 18)
    rejects("io_workers", "0", 18)
    for name in ("effective_io_concurrency", "maintenance_io_concurrency"):
        for version in SUPPORTED_PG_VERSIONS:
            assert validate_pg_value(name, "1000", version) == "1000"
            assert "above the maximum" in rejects(name, "1001", version)


def test_log_connections_is_bool_until_17_and_a_list_in_18() -> None:
    assert param_for("log_connections", 17).vartype == "bool"
    assert validate_pg_value("log_connections", "yes", 17) == "on"
    rejects("log_connections", "receipt", 17)
    assert param_for("log_connections", 18).vartype == "string"
    assert validate_pg_value("log_connections", "on", 18) == "on"
    assert validate_pg_value("log_connections", "", 18) == ""
    assert validate_pg_value("log_connections", "receipt, Authorization", 18) == (
        "receipt,authorization"
    )
    assert validate_pg_value("log_connections", "all", 18) == "all"
    assert "cannot be combined" in rejects("log_connections", "on,receipt", 18)
    assert "unknown option 'received'" in rejects("log_connections", "received", 18)
    # 18 accepts only the full compatibility words, not parse_bool's prefixes.
    rejects("log_connections", "t", 18)


def test_password_encryption_legacy_spelling_only_in_13() -> None:
    assert validate_pg_value("password_encryption", "on", 13) == "md5"
    rejects("password_encryption", "on", 14)
    assert validate_pg_value("password_encryption", "SCRAM-SHA-256", 18) == "scram-sha-256"


# --- restart_required ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("shared_buffers", 15, True),
        ("work_mem", 15, False),
        ("autovacuum_max_workers", 17, True),
        ("autovacuum_max_workers", 18, False),
        ("autovacuum_worker_slots", 18, True),
        ("max_connections", 13, True),
        ("shared_preload_libraries", 16, True),
        ("huge_pages", 15, True),
        ("io_method", 18, True),
        ("io_workers", 18, False),
        ("checkpoint_timeout", 15, False),
        ("log_connections", 18, False),
        ("pg_stat_statements.max", 15, True),
        ("pg_stat_statements.track", 15, False),
    ],
)
def test_restart_required(name: str, version: int, expected: bool) -> None:
    assert restart_required(name, version) is expected


def test_restart_required_for_a_missing_parameter_is_an_error() -> None:
    with pytest.raises(PlanError, match=r"postgresql\.io_method does not exist"):
        restart_required("io_method", 16)


# --- Memory values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kb"),
    [("64MB", 65536), ("4GB", 4194304), ("1TB", 1073741824), ("64kB", 64), ("65536", 65536),
     ("1.5MB", 1536), ("64 MB", 65536), (" 64MB ", 65536), ("65535B", 64), ("+64", 64)],
)
def test_memory_values_in_kb(value: str, kb: int) -> None:
    assert validate_pg_value("work_mem", value, 15) == value.strip()
    assert value_in_base_units("work_mem", value, 15) == kb


def test_memory_unit_error_message() -> None:
    message = rejects("work_mem", "64XB")
    assert message == (
        "postgresql.work_mem = '64XB': unit 'XB' is not a memory unit; write it like '64MB' "
        "(range 64kB..2147483647kB; a bare number is in kB)"
    )


@pytest.mark.parametrize("value", ["64mb", "64KB", "64Mb", "64 k B", "64M", "64MiB", "2TB",
                                   "32kB", "63", "-1", "", "abc", "64MB;", "1,5MB", "010"])
def test_invalid_memory_values(value: str) -> None:
    message = rejects("work_mem", value)
    assert repr(value) in message
    assert "64kB..2147483647kB" in message


def test_memory_units_are_case_sensitive_as_in_postgresql() -> None:
    assert "unit 'mb' is not a memory unit" in rejects("maintenance_work_mem", "64mb")
    assert "unit 'KB' is not a memory unit" in rejects("maintenance_work_mem", "64KB")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("shared_buffers", "1GB", 131072),
        ("shared_buffers", "128MB", 16384),
        ("shared_buffers", "16", 16),
        ("shared_buffers", "128kB", 16),
        ("effective_cache_size", "4GB", 524288),
        ("temp_buffers", "8MB", 1024),
        ("wal_buffers", "16MB", 2048),
        ("wal_buffers", "-1", -1),
        ("io_combine_limit", "128kB", 16),
        ("min_wal_size", "1GB", 1024),
        ("max_wal_size", "80", 80),
        ("track_activity_query_size", "1kB", 1024),
        ("track_activity_query_size", "1MB", 1048576),
        ("autovacuum_work_mem", "-1", -1),
        ("log_temp_files", "0", 0),
        ("huge_page_size", "2MB", 2048),
    ],
)
def test_value_in_base_units(name: str, value: str, expected: float) -> None:
    version = 18
    assert value_in_base_units(name, value, version) == expected


def test_8kb_pages_range_and_message() -> None:
    message = rejects("shared_buffers", "100kB")
    assert "12 pages of 8kB" in message
    assert "range 128kB..8589934584kB; a bare number counts 8kB pages" in message
    rejects("shared_buffers", "8TB")
    assert validate_pg_value("shared_buffers", "8GB", 15) == "8GB"
    rejects("wal_buffers", "-2")
    assert validate_pg_value("wal_buffers", "2047MB", 15) == "2047MB"
    assert "262144 pages of 8kB" in rejects("wal_buffers", "2GB")  # max 262143 pages


def test_track_activity_query_size_counts_bytes() -> None:
    assert "above the maximum" in rejects("track_activity_query_size", "2MB")
    assert "below the minimum" in rejects("track_activity_query_size", "99")


def test_vacuum_buffer_usage_limit_is_zero_or_128kb_to_16gb() -> None:
    for ok in ("0", "128kB", "256kB", "2MB", "16GB"):
        assert validate_pg_value("vacuum_buffer_usage_limit", ok, 16) == ok
    assert "0 (no ring buffer) or between 128kB and 16GB" in rejects(
        "vacuum_buffer_usage_limit", "64kB", 16
    )
    rejects("vacuum_buffer_usage_limit", "17GB", 17)
    rejects("vacuum_buffer_usage_limit", "-1", 18)


def test_integer_rounding_follows_postgresql() -> None:
    # PostgreSQL rounds to the nearest whole unit, halves to even (rint).
    assert value_in_base_units("work_mem", "100.5", 15) == 100
    assert value_in_base_units("work_mem", "100.6", 15) == 101
    assert value_in_base_units("work_mem", "1e3", 15) == 1000
    assert value_in_base_units("work_mem", "0.1MB", 15) == 102
    assert value_in_base_units("statement_timeout", "2.5ms", 15) == 2
    assert value_in_base_units("statement_timeout", "1.5", 15) == 2
    assert value_in_base_units("statement_timeout", "500us", 15) == 0
    assert value_in_base_units("autovacuum_naptime", "1500ms", 15) == 2
    assert value_in_base_units("autovacuum_naptime", "2500ms", 15) == 2
    # '1000B' is 0.98kB, rounded to 1kB: below work_mem's minimum.
    rejects("work_mem", "1000B")


def test_leading_zeros_are_refused_because_postgresql_reads_octal() -> None:
    assert "octal" in rejects("max_connections", "0100")
    rejects("max_connections", "0x40")
    assert validate_pg_value("max_connections", "100", 15) == "100"
    assert validate_pg_value("random_page_cost", "0.5", 15) == "0.5"
    assert validate_pg_value("statement_timeout", "0", 15) == "0"


# --- Time values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("statement_timeout", "30s", 30000),
        ("statement_timeout", "1.5s", 1500),
        ("statement_timeout", "1min", 60000),
        ("statement_timeout", "1 min", 60000),
        ("statement_timeout", "1h", 3600000),
        ("statement_timeout", "1d", 86400000),
        ("statement_timeout", "250", 250),
        ("statement_timeout", "24d", 2073600000),
        ("checkpoint_timeout", "15min", 900),
        ("checkpoint_timeout", "30s", 30),
        ("checkpoint_timeout", "1d", 86400),
        ("autovacuum_naptime", "1min", 60),
        ("log_min_duration_statement", "-1", -1),
        ("log_autovacuum_min_duration", "10min", 600000),
        ("auto_explain.log_min_duration", "250ms", 250),
        ("tcp_keepalives_idle", "5min", 300),
        ("autovacuum_vacuum_cost_delay", "2ms", 2),
        ("autovacuum_vacuum_cost_delay", "500us", 0.5),
        ("autovacuum_vacuum_cost_delay", "-1", -1),
        ("vacuum_cost_delay", "0.5", 0.5),
    ],
)
def test_time_values(name: str, value: str, expected: float) -> None:
    assert validate_pg_value(name, value, 15) == value
    assert value_in_base_units(name, value, 15) == expected


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("statement_timeout", "5MB", "unit 'MB' is a memory unit but this is a duration"),
        ("statement_timeout", "10sec", "unit 'sec' is not a time unit"),
        ("statement_timeout", "1S", "unit 'S' is not a time unit"),
        ("statement_timeout", "-1", "below the minimum"),
        ("statement_timeout", "25d", "above the maximum"),
        ("checkpoint_timeout", "29s", "below the minimum"),
        ("checkpoint_timeout", "86401", "above the maximum"),
        ("checkpoint_timeout", "2d", "2d = 172800s is above the maximum"),
        ("log_min_duration_statement", "-2", "below the minimum"),
        ("wal_writer_delay", "0", "range 1ms..10000ms"),
        ("bgwriter_delay", "5ms", "range 10ms..10000ms"),
        ("autovacuum_vacuum_cost_delay", "101ms", "above the maximum"),
        ("vacuum_cost_delay", "1s", "above the maximum"),
    ],
)
def test_invalid_time_values(name: str, value: str, fragment: str) -> None:
    assert fragment in rejects(name, value)


# --- Booleans, enums, reals, integers, strings ---------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("on", "on"), ("off", "off"), ("true", "on"), ("false", "off"), ("yes", "on"),
     ("no", "off"), ("1", "on"), ("0", "off"), ("TRUE", "on"), ("Off", "off"), (" on ", "on"),
     ("t", "on"), ("of", "off"), ("n", "off")],
)
def test_bool_values_normalise_to_on_off(value: str, expected: str) -> None:
    assert validate_pg_value("jit", value, 15) == expected
    assert validate_pg_value("pg_stat_statements.save", value, 13) == expected


@pytest.mark.parametrize("value", ["2", "o", "maybe", "", "enabled", "-1"])
def test_invalid_bool_values(value: str) -> None:
    assert "expected on or off" in rejects("autovacuum", value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("huge_pages", "TRY", "try"),
        ("huge_pages", "true", "on"),
        ("synchronous_commit", "Remote_Write", "remote_write"),
        ("synchronous_commit", "yes", "on"),
        ("wal_level", "hot_standby", "replica"),
        ("wal_level", "LOGICAL", "logical"),
        ("log_statement", "ddl", "ddl"),
        ("pg_stat_statements.track", "ALL", "all"),
        ("auto_explain.log_format", "json", "json"),
        ("default_toast_compression", "lz4", "lz4"),
    ],
)
def test_enum_values(name: str, value: str, expected: str) -> None:
    assert validate_pg_value(name, value, 15) == expected


def test_invalid_enum_values_list_the_choices() -> None:
    message = rejects("log_statement", "everything")
    assert "expected one of none, ddl, mod, all in PostgreSQL 15" in message
    rejects("huge_pages", "maybe")
    rejects("wal_level", "archive_plus")
    rejects("synchronous_commit", "tr")  # enums take no prefixes, unlike booleans
    rejects("auto_explain.log_format", "csv")


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("random_page_cost", "1.1", True),
        ("random_page_cost", "0", True),
        ("random_page_cost", "1e3", True),
        ("random_page_cost", "-0.5", False),
        ("random_page_cost", "inf", False),
        ("random_page_cost", "nan", False),
        ("random_page_cost", "1,5", False),
        ("random_page_cost", "4MB", False),
        ("seq_page_cost", "1", True),
        ("checkpoint_completion_target", "0.9", True),
        ("checkpoint_completion_target", "1", True),
        ("checkpoint_completion_target", "1.01", False),
        ("hash_mem_multiplier", "1", True),
        ("hash_mem_multiplier", "1000", True),
        ("hash_mem_multiplier", "1000.5", False),
        ("hash_mem_multiplier", "0.5", False),
        ("autovacuum_vacuum_scale_factor", "0.05", True),
        ("autovacuum_vacuum_scale_factor", "100", True),
        ("autovacuum_vacuum_scale_factor", "101", False),
        ("autovacuum_vacuum_insert_scale_factor", "0.2", True),
        ("autovacuum_analyze_scale_factor", "-0.1", False),
        ("bgwriter_lru_multiplier", "10", True),
        ("bgwriter_lru_multiplier", "10.5", False),
    ],
)
def test_real_values(name: str, value: str, ok: bool) -> None:
    if ok:
        assert validate_pg_value(name, value, 15) == value
        assert value_in_base_units(name, value, 15) == float(value)
    else:
        rejects(name, value)


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("max_connections", "1", True),
        ("max_connections", "262143", True),
        ("max_connections", "0", False),
        ("max_connections", "262144", False),
        ("max_connections", "100kB", False),
        ("max_connections", "1e2", True),
        ("port", "5432", True),
        ("port", "65536", False),
        ("port", "0", False),
        ("superuser_reserved_connections", "0", True),
        ("default_statistics_target", "10000", True),
        ("default_statistics_target", "10001", False),
        ("max_parallel_workers", "1024", True),
        ("max_parallel_workers", "1025", False),
        ("autovacuum_freeze_max_age", "2000000000", True),
        ("autovacuum_freeze_max_age", "99999", False),
        ("autovacuum_vacuum_cost_limit", "-1", True),
        ("autovacuum_vacuum_cost_limit", "10001", False),
        ("autovacuum_vacuum_insert_threshold", "-1", True),
        ("autovacuum_vacuum_threshold", "-1", False),
        ("vacuum_cost_limit", "0", False),
        ("bgwriter_lru_maxpages", "1073741823", True),
        ("bgwriter_lru_maxpages", "1073741824", False),
        ("max_locks_per_transaction", "9", False),
        ("max_pred_locks_per_transaction", "2147483647", True),
        ("pg_stat_statements.max", "99", False),
        ("pg_stat_statements.max", "10000", True),
        ("tcp_keepalives_count", "9", True),
        ("tcp_keepalives_count", "9s", False),
    ],
)
def test_integer_values(name: str, value: str, ok: bool) -> None:
    if ok:
        assert validate_pg_value(name, value, 15) == value
    else:
        rejects(name, value)


def test_unitless_parameter_refuses_a_unit() -> None:
    assert "takes a plain number, without a unit" in rejects("max_connections", "100kB")


def test_strings_are_returned_as_given() -> None:
    prefix = "%m [%p] %q%u@%d "
    assert validate_pg_value("log_line_prefix", prefix, 15) == prefix
    libs = "pg_stat_statements,auto_explain"
    assert validate_pg_value("shared_preload_libraries", libs, 15) == libs
    assert validate_pg_value("shared_preload_libraries", "", 15) == ""
    assert validate_pg_value("listen_addresses", "*", 18) == "*"
    assert "line breaks" in rejects("log_line_prefix", "%m\n")


def test_value_in_base_units_refuses_non_numbers() -> None:
    with pytest.raises(PlanError, match=r"postgresql\.jit is a bool parameter"):
        value_in_base_units("jit", "on", 15)
    with pytest.raises(PlanError, match=r"postgresql\.work_mem = '1XB'"):
        value_in_base_units("work_mem", "1XB", 15)


@pytest.mark.parametrize(
    ("name", "value"),
    [("work_mem", "64XB"), ("shared_buffers", "1"), ("jit", "perhaps"),
     ("wal_level", "full"), ("statement_timeout", "1 fortnight"), ("random_page_cost", "x"),
     ("log_connections", "bogus")],
)
def test_error_messages_name_the_parameter_and_value(name: str, value: str) -> None:
    message = rejects(name, value, 18)
    assert message.startswith(f"postgresql.{name} = {value!r}: ")


# --- The formats stacktune.units writes validate ------------------------------------


@given(st.integers(min_value=64, max_value=2_147_483_647))
def test_format_pg_memory_output_is_valid_work_mem(kb: int) -> None:
    text = format_pg_memory(kb * 1024)
    assert value_in_base_units("work_mem", text, 16) == kb


@given(st.integers(min_value=16, max_value=1_073_741_823))
def test_format_pg_memory_output_is_valid_shared_buffers(pages: int) -> None:
    text = format_pg_memory(pages * 8192)
    assert value_in_base_units("shared_buffers", text, 18) == pages


@given(st.integers(min_value=0, max_value=2_147_483_647))
def test_format_pg_duration_output_is_valid_statement_timeout(ms: int) -> None:
    text = format_pg_duration(ms / 1000)
    assert value_in_base_units("statement_timeout", text, 17) == ms


# --- Against a live PostgreSQL 15 (optional) ----------------------------------------


def _live_pg15_settings() -> dict[str, list[str]] | None:
    """pg_settings rows of a reachable PostgreSQL 15, or None."""
    psql = shutil.which("psql")
    if psql is None or shutil.which("pg_config") is None:
        return None
    dsn = os.environ.get("STACKTUNE_PG_DSN", "")
    query = (
        "SELECT current_setting('server_version_num'); "
        "SELECT name, vartype, coalesce(unit, ''), coalesce(min_val, ''), "
        "coalesce(max_val, ''), coalesce(array_to_string(enumvals, ','), ''), context "
        "FROM pg_settings"
    )
    try:
        out = subprocess.run(
            [psql, "-X", "-A", "-t", "-w", "-F", "|", "-d", dsn, "-c", query],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.splitlines()
    if not lines or not lines[0].startswith("15"):
        return None
    rows = [line.split("|") for line in lines[1:] if line]
    return {row[0]: row[1:] for row in rows}


def test_catalogue_matches_a_live_postgresql_15() -> None:
    settings = _live_pg15_settings()
    if settings is None:
        pytest.skip("no reachable PostgreSQL 15 (set STACKTUNE_PG_DSN)")
    for name in known_names(15):
        p: PgParam = param_for(name, 15)
        if name not in settings:
            assert p.extension is not None, f"{name} missing from pg_settings"
            continue
        vartype, unit, lo, hi, enumvals, context = settings[name]
        assert (vartype, unit or None, context) == (p.vartype, p.unit, p.context), name
        if p.vartype in ("integer", "real"):
            assert p.min_value is not None and p.max_value is not None
            assert float(lo) == pytest.approx(p.min_value, rel=1e-5), name
            assert float(hi) == pytest.approx(p.max_value, rel=1e-5), name
        if p.vartype == "enum":
            live = set(enumvals.split(","))
            assert live <= set(p.enum_values), name
            # Values that only builds with lz4/zstd/liburing have.
            assert set(p.enum_values) - live <= {"lz4", "zstd", "io_uring"}, name

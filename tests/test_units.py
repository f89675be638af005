"""Sizes and durations in each service's own syntax (stacktune.units)."""

from __future__ import annotations

import pytest

from stacktune.units import (
    GiB,
    KiB,
    MiB,
    TiB,
    UnitError,
    format_pg_duration,
    format_pg_memory,
    format_redis_memory,
    human_bytes,
    parse_human_size,
    parse_pg_duration,
    parse_pg_memory,
    parse_redis_memory,
)

# --- PostgreSQL memory ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (1 * GiB, "1GB"),
        (4 * GiB, "4GB"),
        (1536 * MiB, "1536MB"),       # not a whole GB: the next unit down
        (128 * MiB, "128MB"),
        (5041 * KiB, "5041kB"),
        (1 * TiB, "1TB"),
        (2 * TiB + 512 * GiB, "2560GB"),
        (64 * KiB, "64kB"),
        (0, "0kB"),
    ],
)
def test_format_pg_memory_uses_largest_exact_unit(num_bytes, text):
    assert format_pg_memory(num_bytes) == text


def test_format_pg_memory_truncates_to_whole_kilobytes():
    assert format_pg_memory(1 * MiB + 1000) == "1MB"
    assert format_pg_memory(1 * MiB + 1500) == "1025kB"
    assert format_pg_memory(1000) == "0kB"
    assert format_pg_memory(int(2.5 * KiB)) == "2kB"


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("128MB", 128 * MiB),
        ("4GB", 4 * GiB),
        ("5041kB", 5041 * KiB),
        ("1TB", TiB),
        ("8192B", 8 * KiB),
        ("1.5GB", 1536 * MiB),
        (" 64MB ", 64 * MiB),
        ("64", 64 * KiB),             # a bare number is in the base unit, kB by default
    ],
)
def test_parse_pg_memory(text, num_bytes):
    assert parse_pg_memory(text) == num_bytes


def test_parse_pg_memory_bare_number_uses_the_given_unit():
    assert parse_pg_memory("16", default_unit="MB") == 16 * MiB


@pytest.mark.parametrize("num_bytes", [64 * KiB, 5041 * KiB, 245 * MiB, 3 * GiB, 2 * TiB])
def test_pg_memory_round_trips(num_bytes):
    assert parse_pg_memory(format_pg_memory(num_bytes)) == num_bytes


@pytest.mark.parametrize("text", ["64mb", "1gb", "4GiB", "2K"])
def test_parse_pg_memory_units_are_case_sensitive(text):
    with pytest.raises(UnitError, match="PostgreSQL memory units are B, kB, MB, GB, TB"):
        parse_pg_memory(text)


@pytest.mark.parametrize("text", ["", "abc", "-1MB", "1 2MB", "MB"])
def test_parse_pg_memory_rejects_non_sizes(text):
    with pytest.raises(UnitError, match="is not a size"):
        parse_pg_memory(text)


# --- PostgreSQL durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (1, "1s"),
        (30, "30s"),
        (60, "1min"),
        (90, "90s"),
        (900, "15min"),
        (3600, "1h"),
        (86_400, "1d"),
        (1.5, "1500ms"),
        (0, "0ms"),
    ],
)
def test_format_pg_duration_uses_largest_exact_unit(seconds, text):
    assert format_pg_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("1min", 60),
        ("2h", 7200),
        ("1d", 86_400),
        ("500us", 0.0005),
        ("100", 0.1),                 # bare number: milliseconds by default
        ("0", 0.0),
        ("-1", -1.0),                 # 'off' for most timeouts
    ],
)
def test_parse_pg_duration(text, seconds):
    assert parse_pg_duration(text) == pytest.approx(seconds)


def test_parse_pg_duration_bare_number_uses_the_given_unit():
    assert parse_pg_duration("5", default_unit="s") == 5.0
    assert parse_pg_duration("2", default_unit="min") == 120.0


@pytest.mark.parametrize("seconds", [0.1, 0.25, 1, 45, 60, 900, 3600, 86_400])
def test_pg_duration_round_trips(seconds):
    assert parse_pg_duration(format_pg_duration(seconds)) == pytest.approx(seconds)


def test_parse_pg_duration_rejects_unknown_units():
    with pytest.raises(UnitError, match="PostgreSQL time units are us, ms, s, min, h, d"):
        parse_pg_duration("5m")
    with pytest.raises(UnitError, match="time units"):
        parse_pg_duration("5MB")


@pytest.mark.parametrize("text", ["abc", "", "-5s", "--1", "1.2.3s"])
def test_parse_pg_duration_rejects_non_durations(text):
    # '-5s' used to come back as +5 seconds: the sign was silently dropped.
    with pytest.raises(UnitError, match="is not a duration"):
        parse_pg_duration(text)


# --- Sizes people type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("4GiB", 4 * GiB),
        ("4G", 4 * GiB),
        ("4gb", 4 * GiB),
        ("2g", 2 * GiB),
        ("512MiB", 512 * MiB),
        ("512m", 512 * MiB),
        ("1.5GiB", 1536 * MiB),
        ("1TiB", TiB),
        ("64k", 64 * KiB),
        ("1073741824", GiB),
        ("100b", 100),
        (" 8 GiB ", 8 * GiB),
    ],
)
def test_parse_human_size_is_binary(text, num_bytes):
    assert parse_human_size(text) == num_bytes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "must be larger than zero"),
        ("0GiB", "must be larger than zero"),
        ("4XB", "unknown unit 'XB'"),
        ("4PiB", "unknown unit"),
        ("four", "is not a size"),
        ("-4GiB", "is not a size"),
        ("", "is not a size"),
    ],
)
def test_parse_human_size_errors(text, message):
    with pytest.raises(UnitError, match=message):
        parse_human_size(text)


# --- Redis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (2 * GiB, "2gb"),
        (1536 * MiB, "1536mb"),
        (512 * MiB, "512mb"),
        (512 * MiB + 123_456, "512mb"),   # truncated to whole MiB
        (MiB, "1mb"),
        (1000, "1000"),
        (0, "0"),
    ],
)
def test_format_redis_memory(num_bytes, text):
    assert format_redis_memory(num_bytes) == text


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("512mb", 512 * MiB),
        ("2gb", 2 * GiB),
        ("2GB", 2 * GiB),
        ("1kb", KiB),
        ("100m", 100_000_000),            # Redis reads bare m/k/g as powers of 1000
        ("1g", 1_000_000_000),
        ("1k", 1000),
        ("1048576", MiB),
        ("1048576b", MiB),
    ],
)
def test_parse_redis_memory(text, num_bytes):
    assert parse_redis_memory(text) == num_bytes


@pytest.mark.parametrize("num_bytes", [32 * MiB, 442 * MiB, 3 * GiB])
def test_redis_memory_round_trips(num_bytes):
    assert parse_redis_memory(format_redis_memory(num_bytes)) == num_bytes


@pytest.mark.parametrize("text", ["1tb", "2gib", "lots", "", "-1mb"])
def test_parse_redis_memory_errors(text):
    with pytest.raises(UnitError, match="is not a Redis size"):
        parse_redis_memory(text)


# --- For people -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (4 * GiB, "4.0 GiB"),
        (1536 * MiB, "1.5 GiB"),
        (512 * MiB, "512 MiB"),
        (MiB, "1 MiB"),
        (64 * KiB, "64 KiB"),
        (0, "0 KiB"),
    ],
)
def test_human_bytes(num_bytes, text):
    assert human_bytes(num_bytes) == text


def test_unit_error_is_a_value_error():
    # The CLI catches ValueError to print one line; UnitError must be one.
    assert issubclass(UnitError, ValueError)

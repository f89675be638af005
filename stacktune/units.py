"""Sizes and durations in the syntax each service's config file uses.

The plan engine computes in bytes and seconds; these helpers turn numbers into
the strings PostgreSQL, PgBouncer and Redis read, and parse user overrides back.
PostgreSQL memory units are binary (1kB = 1024 bytes), as its docs say.
"""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


class UnitError(ValueError):
    """A value is not in the expected unit or syntax."""


_PG_MEMORY_UNITS = {"B": 1, "kB": KiB, "MB": MiB, "GB": GiB, "TB": TiB}
_PG_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400}
# ASCII digits only (Python's \d and float() also read Arabic-Indic or fullwidth digits), and
# at most 30 of them: longer numbers are typos, and float() would turn them into infinity.
_SIZE_RE = re.compile(r"^\s*([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([A-Za-z]*)\s*$", re.ASCII)
# Units people type on the command line (--memory 4GiB, 2g, 512M ...).
_HUMAN_UNITS = {
    "": 1, "b": 1,
    "k": KiB, "kb": KiB, "kib": KiB,
    "m": MiB, "mb": MiB, "mib": MiB,
    "g": GiB, "gb": GiB, "gib": GiB,
    "t": TiB, "tb": TiB, "tib": TiB,
}


def format_pg_memory(num_bytes: int) -> str:
    """Largest PostgreSQL unit that divides the value exactly (PGTune's rule).

    Values are first truncated to whole kB, the smallest unit PostgreSQL's
    memory settings accept.
    """
    kb = int(num_bytes) // KiB
    for unit, factor in (("TB", GiB), ("GB", MiB), ("MB", KiB)):
        if kb and kb % factor == 0:
            return f"{kb // factor}{unit}"
    return f"{kb}kB"


def parse_pg_memory(text: str, default_unit: str = "kB") -> int:
    """Bytes in a PostgreSQL memory value such as '128MB', '4GB' or '5041kB'.

    A bare number uses ``default_unit`` (the parameter's base unit).
    """
    match = _SIZE_RE.match(str(text))
    if not match:
        raise UnitError(f"{text!r} is not a size; write it like '128MB' or '4GB'")
    number, unit = match.groups()
    unit = unit or default_unit
    if unit not in _PG_MEMORY_UNITS:
        raise UnitError(
            f"{text!r} has unit {unit!r}; PostgreSQL memory units are B, kB, MB, GB, TB "
            "(case-sensitive)"
        )
    return int(float(number) * _PG_MEMORY_UNITS[unit])


def format_pg_duration(seconds: float) -> str:
    """A PostgreSQL time value in the largest unit that divides it exactly."""
    ms = round(seconds * 1000)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def parse_pg_duration(text: str, default_unit: str = "ms") -> float:
    """Seconds in a PostgreSQL time value such as '250ms', '30s' or '1min'.

    '-1' and '0' are returned as given (they usually mean 'off').
    """
    if str(text).strip() == "-1":
        return -1.0
    match = _SIZE_RE.match(str(text))
    if not match:
        raise UnitError(f"{text!r} is not a duration; write it like '250ms', '30s' or '1min'")
    number, unit = match.groups()
    unit = unit or default_unit
    if unit not in _PG_TIME_UNITS:
        raise UnitError(
            f"{text!r} has unit {unit!r}; PostgreSQL time units are us, ms, s, min, h, d"
        )
    return float(number) * _PG_TIME_UNITS[unit]


def parse_human_size(text: str) -> int:
    """Bytes in a size typed by a person: '4GiB', '4G', '2g', '512MiB', '1073741824'.

    Every unit is binary: people who write 4G for a machine mean 4 GiB.
    """
    match = _SIZE_RE.match(str(text))
    if not match:
        raise UnitError(f"{text!r} is not a size; write it like '4GiB', '512MiB' or '2g'")
    number, unit = match.groups()
    factor = _HUMAN_UNITS.get(unit.lower())
    if factor is None:
        raise UnitError(f"{text!r} has unknown unit {unit!r}; use KiB, MiB, GiB or TiB")
    value = int(float(number) * factor)
    if value <= 0:
        raise UnitError(f"{text!r} must be larger than zero")
    return value


def format_redis_memory(num_bytes: int) -> str:
    """A Redis memory value: lower-case binary units ('512mb', '2gb'), as redis.conf writes them.

    Redis reads '1mb' as 1024*1024 bytes and '1m' as 1,000,000; we only emit the
    binary forms, truncated to whole MiB (or bytes below 1 MiB).
    """
    num_bytes = int(num_bytes)
    if num_bytes >= GiB and num_bytes % GiB == 0:
        return f"{num_bytes // GiB}gb"
    if num_bytes >= MiB:
        return f"{num_bytes // MiB}mb"
    return str(num_bytes)


_REDIS_UNITS = {"": 1, "b": 1, "k": 1000, "kb": KiB, "m": 1000**2, "mb": MiB,
                "g": 1000**3, "gb": GiB}


def parse_redis_memory(text: str) -> int:
    """Bytes in a Redis memory value ('512mb', '1gb', '100m', '1048576')."""
    match = _SIZE_RE.match(str(text))
    if not match or match.group(2).lower() not in _REDIS_UNITS:
        raise UnitError(
            f"{text!r} is not a Redis size; write it like '512mb' or '2gb' (binary units)"
        )
    number, unit = match.groups()
    return int(float(number) * _REDIS_UNITS[unit.lower()])


def human_bytes(num_bytes: int) -> str:
    """A size for people: '4.0 GiB', '512 MiB'."""
    if num_bytes >= GiB:
        return f"{num_bytes / GiB:.1f} GiB"
    if num_bytes >= MiB:
        return f"{num_bytes / MiB:.0f} MiB"
    return f"{num_bytes / KiB:.0f} KiB"

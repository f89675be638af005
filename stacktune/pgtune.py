"""PGTune's algorithm, reproduced exactly: the baseline stacktune's benchmarks beat.

Source: PGTune by Alexey Vasiliev, https://github.com/le0pard/pgtune, at commit
7caef27 (its 2026 algorithm), file ``src/features/configuration/configurationSlice.js``
(the formulas) and ``src/common/components/configurationView/index.jsx`` (output
order and value formatting). The formulas are restated in
``shared/reference/PGTUNE.md``; ``tests/data/pgtune-vectors.json`` holds PGTune's
exact output for six inputs, which ``tests/test_pgtune.py`` reproduces line for line.

Arithmetic follows PGTune: memory is counted in whole kB (1kB = 1024 bytes), the
fixed fractions of RAM are integer divisions that floor, and work_mem is computed
with floating-point division (JavaScript numbers are IEEE doubles, as Python
floats are) and floored after each multiplier, exactly where PGTune floors.

Differences from the web form, on purpose: the form only accepts RAM in whole MB
(at least 512MB), and at least 20 connections; this module accepts any positive
number of bytes (truncated to whole kB) and any positive connection count, so
that edge cases can be computed. Within the form's limits the output is PGTune's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stacktune.units import GiB, KiB, MiB

__all__ = [
    "DB_SIZES",
    "DB_TYPES",
    "DB_VERSIONS",
    "OS_TYPES",
    "STORAGE_TYPES",
    "PgTuneInputs",
    "inputs_from_vector_case",
    "pgtune_lines",
    "pgtune_settings",
    "pgtune_warnings",
]

DB_VERSIONS = tuple(range(10, 19))
OS_TYPES = ("linux", "windows", "mac")
DB_TYPES = ("web", "oltp", "dw", "desktop", "mixed")
STORAGE_TYPES = ("ssd", "hdd", "san", "nvme")
DB_SIZES = ("less_ram", "mid_ram", "greater_ram")

# Sizes in kB, the unit PGTune computes in.
KB_PER_MB = MiB // KiB
KB_PER_GB = GiB // KiB

DEFAULT_MAX_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
SHARED_BUFFERS_DIVISOR = {"web": 4, "oltp": 4, "dw": 4, "desktop": 16, "mixed": 4}
MAINTENANCE_WORK_MEM_DIVISOR = {"web": 16, "oltp": 16, "dw": 8, "desktop": 16, "mixed": 16}
WORK_MEM_DIVISOR = {"web": 1, "oltp": 1, "dw": 2, "desktop": 6, "mixed": 2}
DEFAULT_STATISTICS_TARGET = {"web": 100, "oltp": 100, "dw": 500, "desktop": 100, "mixed": 100}
MIN_WAL_SIZE_KB = {
    "web": 1 * KB_PER_GB,
    "oltp": 2 * KB_PER_GB,
    "dw": 4 * KB_PER_GB,
    "desktop": 100 * KB_PER_MB,
    "mixed": 1 * KB_PER_GB,
}
MAX_WAL_SIZE_KB = {
    "web": 4 * KB_PER_GB,
    "oltp": 8 * KB_PER_GB,
    "dw": 16 * KB_PER_GB,
    "desktop": 2 * KB_PER_GB,
    "mixed": 4 * KB_PER_GB,
}
EFFECTIVE_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}
STORAGE_WARNING_NAME = {"ssd": "SSDs", "nvme": "NVMe drives", "san": "SAN storage"}

HUGE_PAGES_THRESHOLD_KB = 2 * KB_PER_GB
MAINTENANCE_WORK_MEM_CAP_KB = 8 * KB_PER_GB
# Windows 64-bit refuses memory settings of 2GB or more up to PostgreSQL 17.
WINDOWS_MEMORY_LIMIT_KB = 2 * KB_PER_GB
WINDOWS_SAFE_MEMORY_KB = WINDOWS_MEMORY_LIMIT_KB - 1 * KB_PER_MB
WINDOWS_MEMORY_LIMIT_LAST_VERSION = 17
WAL_BUFFERS_MAX_KB = 16 * KB_PER_MB
WAL_BUFFERS_ROUND_UP_ABOVE_KB = 14 * KB_PER_MB
WAL_BUFFERS_MIN_KB = 32
WORK_MEM_MIN_KB = 4 * KB_PER_MB
WORK_MEM_DB_SIZE_FACTOR = {"less_ram": 1.3, "greater_ram": 0.9}
DEFAULT_MAX_WORKER_PROCESSES = 8
PARALLEL_MIN_CPUS = 4
PARALLEL_WORKERS_CAP = 4
AUTOVACUUM_WORK_MEM_KB = 2 * KB_PER_GB
IO_WORKERS_DEFAULT = 3
IO_WORKERS_MAX = 32
LOW_MEMORY_WARNING_BELOW_BYTES = 256 * MiB
HIGH_MEMORY_WARNING_ABOVE_BYTES = 100 * GiB

# PGTune's memory units for the vector cases' totalMemoryUnit.
SIZE_UNITS = {"MB": MiB, "GB": GiB, "TB": 1024 * GiB}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_choice(field: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        choices = ", ".join(str(item) for item in allowed)
        raise ValueError(f"{field} must be one of {choices}; got {value!r}")


@dataclass(frozen=True)
class PgTuneInputs:
    """The inputs of PGTune's form. Bad values raise ValueError when the object is built."""

    db_version: int
    total_memory_bytes: int
    os_type: str = "linux"
    db_type: str = "web"
    cpus: int | None = None
    connections: int | None = None
    storage: str = "ssd"
    db_size: str = "mid_ram"

    def __post_init__(self) -> None:
        if not _is_int(self.db_version) or self.db_version not in DB_VERSIONS:
            raise ValueError(
                f"db_version must be a PostgreSQL major version from {DB_VERSIONS[0]} to "
                f"{DB_VERSIONS[-1]}; got {self.db_version!r}"
            )
        if not _is_int(self.total_memory_bytes) or self.total_memory_bytes < KiB:
            raise ValueError(
                "total_memory_bytes must be an integer number of bytes, at least 1024 (1kB); "
                f"got {self.total_memory_bytes!r}"
            )
        _check_choice("os_type", self.os_type, OS_TYPES)
        _check_choice("db_type", self.db_type, DB_TYPES)
        _check_choice("storage", self.storage, STORAGE_TYPES)
        _check_choice("db_size", self.db_size, DB_SIZES)
        for field in ("cpus", "connections"):
            value = getattr(self, field)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{field} must be a positive integer or None; got {value!r}")


# --- one function per setting (values in kB for memory) ---------------------------------


def total_memory_kb(inputs: PgTuneInputs) -> int:
    """RAM in whole kB (PGTune's unit; its inputs are always whole MB)."""
    return inputs.total_memory_bytes // KiB


def _windows_memory_limited(inputs: PgTuneInputs) -> bool:
    return inputs.os_type == "windows" and inputs.db_version <= WINDOWS_MEMORY_LIMIT_LAST_VERSION


def max_connections(inputs: PgTuneInputs) -> int:
    """The given connections, else a default per workload."""
    return inputs.connections or DEFAULT_MAX_CONNECTIONS[inputs.db_type]


def shared_buffers_kb(inputs: PgTuneInputs) -> int:
    """RAM/4 (desktop RAM/16), floored. (PGTune's 512MB Windows cap applies only below PG 10.)"""
    return total_memory_kb(inputs) // SHARED_BUFFERS_DIVISOR[inputs.db_type]


def huge_pages(inputs: PgTuneInputs) -> str:
    """'off' on macOS; else 'try' once shared_buffers reaches 2GB."""
    if inputs.os_type == "mac":
        return "off"
    return "try" if shared_buffers_kb(inputs) >= HUGE_PAGES_THRESHOLD_KB else "off"


def effective_cache_size_kb(inputs: PgTuneInputs) -> int:
    """RAM*3/4 (desktop RAM/4), floored."""
    ram = total_memory_kb(inputs)
    return ram // 4 if inputs.db_type == "desktop" else ram * 3 // 4


def maintenance_work_mem_kb(inputs: PgTuneInputs) -> int:
    """RAM/16 (dw RAM/8), capped at 8GB; on Windows up to PG 17 capped at 2GB-1MB."""
    value = total_memory_kb(inputs) // MAINTENANCE_WORK_MEM_DIVISOR[inputs.db_type]
    if _windows_memory_limited(inputs):
        # PGTune: a value at or above 2GB becomes 2GB-1MB (2GB itself is an error there).
        return WINDOWS_SAFE_MEMORY_KB if value >= WINDOWS_MEMORY_LIMIT_KB else value
    return min(value, MAINTENANCE_WORK_MEM_CAP_KB)


def wal_buffers_kb(shared_buffers: int) -> int:
    """3% of shared_buffers (kB), at most 16MB; 14MB < v < 16MB rounds up to 16MB; at least 32kB."""
    value = 3 * shared_buffers // 100
    if value > WAL_BUFFERS_MAX_KB:
        value = WAL_BUFFERS_MAX_KB
    if WAL_BUFFERS_ROUND_UP_ABOVE_KB < value < WAL_BUFFERS_MAX_KB:
        value = WAL_BUFFERS_MAX_KB
    return max(value, WAL_BUFFERS_MIN_KB)


def random_page_cost(inputs: PgTuneInputs) -> str:
    """1.1 when the database fits in RAM; else 4 on HDD or for dw; else 1.1."""
    if inputs.db_size == "less_ram":
        return "1.1"
    if inputs.storage == "hdd" or inputs.db_type == "dw":
        return "4"
    return "1.1"


def effective_io_concurrency(inputs: PgTuneInputs) -> int | None:
    """Per storage type, on Linux only."""
    if inputs.os_type != "linux":
        return None
    return EFFECTIVE_IO_CONCURRENCY[inputs.storage]


def parallel_settings(inputs: PgTuneInputs) -> dict[str, int]:
    """Worker counts, only with 4 or more CPUs; per-gather capped at 4 unless dw."""
    cpus = inputs.cpus
    if not cpus or cpus < PARALLEL_MIN_CPUS:
        return {}
    half = math.ceil(cpus / 2)
    per_gather = half if inputs.db_type == "dw" else min(half, PARALLEL_WORKERS_CAP)
    # max_parallel_workers (PG >= 10) and max_parallel_maintenance_workers (PG >= 11):
    # PG 10 is the oldest version accepted here.
    settings = {
        "max_worker_processes": cpus,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_workers": cpus,
    }
    if inputs.db_version >= 11:
        settings["max_parallel_maintenance_workers"] = min(half, PARALLEL_WORKERS_CAP)
    return settings


def work_mem_kb(inputs: PgTuneInputs) -> int:
    """(RAM - shared_buffers) / ((max_connections + workers) * 3), per workload and db size.

    workers is max_worker_processes when the parallel settings are emitted, else 8.
    Floors as PGTune does: after the workload divisor, then after the db-size factor
    (less_ram x1.3, greater_ram x0.9); then at least 4MB; on Windows up to PG 17 at
    most 2GB-1MB.
    """
    workers = parallel_settings(inputs).get("max_worker_processes", DEFAULT_MAX_WORKER_PROCESSES)
    ram = total_memory_kb(inputs)
    value = (ram - shared_buffers_kb(inputs)) / ((max_connections(inputs) + workers) * 3)
    result = math.floor(value / WORK_MEM_DIVISOR[inputs.db_type])
    factor = WORK_MEM_DB_SIZE_FACTOR.get(inputs.db_size)
    if factor is not None:
        result = math.floor(result * factor)
    result = max(result, WORK_MEM_MIN_KB)
    if _windows_memory_limited(inputs):
        result = min(result, WINDOWS_SAFE_MEMORY_KB)
    return result


def jit(inputs: PgTuneInputs) -> str | None:
    """'off' for PG 12+ web/oltp/mixed; left at PostgreSQL's default otherwise."""
    if inputs.db_version >= 12 and inputs.db_type in ("web", "oltp", "mixed"):
        return "off"
    return None


def wal_compression(inputs: PgTuneInputs) -> str:
    """'lz4' from PG 15, 'on' (pglz) for 10-14."""
    return "lz4" if inputs.db_version >= 15 else "on"


def autovacuum_max_workers(inputs: PgTuneInputs) -> int | None:
    """5 with 32+ CPUs, 4 with 16+, else PostgreSQL's default."""
    if not inputs.cpus:
        return None
    if inputs.cpus >= 32:
        return 5
    if inputs.cpus >= 16:
        return 4
    return None


def autovacuum_work_mem_kb(inputs: PgTuneInputs) -> int | None:
    """2GB when maintenance_work_mem is at least 2GB (never on Windows up to PG 17)."""
    if maintenance_work_mem_kb(inputs) < AUTOVACUUM_WORK_MEM_KB:
        return None
    value = AUTOVACUUM_WORK_MEM_KB
    if _windows_memory_limited(inputs):
        value = min(value, WINDOWS_SAFE_MEMORY_KB)
    return value


def io_method(inputs: PgTuneInputs) -> str | None:
    """PG 18+: 'io_uring' on Linux, 'worker' elsewhere."""
    if inputs.db_version < 18:
        return None
    return "io_uring" if inputs.os_type == "linux" else "worker"


def io_workers(inputs: PgTuneInputs) -> int | None:
    """PG 18+ with CPUs given and io_method worker: min(32, max(3, CPUs//4)), only if > 3."""
    if inputs.db_version < 18 or not inputs.cpus or io_method(inputs) == "io_uring":
        return None
    value = min(IO_WORKERS_MAX, max(IO_WORKERS_DEFAULT, inputs.cpus // 4))
    return value if value > IO_WORKERS_DEFAULT else None


def format_kb(kb: int) -> str:
    """PGTune's formatValue: NGB if a whole number of GB, else NMB, else NkB.

    GB is the largest unit PGTune prints (4096GB stays '4096GB'), which is why this
    does not use stacktune.units.format_pg_memory (that one goes up to TB).
    """
    if kb % KB_PER_GB == 0:
        return f"{kb // KB_PER_GB}GB"
    if kb % KB_PER_MB == 0:
        return f"{kb // KB_PER_MB}MB"
    return f"{kb}kB"


# --- the output -------------------------------------------------------------------------


def pgtune_warnings(inputs: PgTuneInputs) -> list[str]:
    """The comment lines PGTune prints before the settings, without '# '.

    'WARNING' heads the list; groups are separated by an empty line ('' here, '# '
    in the output).
    """
    groups: list[list[str]] = []
    if inputs.total_memory_bytes < LOW_MEMORY_WARNING_BELOW_BYTES:
        groups.append(["this tool not being optimal", "for low memory systems"])
    elif inputs.total_memory_bytes > HIGH_MEMORY_WARNING_ABOVE_BYTES:
        groups.append(["this tool not being optimal", "for very high memory systems"])
    if wal_compression(inputs) == "lz4":
        groups.append(
            ["wal_compression = lz4 requires PostgreSQL", "to be compiled with --with-lz4"]
        )
    if io_method(inputs) == "io_uring":
        groups.append(
            ["io_method = io_uring requires PostgreSQL", "to be compiled with --with-liburing"]
        )
    if inputs.db_type == "dw" and inputs.storage != "hdd" and inputs.db_size != "less_ram":
        medium = STORAGE_WARNING_NAME[inputs.storage]
        groups.append(
            [
                f"Cost parameters for Data Warehouses on {medium} are left at defaults",
                "to avoid catastrophic index scan selections",
                "Monitor query planner behavior and adjust random_page_cost if necessary",
            ]
        )
    if not groups:
        return []
    lines = ["WARNING"]
    for index, group in enumerate(groups):
        if index:
            lines.append("")
        lines.extend(group)
    return lines


def pgtune_settings(inputs: PgTuneInputs) -> dict[str, str]:
    """PGTune's settings in its own output order, values as PGTune prints them.

    Settings PGTune leaves unset for these inputs are absent.
    """
    shared_buffers = shared_buffers_kb(inputs)
    autovacuum_work_mem = autovacuum_work_mem_kb(inputs)
    ordered: list[tuple[str, object]] = [
        ("max_connections", max_connections(inputs)),
        ("shared_buffers", format_kb(shared_buffers)),
        ("effective_cache_size", format_kb(effective_cache_size_kb(inputs))),
        ("maintenance_work_mem", format_kb(maintenance_work_mem_kb(inputs))),
        ("checkpoint_completion_target", "0.9"),
        ("wal_buffers", format_kb(wal_buffers_kb(shared_buffers))),
        ("default_statistics_target", DEFAULT_STATISTICS_TARGET[inputs.db_type]),
        ("random_page_cost", random_page_cost(inputs)),
        ("effective_io_concurrency", effective_io_concurrency(inputs)),
        ("work_mem", format_kb(work_mem_kb(inputs))),
        ("huge_pages", huge_pages(inputs)),
        ("jit", jit(inputs)),
        ("wal_compression", wal_compression(inputs)),
        ("autovacuum_max_workers", autovacuum_max_workers(inputs)),
        (
            "autovacuum_work_mem",
            None if autovacuum_work_mem is None else format_kb(autovacuum_work_mem),
        ),
        ("io_method", io_method(inputs)),
        ("io_workers", io_workers(inputs)),
        ("min_wal_size", format_kb(MIN_WAL_SIZE_KB[inputs.db_type])),
        ("max_wal_size", format_kb(MAX_WAL_SIZE_KB[inputs.db_type])),
        *parallel_settings(inputs).items(),
    ]
    if inputs.db_type == "desktop":
        ordered += [("wal_level", "minimal"), ("max_wal_senders", "0")]
    return {name: str(value) for name, value in ordered if value is not None}


def pgtune_lines(inputs: PgTuneInputs) -> list[str]:
    """Exactly the lines of PGTune's output: '# WARNING' comment lines, then 'name = value'.

    (PGTune's page also prints a '# DB Version: ...' header of the inputs and blank
    lines between blocks; those are not part of the tuning and are left out.)
    """
    comments = [f"# {line}" for line in pgtune_warnings(inputs)]
    return comments + [f"{name} = {value}" for name, value in pgtune_settings(inputs).items()]


def inputs_from_vector_case(case: dict) -> PgTuneInputs:
    """Build inputs from a pgtune-vectors.json case (PGTune's own field names).

    totalMemory is a whole number in totalMemoryUnit (MB, GB or TB); a null or 0
    cpuNum/connectionNum means "not given", as in PGTune's form.
    """
    unit = case.get("totalMemoryUnit", "GB")
    if unit not in SIZE_UNITS:
        raise ValueError(f"totalMemoryUnit must be one of {', '.join(SIZE_UNITS)}; got {unit!r}")
    memory = case.get("totalMemory")
    if not _is_int(memory) or memory < 1:
        raise ValueError(f"totalMemory must be a positive integer; got {memory!r}")
    return PgTuneInputs(
        db_version=case["dbVersion"],
        os_type=case.get("osType", "linux"),
        db_type=case.get("dbType", "web"),
        total_memory_bytes=memory * SIZE_UNITS[unit],
        cpus=case.get("cpuNum") or None,
        connections=case.get("connectionNum") or None,
        storage=case.get("hdType", "ssd"),
        db_size=case.get("dbSize", "mid_ram"),
    )

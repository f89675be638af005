"""PGTune baseline (stacktune.pgtune): exact reproduction of PGTune 7caef27's output.

The vectors are PGTune's own output for six inputs. The test reads the copy in
tests/data so that it never depends on files outside the repository; a second
test checks that copy against shared/reference when that folder is present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacktune.pgtune import (
    DB_SIZES,
    DB_TYPES,
    DB_VERSIONS,
    OS_TYPES,
    STORAGE_TYPES,
    PgTuneInputs,
    format_kb,
    inputs_from_vector_case,
    pgtune_lines,
    pgtune_settings,
    pgtune_warnings,
    wal_buffers_kb,
)
from stacktune.units import GiB, KiB, MiB

ALGORITHM = "7caef27"
REPO_VECTORS = Path(__file__).resolve().parent / "data" / "pgtune-vectors.json"
SHARED_VECTORS = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "pgtune-vectors.json"
)
VECTORS_PATH = REPO_VECTORS if REPO_VECTORS.exists() else SHARED_VECTORS
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CASES = sorted(VECTORS["cases"])

LZ4_WARNING = ["wal_compression = lz4 requires PostgreSQL", "to be compiled with --with-lz4"]


def make(**overrides) -> PgTuneInputs:
    """Linux, web, PG 16, 16GB unless overridden."""
    fields = {"db_version": 16, "total_memory_bytes": 16 * GiB}
    fields.update(overrides)
    return PgTuneInputs(**fields)


# --- PGTune's own output -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_reproduces_pgtune_output_exactly(case):
    expected = VECTORS["outputs"][ALGORITHM][case]
    assert pgtune_lines(inputs_from_vector_case(VECTORS["cases"][case])) == expected


@pytest.mark.parametrize("case", CASES)
def test_settings_and_warnings_split_the_output(case):
    inputs = inputs_from_vector_case(VECTORS["cases"][case])
    expected = VECTORS["outputs"][ALGORITHM][case]
    comments = [line for line in expected if line.startswith("#")]
    assert [f"# {line}" for line in pgtune_warnings(inputs)] == comments
    settings = pgtune_settings(inputs)
    assert [f"{name} = {value}" for name, value in settings.items()] == expected[len(comments) :]


def test_every_vector_case_is_checked():
    assert set(VECTORS["outputs"][ALGORITHM]) == set(CASES)
    assert len(CASES) == 6


def test_repo_copy_of_vectors_matches_shared_reference():
    if not SHARED_VECTORS.exists():
        pytest.skip(f"{SHARED_VECTORS} is not present")
    assert json.loads(REPO_VECTORS.read_text(encoding="utf-8")) == json.loads(
        SHARED_VECTORS.read_text(encoding="utf-8")
    )


# --- wal_buffers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shared_buffers_kb", "expected_kb"),
    [
        (256, 32),  # 3% is 7kB: raised to the 32kB minimum
        (1066, 32),  # 31kB -> 32kB
        (1067, 32),  # exactly 32kB
        (1100, 33),
        (262144, 7864),  # 256MB -> 3% as is
        (477867, 14336),  # exactly 14MB: not rounded up
        (477900, 16384),  # just above 14MB: rounded up to 16MB
        (512000, 16384),  # 15360kB -> 16MB
        (546133, 16384),  # 16383kB -> 16MB
        (546134, 16384),  # exactly 16MB
        (16 * GiB // KiB, 16384),  # capped at 16MB
    ],
)
def test_wal_buffers_clamping(shared_buffers_kb, expected_kb):
    assert wal_buffers_kb(shared_buffers_kb) == expected_kb


@pytest.mark.parametrize(
    ("total_memory_bytes", "expected"),
    [
        (1 * MiB, "32kB"),  # shared_buffers 256kB
        (1 * GiB, "7864kB"),  # shared_buffers 256MB
        (1911468 * KiB, "14MB"),  # shared_buffers 477867kB: 3% is exactly 14MB
        (2000 * MiB, "16MB"),  # shared_buffers 500MB: 3% is 15000kB, 14MB < v < 16MB
        (64 * GiB, "16MB"),
    ],
)
def test_wal_buffers_in_output(total_memory_bytes, expected):
    assert pgtune_settings(make(total_memory_bytes=total_memory_bytes))["wal_buffers"] == expected


# --- work_mem ------------------------------------------------------------------------------


def test_work_mem_has_a_4mb_floor():
    # (1GB - 256MB) / ((200 + 8) * 3) = 1260kB -> 4MB
    assert pgtune_settings(make(total_memory_bytes=1 * GiB))["work_mem"] == "4MB"


@pytest.mark.parametrize(
    ("db_size", "expected"),
    [
        # (2844MB - 711MB) / ((200 + 8) * 3) = 3500kB, below the floor ...
        ("mid_ram", "4MB"),
        # ... but less_ram multiplies by 1.3 before the floor applies: 4550kB
        ("less_ram", "4550kB"),
        ("greater_ram", "4MB"),  # 3150kB -> 4MB
    ],
)
def test_work_mem_floor_comes_after_the_db_size_factor(db_size, expected):
    inputs = make(total_memory_bytes=2844 * MiB, db_size=db_size)
    assert pgtune_settings(inputs)["work_mem"] == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [(17, "2047MB"), (18, "9586980kB")],  # (1TB - 256GB) / ((20 + 8) * 3) = 9586980kB
)
def test_work_mem_windows_cap_up_to_pg17(version, expected):
    inputs = make(
        db_version=version, os_type="windows", total_memory_bytes=1024 * GiB, connections=20
    )
    assert pgtune_settings(inputs)["work_mem"] == expected


# --- parallel settings ---------------------------------------------------------------------

PARALLEL_KEYS = (
    "max_worker_processes",
    "max_parallel_workers_per_gather",
    "max_parallel_workers",
    "max_parallel_maintenance_workers",
)


@pytest.mark.parametrize("cpus", [None, 1, 2, 3])
def test_no_parallel_settings_below_4_cpus(cpus):
    settings = pgtune_settings(make(cpus=cpus))
    assert not set(PARALLEL_KEYS) & set(settings)
    # work_mem counts PostgreSQL's default 8 worker processes: 12GB / (208 * 3)
    assert settings["work_mem"] == "20164kB"


def test_parallel_settings_from_4_cpus():
    settings = pgtune_settings(make(cpus=4))
    assert {key: settings[key] for key in PARALLEL_KEYS} == {
        "max_worker_processes": "4",
        "max_parallel_workers_per_gather": "2",
        "max_parallel_workers": "4",
        "max_parallel_maintenance_workers": "2",
    }
    assert list(settings)[-4:] == list(PARALLEL_KEYS)
    # work_mem now counts the 4 workers: 12GB / (204 * 3)
    assert settings["work_mem"] == "20560kB"


@pytest.mark.parametrize(
    ("db_type", "cpus", "per_gather", "maintenance"),
    [
        ("web", 5, "3", "3"),
        ("web", 16, "4", "4"),
        ("dw", 16, "8", "4"),  # dw is not capped per gather
        ("dw", 7, "4", "4"),
    ],
)
def test_parallel_worker_caps(db_type, cpus, per_gather, maintenance):
    settings = pgtune_settings(make(db_type=db_type, cpus=cpus))
    assert settings["max_parallel_workers_per_gather"] == per_gather
    assert settings["max_parallel_maintenance_workers"] == maintenance


def test_no_parallel_maintenance_workers_on_pg10():
    settings = pgtune_settings(make(db_version=10, cpus=8))
    assert "max_parallel_workers" in settings
    assert "max_parallel_maintenance_workers" not in settings


# --- maintenance_work_mem and autovacuum_work_mem ------------------------------------------


@pytest.mark.parametrize(
    ("os_type", "version", "memory_gb", "maintenance", "autovacuum"),
    [
        ("windows", 17, 31, "1984MB", None),  # below the cap: unchanged
        ("windows", 17, 32, "2047MB", None),  # exactly 2GB is refused on Windows: 2GB-1MB
        ("windows", 17, 256, "2047MB", None),
        ("windows", 18, 32, "2GB", "2GB"),  # PG 18 lifted the Windows limit
        ("windows", 18, 256, "8GB", "2GB"),
        ("linux", 17, 32, "2GB", "2GB"),
        ("linux", 17, 256, "8GB", "2GB"),
        ("mac", 17, 31, "1984MB", None),
    ],
)
def test_maintenance_work_mem_caps(os_type, version, memory_gb, maintenance, autovacuum):
    settings = pgtune_settings(
        make(os_type=os_type, db_version=version, total_memory_bytes=memory_gb * GiB)
    )
    assert settings["maintenance_work_mem"] == maintenance
    assert settings.get("autovacuum_work_mem") == autovacuum


# --- io_method and io_workers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "os_type", "cpus", "method", "workers"),
    [
        (18, "linux", 32, "io_uring", None),  # io_uring has no io_workers
        (18, "windows", 32, "worker", "8"),
        (18, "mac", 16, "worker", "4"),
        (18, "mac", 15, "worker", None),  # 3 is the default: not set
        (18, "windows", 4, "worker", None),
        (18, "windows", None, "worker", None),
        (18, "windows", 256, "worker", "32"),  # PostgreSQL's maximum
        (17, "windows", 32, None, None),
    ],
)
def test_io_method_and_io_workers(version, os_type, cpus, method, workers):
    settings = pgtune_settings(make(db_version=version, os_type=os_type, cpus=cpus))
    assert settings.get("io_method") == method
    assert settings.get("io_workers") == workers


# --- jit, wal_compression ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "db_type", "expected"),
    [
        (11, "web", None),
        (12, "web", "off"),
        (12, "oltp", "off"),
        (12, "mixed", "off"),
        (12, "dw", None),
        (18, "desktop", None),
    ],
)
def test_jit(version, db_type, expected):
    assert pgtune_settings(make(db_version=version, db_type=db_type)).get("jit") == expected


def test_pg14_uses_pglz_compression_without_warning():
    inputs = make(db_version=14)
    assert pgtune_settings(inputs)["wal_compression"] == "on"
    assert pgtune_warnings(inputs) == []
    assert pgtune_lines(inputs)[0] == "max_connections = 200"


# --- other rules ---------------------------------------------------------------------------


def test_desktop_settings_come_last():
    settings = pgtune_settings(make(db_type="desktop", cpus=8))
    assert list(settings.items())[-2:] == [("wal_level", "minimal"), ("max_wal_senders", "0")]
    assert "jit" not in settings


@pytest.mark.parametrize(
    ("storage", "db_type", "db_size", "expected"),
    [
        ("hdd", "web", "less_ram", "1.1"),
        ("hdd", "web", "mid_ram", "4"),
        ("ssd", "dw", "mid_ram", "4"),
        ("nvme", "dw", "less_ram", "1.1"),
        ("nvme", "web", "greater_ram", "1.1"),
    ],
)
def test_random_page_cost(storage, db_type, db_size, expected):
    inputs = make(storage=storage, db_type=db_type, db_size=db_size)
    assert pgtune_settings(inputs)["random_page_cost"] == expected


@pytest.mark.parametrize("os_type", ["windows", "mac"])
def test_effective_io_concurrency_only_on_linux(os_type):
    assert "effective_io_concurrency" not in pgtune_settings(make(os_type=os_type))


def test_huge_pages():
    assert pgtune_settings(make(total_memory_bytes=8 * GiB - MiB))["huge_pages"] == "off"
    assert pgtune_settings(make(total_memory_bytes=8 * GiB))["huge_pages"] == "try"
    assert pgtune_settings(make(os_type="mac", total_memory_bytes=64 * GiB))["huge_pages"] == "off"


def test_memory_prints_at_most_in_gb():
    # PGTune never prints TB (unlike stacktune.units.format_pg_memory).
    settings = pgtune_settings(make(total_memory_bytes=4096 * GiB))
    assert settings["shared_buffers"] == "1024GB"
    assert settings["effective_cache_size"] == "3072GB"
    assert [format_kb(kb) for kb in (1048576, 262144, 149796, 2096128)] == [
        "1GB",
        "256MB",
        "149796kB",
        "2047MB",
    ]


# --- warnings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_memory_bytes", "memory_warning"),
    [
        (256 * MiB - KiB, "for low memory systems"),
        (256 * MiB, None),
        (100 * GiB, None),
        (100 * GiB + MiB, "for very high memory systems"),
    ],
)
def test_memory_warnings(total_memory_bytes, memory_warning):
    warnings = pgtune_warnings(make(total_memory_bytes=total_memory_bytes))
    if memory_warning is None:
        assert warnings == ["WARNING", *LZ4_WARNING]
    else:
        expected = ["WARNING", "this tool not being optimal", memory_warning, "", *LZ4_WARNING]
        assert warnings == expected


@pytest.mark.parametrize(
    ("storage", "db_size", "medium"),
    [
        ("ssd", "mid_ram", "SSDs"),
        ("nvme", "greater_ram", "NVMe drives"),
        ("san", "mid_ram", "SAN storage"),
        ("hdd", "mid_ram", None),
        ("ssd", "less_ram", None),
    ],
)
def test_data_warehouse_cost_warning(storage, db_size, medium):
    warnings = pgtune_warnings(make(db_version=14, db_type="dw", storage=storage, db_size=db_size))
    if medium is None:
        assert warnings == []
    else:
        assert warnings[:2] == [
            "WARNING",
            f"Cost parameters for Data Warehouses on {medium} are left at defaults",
        ]


def test_io_uring_warning_group():
    assert pgtune_warnings(make(db_version=18)) == [
        "WARNING",
        *LZ4_WARNING,
        "",
        "io_method = io_uring requires PostgreSQL",
        "to be compiled with --with-liburing",
    ]


# --- inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"db_version": 9}, "db_version"),
        ({"db_version": 19}, "db_version"),
        ({"db_version": True}, "db_version"),
        ({"db_version": "16"}, "db_version"),
        ({"total_memory_bytes": 0}, "total_memory_bytes"),
        ({"total_memory_bytes": 1.5 * GiB}, "total_memory_bytes"),
        ({"os_type": "freebsd"}, "os_type"),
        ({"db_type": "olap"}, "db_type"),
        ({"storage": "ram"}, "storage"),
        ({"db_size": "huge"}, "db_size"),
        ({"cpus": 0}, "cpus"),
        ({"connections": -5}, "connections"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        make(**overrides)


def test_error_lists_allowed_values():
    with pytest.raises(ValueError, match="linux, windows, mac"):
        make(os_type="Linux")


def test_inputs_from_vector_case_units_and_missing_values():
    inputs = inputs_from_vector_case(
        {"dbVersion": 16, "totalMemory": 512, "totalMemoryUnit": "MB", "cpuNum": None}
    )
    assert inputs == PgTuneInputs(db_version=16, total_memory_bytes=512 * MiB)
    with pytest.raises(ValueError, match="totalMemoryUnit"):
        inputs_from_vector_case({"dbVersion": 16, "totalMemory": 4, "totalMemoryUnit": "gb"})
    with pytest.raises(ValueError, match="totalMemory"):
        inputs_from_vector_case({"dbVersion": 16, "totalMemory": 0, "totalMemoryUnit": "GB"})


# --- invariants over the whole input space -------------------------------------------------


def _kb(value: str) -> int:
    for unit, factor in (("GB", GiB // KiB), ("MB", MiB // KiB), ("kB", 1)):
        if value.endswith(unit):
            return int(value[: -len(unit)]) * factor
    raise AssertionError(value)


@given(
    version=st.sampled_from(DB_VERSIONS),
    os_type=st.sampled_from(OS_TYPES),
    db_type=st.sampled_from(DB_TYPES),
    memory_mb=st.integers(min_value=512, max_value=4 * 1024 * 1024),
    cpus=st.none() | st.integers(min_value=1, max_value=512),
    connections=st.none() | st.integers(min_value=20, max_value=10_000),
    storage=st.sampled_from(STORAGE_TYPES),
    db_size=st.sampled_from(DB_SIZES),
)
def test_invariants(version, os_type, db_type, memory_mb, cpus, connections, storage, db_size):
    inputs = PgTuneInputs(
        db_version=version,
        os_type=os_type,
        db_type=db_type,
        total_memory_bytes=memory_mb * MiB,
        cpus=cpus,
        connections=connections,
        storage=storage,
        db_size=db_size,
    )
    settings = pgtune_settings(inputs)
    lines = pgtune_lines(inputs)
    warnings = pgtune_warnings(inputs)
    assert lines[: len(warnings)] == [f"# {line}" for line in warnings]
    assert all(" = " in line for line in lines[len(warnings) :])
    assert 32 <= _kb(settings["wal_buffers"]) <= 16 * 1024
    assert _kb(settings["work_mem"]) >= 4 * 1024
    assert _kb(settings["maintenance_work_mem"]) <= 8 * 1024 * 1024
    if os_type == "windows" and version <= 17:
        assert _kb(settings["work_mem"]) < 2 * 1024 * 1024
        assert _kb(settings["maintenance_work_mem"]) < 2 * 1024 * 1024

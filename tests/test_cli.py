"""The command line (stacktune.cli and scripts/stacktune): plan, render, inspect, errors."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stacktune.cli import main
from stacktune.model import Host, HostProfile, StackInputs, Storage
from stacktune.pgtune import PgTuneInputs, pgtune_settings
from stacktune.plan import plan_stack
from stacktune.render import MANAGED_HEADER
from stacktune.units import GiB

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "stacktune"
HOST = ["--memory", "4GiB", "--cpus", "2", "--storage", "ssd", "--host-name", "web1"]
FILES = {"postgresql.stacktune.conf", "pgbouncer.ini", "redis.conf", "gunicorn.conf.py",
         "stacktune_settings.py", "sysctl.stacktune.conf", "nginx.conf"}
STRING_SECTIONS = ("postgresql", "pgbouncer", "redis", "gunicorn", "nginx", "sysctl")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def plan_json(capsys, *argv: str) -> dict:
    status, out, err = run(capsys, "plan", *HOST, "--format", "json", *argv)
    assert (status, err) == (0, "")
    return json.loads(out)


# --- plan --------------------------------------------------------------------------------------


def test_plan_json_is_one_object_with_every_section(capsys):
    data = plan_json(capsys)
    assert set(data) == {"host", "postgresql", "postgresql_app_role", "pgbouncer", "redis",
                         "gunicorn", "nginx", "django", "sysctl", "reasons", "warnings"}
    for section in STRING_SECTIONS:
        assert data[section], section
        assert all(isinstance(v, str) for v in data[section].values()), section
    django = data["django"]
    assert django["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert django["CONN_MAX_AGE"] == 600
    assert django["DATABASE_POOL"] is None
    assert django["DATABASE_PORT"] == 6432
    assert data["host"]["name"] == "web1"
    assert data["host"]["memory_bytes"] == 4 * GiB
    assert data["host"]["memory_source"] == "--memory"
    assert data["host"]["budget"]["total_bytes"] <= 4 * GiB
    assert data["reasons"]["postgresql.shared_buffers"].startswith("25% of")
    assert data["warnings"] == []


def test_plan_json_matches_the_engine(capsys):
    data = plan_json(capsys)
    profile = HostProfile(memory_bytes=4 * GiB, cpus=2.0, storage=Storage.SSD)
    plan = plan_stack(StackInputs(hosts=(Host("web1", profile, frozenset(
        {"postgresql", "pgbouncer", "redis", "gunicorn"})),)))
    view = plan.host_view("web1")
    for section in ("postgresql", "pgbouncer", "redis", "gunicorn", "django", "sysctl"):
        assert data[section] == view[section], section
    assert data["postgresql"]["shared_buffers"] == "575MB"
    assert data["gunicorn"]["workers"] == "5"


def test_services_not_placed_are_absent(capsys):
    data = plan_json(capsys, "--services", "postgresql,pgbouncer")
    assert set(data) == {"host", "postgresql", "postgresql_app_role", "pgbouncer", "sysctl",
                         "reasons", "warnings"}
    assert not any(k.startswith(("redis.", "gunicorn.", "django.")) for k in data["reasons"])
    assert data["host"]["services"] == ["pgbouncer", "postgresql"]


def test_plan_options_reach_the_engine(capsys):
    data = plan_json(capsys, "--services", "postgresql,gunicorn", "--pg-version", "18",
                     "--workload", "oltp", "--django-version", "4.2", "--app-hosts", "2")
    assert data["postgresql"]["io_method"] == "worker"
    assert data["postgresql"]["log_min_duration_statement"] == "100ms"
    assert data["django"]["CONN_MAX_AGE"] == 600
    # 5 workers x 2 threads x 2 app hosts, direct, x 2 for reloads + 10 admin + 3 reserved.
    assert data["postgresql"]["max_connections"] == "53"


def test_worker_rss_and_connections(capsys):
    data = plan_json(capsys, "--services", "postgresql,pgbouncer,gunicorn",
                     "--worker-rss", "400MiB", "--connections", "100")
    assert data["gunicorn"]["workers"] == "2"          # 30% of 3.6 GiB / 400 MiB
    assert data["pgbouncer"]["max_client_conn"] == "210"


def test_set_overrides_a_setting(capsys):
    data = plan_json(capsys, "--set", "postgresql.work_mem=16MB",
                     "--set", "redis.maxmemory = 256mb", "--set", "sysctl.vm.swappiness=10")
    assert data["postgresql"]["work_mem"] == "16MB"
    assert data["reasons"]["postgresql.work_mem"].startswith("set by you, planned ")
    assert data["redis"]["maxmemory"] == "256mb"
    assert data["sysctl"]["vm.swappiness"] == "10"


def test_plan_table(capsys):
    status, out, err = run(capsys, "plan", *HOST)
    assert (status, err) == (0, "")
    assert out.startswith("host web1: 4.0 GiB usable (--memory), 2 CPUs (--cpus), ssd")
    assert "memory budget: os 410 MiB" in out
    assert "of 4.0 GiB" in out
    for section in ("[postgresql]", "[pgbouncer]", "[redis]", "[gunicorn]", "[django]",
                    "[sysctl]"):
        assert section in out
    assert re.search(r"^  shared_buffers +575MB +# 25% of", out, re.MULTILINE)


@pytest.mark.parametrize("extra", [[], ["--pg-version", "13", "--workload", "dw"],
                                   ["--cpus", "1.5", "--connections", "300"]])
def test_pgtune_baseline_equals_pgtune_settings(capsys, extra):
    argv = ["plan", *HOST, "--baseline", "pgtune", "--format", "json", *extra]
    status, out, err = run(capsys, *argv)
    assert (status, err) == (0, "")
    data = json.loads(out)
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    options.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    expected = pgtune_settings(PgTuneInputs(
        db_version=int(options.get("--pg-version", 15)),
        db_type=options.get("--workload", "web"),
        total_memory_bytes=4 * GiB,
        cpus=max(1, int(float(options["--cpus"]))),
        connections=int(options["--connections"]) if "--connections" in options else None,
        storage="ssd"))
    assert data["postgresql"] == expected
    assert data["baseline"].startswith("pgtune")


def test_pgtune_baseline_table(capsys):
    status, out, _ = run(capsys, "plan", *HOST, "--baseline", "pgtune")
    assert status == 0
    assert out.startswith("# PGTune")
    assert "shared_buffers = 1GB" in out.splitlines()


# --- errors: exit status 2 and one line -----------------------------------------------------------


BAD = [
    ["plan", *HOST, "--memory", "4XB"],
    ["plan", *HOST, "--memory", "256MiB"],                      # impossible plan
    ["plan", *HOST, "--memory", "0"],
    ["plan", *HOST, "--cpus", "0"],
    ["plan", *HOST, "--cpus", "two"],
    ["plan", *HOST, "--workload", "nope"],
    ["plan", *HOST, "--storage", "floppy"],
    ["plan", *HOST, "--services", "postgresql,mysql"],
    ["plan", *HOST, "--services", ","],
    ["plan", *HOST, "--services", "pgbouncer"],
    ["plan", *HOST, "--pg-version", "12"],
    ["plan", *HOST, "--pg-version", "abc"],
    ["plan", *HOST, "--set", "work_mem=64MB"],
    ["plan", *HOST, "--set", "postgresql.work_mem"],
    ["plan", *HOST, "--set", "postgresql.work_mem=64mb"],
    ["plan", *HOST, "--set", "postgresql.shared_buffer=1GB"],
    ["plan", *HOST, "--set", "postgresql.work_mem=2GB"],
    ["plan", *HOST, "--set", "redis.maxmemory=8gb"],
    ["plan", *HOST, "--set", "gunicorn.workers=0"],
    ["plan", *HOST, "--app-hosts", "0"],
    ["plan", *HOST, "--worker-rss", "0"],
    ["plan", *HOST, "--connections", "0"],
    ["plan", *HOST, "--services", "postgresql,gunicorn", "--django-version", "five"],
    ["plan", *HOST, "--format", "yaml"],
    ["plan", *HOST, "--bogus"],
    ["render", *HOST],                                            # --out missing
    ["frobnicate"],
    [],
]


def _case_id(argv: list[str]) -> str:
    extra = argv[1 + len(HOST):] if argv[1:1 + len(HOST)] == HOST else argv
    return " ".join(extra) or " ".join(argv[:1]) or "no-arguments"


@pytest.mark.parametrize("argv", BAD, ids=[_case_id(a) for a in BAD])
def test_bad_input_exits_2_with_one_line(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stacktune: error: ")
    assert "Traceback" not in err


def test_error_names_the_input(capsys):
    _, _, err = run(capsys, "plan", *HOST, "--memory", "4XB")
    assert err.startswith("stacktune: error: --memory: '4XB' has unknown unit 'XB'")
    _, _, err = run(capsys, "plan", *HOST, "--worker-rss", "0")
    assert err.startswith("stacktune: error: --worker-rss: '0' must be larger than zero")
    _, _, err = run(capsys, "plan", *HOST, "--set", "postgresql.work_mem=64mb")
    assert err.startswith("stacktune: error: postgresql.work_mem = '64mb'")
    _, _, err = run(capsys, "plan", *HOST, "--memory", "256MiB")
    assert "--memory" in err


# --- render ---------------------------------------------------------------------------------------


def render(capsys, out_dir: Path, *argv: str) -> dict[str, str]:
    status, out, err = run(capsys, "render", "--out", str(out_dir), *HOST, *argv)
    assert (status, err) == (0, "")
    written = [Path(line) for line in out.splitlines()]
    assert {p.name for p in written} == {p.name for p in out_dir.iterdir()}
    return {p.name: p.read_text() for p in written}


def test_render_writes_every_file(capsys, tmp_path):
    files = render(capsys, tmp_path / "out")
    assert set(files) == FILES
    for name, text in files.items():
        assert MANAGED_HEADER in text, name


def test_render_postgresql_file_is_sorted_with_reasons(capsys, tmp_path):
    text = render(capsys, tmp_path)["postgresql.stacktune.conf"]
    body = text.split("\n\n", 1)[1].split("\n# Deployment")[0]
    settings = [re.fullmatch(r"(\S+) = '((?:[^']|'')*)'\t# (.+)", line) for line in
                body.strip().splitlines()]
    assert all(settings), body
    names = [m.group(1) for m in settings]
    assert names == sorted(names)
    assert len(names) > 40
    values = {m.group(1): m.group(2) for m in settings}
    assert values["shared_buffers"] == "575MB"
    assert values["shared_preload_libraries"] == "pg_stat_statements,auto_explain,pg_qualstats"
    assert "listen_addresses = 'localhost'" in text


def test_render_python_files_compile_and_hold_the_plan(capsys, tmp_path):
    files = render(capsys, tmp_path)
    gunicorn: dict[str, object] = {}
    exec(compile(files["gunicorn.conf.py"], "gunicorn.conf.py", "exec"), gunicorn)
    assert gunicorn["workers"] == 5
    assert gunicorn["worker_class"] == "gthread"
    assert gunicorn["threads"] == 2
    assert gunicorn["bind"] == "127.0.0.1:8000"
    django: dict[str, object] = {}
    exec(compile(files["stacktune_settings.py"], "stacktune_settings.py", "exec"), django)
    database = django["DATABASES"]["default"]
    assert database["PORT"] == 6432
    assert database["CONN_MAX_AGE"] == 600
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert "OPTIONS" not in database
    assert django["CACHES"]["default"]["BACKEND"].endswith("RedisCache")


def test_render_django_native_pool(capsys, tmp_path):
    files = render(capsys, tmp_path, "--services", "postgresql,gunicorn")
    assert set(files) == {"postgresql.stacktune.conf", "gunicorn.conf.py",
                          "stacktune_settings.py", "sysctl.stacktune.conf"}
    django: dict[str, object] = {}
    exec(compile(files["stacktune_settings.py"], "stacktune_settings.py", "exec"), django)
    database = django["DATABASES"]["default"]
    assert database["OPTIONS"] == {"pool": {"min_size": 1, "max_size": 2, "timeout": 10}}
    assert database["CONN_MAX_AGE"] == 0
    assert database["PORT"] == 5432
    assert django["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


def test_render_pgbouncer_ini_parses(capsys, tmp_path):
    ini = configparser.ConfigParser()
    ini.read_string(render(capsys, tmp_path)["pgbouncer.ini"])
    assert ini.sections() == ["databases", "pgbouncer"]
    assert ini["databases"]["app"] == "host=127.0.0.1 port=5432 dbname=app"
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["max_client_conn"] == "100"
    assert bouncer["default_pool_size"] == "6"
    assert bouncer["listen_addr"] == "127.0.0.1"


def test_render_redis_and_sysctl(capsys, tmp_path):
    files = render(capsys, tmp_path)
    redis = [line for line in files["redis.conf"].splitlines() if line and line[0] != "#"]
    assert "maxmemory 442mb" in redis
    assert "maxmemory-policy allkeys-lru" in redis
    assert 'save ""' in redis
    assert "bind 127.0.0.1 -::1" in redis           # loopback only; '-' = optional IPv6
    assert "protected-mode yes" in redis
    assert "aclfile /etc/redis/users.acl" in redis
    sysctl = files["sysctl.stacktune.conf"]
    assert "vm.overcommit_memory = 1" in sysctl.splitlines()
    assert "transparent_hugepage" not in sysctl      # not a sysctl; the role writes /sys


def test_render_twice_gives_identical_bytes(capsys, tmp_path):
    first = render(capsys, tmp_path / "a")
    second = render(capsys, tmp_path / "b")
    assert first == second
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_render_impossible_plan_writes_nothing(capsys, tmp_path):
    status, _, err = run(capsys, "render", "--out", str(tmp_path / "x"), *HOST,
                         "--memory", "256MiB")
    assert status == 2
    assert err.startswith("stacktune: error:")
    assert not (tmp_path / "x").exists()


# --- inspect --------------------------------------------------------------------------------------


def test_inspect_json(capsys):
    status, out, err = run(capsys, "inspect", "--format", "json", "--storage", "nvme")
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert set(data) >= set(HostProfile(memory_bytes=1, cpus=1).to_dict())
    assert data["memory_bytes"] > 0 and data["cpus"] > 0
    assert data["storage"] == "nvme"
    profile = HostProfile.from_dict(data)
    assert profile.storage is Storage.NVME


def test_inspect_table(capsys):
    status, out, _ = run(capsys, "inspect")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == ["memory", "cpus", "storage", "os"]


# --- the script -----------------------------------------------------------------------------------


def test_script_plan_json():
    result = subprocess.run([str(SCRIPT), "plan", *HOST, "--format", "json"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["postgresql"]["shared_buffers"] == "575MB"
    assert data["gunicorn"]["workers"] == "5"


def test_script_error_has_no_traceback():
    result = subprocess.run([str(SCRIPT), "plan", *HOST, "--memory", "256MiB"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("stacktune: error: host 'web1'")
    assert "Traceback" not in result.stderr


def test_module_entry_point_matches_the_script():
    argv = ["plan", *HOST, "--format", "json", "--services", "redis"]
    by_module = subprocess.run([sys.executable, "-m", "stacktune.cli", *argv], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=60)
    by_script = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True,
                               check=True, timeout=60)
    assert by_module.stdout == by_script.stdout
    assert set(json.loads(by_script.stdout)) == {"host", "redis", "sysctl", "reasons",
                                                 "warnings"}

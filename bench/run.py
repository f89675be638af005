"""scripts/bench: the command line, and the PostgreSQL (pgbench) phase.

    scripts/bench [--quick] [--out DIR] [--rounds N] ...
    scripts/bench --skip-pgbench --converge-cmd '...' --facts-cmd '...'
    scripts/bench --skip-pgbench --http-config bench/http.json

The pgbench phase starts one systemd container limited to --memory/--cpus,
installs PostgreSQL 15 and PgBouncer from Debian's archive in it, loads the
pgbench data, and then, round after round, applies each configuration
(default, pgtune, stacktune) by writing conf.d/90-bench.conf and restarting
PostgreSQL, and runs every workload after an untimed warm-up. The container
is removed at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import django_mix, http_sweep, memory, naive, recorder, report, sweep, wrk
from bench import kit as kit_mod
from bench.docker import IMAGE, CommandFailed, Container, docker, image_exists
from bench.pgbench import (
    Workload,
    command_line,
    known_settings,
    parse_pgbench,
    pgbench_args,
    render_conf,
)
from bench.progress import Progress, human
from bench.schedule import interleave, round_orders

ROOT = Path(__file__).resolve().parent.parent
CONF_PATH = "/etc/postgresql/15/main/conf.d/90-bench.conf"
PG_SERVICE = "postgresql@15-main"
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-not-a-secret"  # throwaway role in a throwaway container
CONFIG_NAMES = ("default", "pgtune", "stacktune")
MB_PER_SCALE = 15  # pgbench data, tables + indexes, per scale unit (approx.)


@dataclass
class Settings:
    mode: str
    rounds: int
    scale_s1: int
    scale_s2: int
    duration: int
    django_scale: int
    storm_duration: int
    warmup: int
    clients: int
    storm_factor: int
    memory_gib: float
    cpus: float
    progress_interval: int = 5
    rotate: bool = False
    # One storm size for every configuration: 0 until size_storms() has read the plan
    # (or --storm-clients gave it); storm_basis says where the number comes from.
    storm_clients: int = 0
    storm_basis: str = ""
    django_mixes: tuple[str, ...] = tuple(django_mix.MIXES)
    workloads: list[Workload] = field(default_factory=list)

    @property
    def plan_memory(self) -> str:
        if float(self.memory_gib).is_integer():
            return f"{int(self.memory_gib)}GiB"
        return f"{int(self.memory_gib * 1024)}MiB"

    @property
    def docker_memory(self) -> str:
        return f"{int(self.memory_gib * 1024)}m"

    @property
    def plan_cpus(self) -> str:
        return f"{self.cpus:g}"


# Quick: a smoke test of the harness (it proves nothing about speed), kept short for CI.
QUICK = {"rounds": 1, "scale_s1": 10, "scale_s2": 0, "django_scale": 1, "duration": 4,
         "storm_duration": 4, "warmup": 1}
FULL = {"rounds": 3, "scale_s1": 50, "scale_s2": 300, "django_scale": 0, "duration": 60,
        "storm_duration": 30, "warmup": 10}
DJANGO_SCRIPT_DIR = "/var/tmp/bench-django"


def build_workloads(s: Settings) -> list[Workload]:
    def size_mb(mb: int) -> str:
        return f"~{mb / 1024:.1f} GB" if mb >= 1024 else f"~{mb} MB"

    def size(scale: int) -> str:
        return size_mb(scale * MB_PER_SCALE)

    s1, s2 = s.scale_s1, s.scale_s2
    workloads = [
        Workload("tpcb-s1", f"TPC-B-like read/write, scale {s1} ({size(s1)}: larger than "
                 f"the default shared_buffers, fits in {s.plan_memory})", "bench_s1",
                 clients=s.clients, duration=s.duration),
        Workload("select-s1", f"Select-only, scale {s1} ({size(s1)})", "bench_s1",
                 select_only=True, clients=s.clients, duration=s.duration),
    ]
    if s2:
        workloads.append(Workload(
            "tpcb-s2", f"TPC-B-like read/write, scale {s2} ({size(s2)}: larger than the "
            f"container's {s.plan_memory})", "bench_s2", clients=s.clients,
            duration=s.duration))
    if s.django_scale:
        shape = django_mix.Shape(s.django_scale)
        fits = "larger than" if shape.approx_mb > s.memory_gib * 1024 else "fits in"
        for mix in s.django_mixes:
            workloads.append(Workload(
                f"django-{mix}", f"Django-shaped {mix} mix ({django_mix.mix_text(mix)}), "
                f"the demo's tables at scale {s.django_scale} ({size_mb(shape.approx_mb)}: "
                f"{fits} the container's {s.plan_memory}; {shape.articles:,} articles)",
                django_mix.DATABASE, clients=s.clients, duration=s.duration, no_vacuum=True,
                extra=django_mix.mix_args(mix, shape, DJANGO_SCRIPT_DIR)))
    if not s.storm_clients:  # sized by size_storms() once the stacktune plan is known
        return workloads
    for port, where in ((5432, "direct"), (6432, "pgbouncer")):
        via = "directly to PostgreSQL" if where == "direct" else "through PgBouncer"
        workloads.append(Workload(
            f"storm-{where}", f"Connection storm {via}: {s.storm_clients} clients for every "
            f"configuration ({s.storm_basis}), a new connection per transaction (-C), "
            f"select-only, scale {s1}",
            "bench_s1", port=port, select_only=True, connect_per_transaction=True,
            clients=s.storm_clients, storm=True, duration=s.storm_duration,
            no_vacuum=True))
    return workloads


def storm_client_count(stacktune_plan: Mapping, factor: int,
                       override: int | None = None) -> tuple[int, str]:
    """The storm's client count, one number for every configuration, and its basis.

    Giving each configuration a multiple of its own max_connections loads them
    differently (1000 clients for the default's 100, 2000 for PGTune's 200, 210 for
    stacktune's 21), so neither tps nor refusals compare. One count for all, by
    default ``factor`` x the stacktune plan's max_connections, loads them alike.
    """
    if override is not None:
        if override < 1:
            raise ValueError(f"--storm-clients must be at least 1, got {override}")
        return override, "--storm-clients"
    if factor < 1:
        raise ValueError(f"--storm-factor must be at least 1, got {factor}")
    try:
        planned = int(stacktune_plan["postgresql"]["max_connections"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("the stacktune plan has no integer postgresql.max_connections to "
                         "size the storms from: give --storm-clients N") from exc
    return factor * planned, f"{factor} x stacktune's planned max_connections, {planned}"


def size_storms(s: Settings, stacktune_plan: Mapping, override: int | None = None) -> None:
    """Fix the storms' client count from the plan (or the override) and add the storms."""
    s.storm_clients, s.storm_basis = storm_client_count(stacktune_plan, s.storm_factor,
                                                        override)
    s.workloads = build_workloads(s)


def storm_note(s: Settings, pgbouncer: Mapping) -> str:
    """What the storms compare, for the report's notes."""
    return (f"Storms: {s.storm_clients} clients for every configuration ({s.storm_basis}), "
            "directly and through PgBouncer, so tps and the refused share of connection "
            "attempts compare across configurations. Directly, each configuration's own "
            "max_connections refuses the excess. Through PgBouncer, all three sit behind "
            "the same PgBouncer, the stacktune plan's (max_client_conn "
            f"{pgbouncer.get('max_client_conn', '?')}, default_pool_size "
            f"{pgbouncer.get('default_pool_size', '?')}, max_db_connections "
            f"{pgbouncer.get('max_db_connections', '?')}): PostgreSQL's defaults and PGTune "
            "size no pooler, so that storm compares the PostgreSQL settings behind one "
            "pooler, not poolers.")


SHORT = {"tpcb-s1": "TPC-B, scale {s1}", "select-s1": "select-only, scale {s1}",
         "tpcb-s2": "TPC-B, scale {s2}", "storm-direct": "storm, direct",
         "storm-pgbouncer": "storm, via PgBouncer",
         "django-read-mostly": "Django read-mostly, scale {sd}",
         "django-read-write": "Django read/write, scale {sd}"}


# --- plans --------------------------------------------------------------------

def stacktune_cmd(s: Settings, *, baseline: bool) -> list[str]:
    cmd = [str(ROOT / "scripts" / "stacktune"), "plan"]
    if baseline:
        cmd += ["--baseline", "pgtune"]
    cmd += ["--format", "json", "--memory", s.plan_memory, "--cpus", s.plan_cpus,
            "--storage", "ssd", "--pg-version", "15", "--workload", "web"]
    if not baseline:
        cmd += ["--services", "postgresql,pgbouncer"]
    return cmd


def compute_plans(s: Settings) -> dict:
    plans = {}
    for name, baseline in (("pgtune", True), ("stacktune", False)):
        cmd = stacktune_cmd(s, baseline=baseline)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(cmd)} failed: {proc.stderr.strip()}")
        plans[name] = {"command": command_line(["scripts/stacktune", *cmd[1:]]),
                       "plan": json.loads(proc.stdout)}
    return plans


def pgbouncer_ini(mapping: dict, databases: list[str]) -> tuple[str, dict]:
    """pgbouncer.ini from the plan's pgbouncer mapping; returns (text, settings used)."""
    settings = dict(mapping)
    # The plan's auth_type (hba) needs an hba file; the bench uses SCRAM with the
    # bench role's secret copied from pg_authid into the userlist, which is what
    # the plan's hba rules amount to for one TCP user.
    settings["auth_type"] = "scram-sha-256"
    settings.update({"listen_addr": "127.0.0.1", "auth_file": "/etc/pgbouncer/userlist.txt",
                     "unix_socket_dir": "/var/run/postgresql",
                     "pidfile": "/var/run/postgresql/pgbouncer.pid",
                     "logfile": "/var/log/postgresql/pgbouncer.log"})
    lines = ["; written by bench/run.py from the stacktune plan's pgbouncer mapping",
             "[databases]"]
    lines += [f"{db} = host=127.0.0.1 port=5432 dbname={db}" for db in databases]
    lines += ["", "[pgbouncer]"]
    lines += [f"{k} = {v}" for k, v in sorted(settings.items())]
    return "\n".join(lines) + "\n", settings


# --- the container ------------------------------------------------------------

def psql(c: Container, sql: str, db: str = "postgres", check: bool = True) -> str:
    proc = c.sh(f"runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -d {db} "
                f"-c {shlex.quote(sql)}", check=check, timeout=120)
    return proc.stdout.strip()


def install(c: Container) -> None:
    # pg_qualstats: stacktune's plan preloads it (the index advisor's predicates), and a
    # server told to preload a library it does not have refuses to start.
    script = ("export DEBIAN_FRONTEND=noninteractive; for i in 1 2 3; do "
              "apt-get update -q >/var/tmp/apt.log 2>&1 && "
              "apt-get install -y -q --no-install-recommends postgresql-15 "
              "postgresql-15-pg-qualstats pgbouncer "
              ">>/var/tmp/apt.log 2>&1 && exit 0; sleep 5; done; tail -20 /var/tmp/apt.log; "
              "exit 1")
    c.sh(script, timeout=900)


def wait_ready(c: Container, port: int = 5432, seconds: int = 60) -> None:
    c.sh(f"for i in $(seq {seconds * 2}); do pg_isready -q -h 127.0.0.1 -p {port} && exit 0; "
         "sleep 0.5; done; exit 1", timeout=seconds + 30)


def restart_postgresql(c: Container) -> None:
    proc = c.sh(f"systemctl restart {PG_SERVICE}", check=False, timeout=300)
    if proc.returncode != 0:
        log = c.sh("tail -30 /var/log/postgresql/postgresql-15-main.log; "
                   f"journalctl -u {PG_SERVICE} -n 20 --no-pager", check=False)
        raise CommandFailed(f"PostgreSQL did not restart:\n{log.stdout}{proc.stderr}")
    wait_ready(c)


def setup_cluster(c: Container, s: Settings, progress: Progress) -> None:
    psql(c, f"CREATE ROLE {BENCH_USER} LOGIN PASSWORD '{BENCH_PASSWORD}'")
    c.write(CONF_PATH, render_conf({}, label="default"), owner="postgres:postgres")
    for db, scale in (("bench_s1", s.scale_s1), ("bench_s2", s.scale_s2)):
        if not scale:
            continue
        progress.say(f"loading pgbench data: {db}, scale {scale} (~{scale * MB_PER_SCALE} MB, "
                     f"about {human(5 + scale * 0.8)})")
        psql(c, f"CREATE DATABASE {db} OWNER {BENCH_USER}")
        c.sh(f"{client_env()} pgbench -i -q -s {scale} -I dtGvp -h 127.0.0.1 "
             f"-U {BENCH_USER} {db}", timeout=3600)
    if s.django_scale:
        load_django_shaped(c, django_mix.Shape(s.django_scale), progress)


def load_django_shaped(c: Container, shape: django_mix.Shape, progress: Progress) -> None:
    """The demo's tables in their own database, owned by the bench role, and the scripts."""
    db = django_mix.DATABASE
    progress.say(f"loading the Django-shaped tables: {db}, scale {shape.scale} "
                 f"(~{shape.approx_mb} MB, {shape.articles:,} articles, "
                 f"{shape.comments:,} comments; about "
                 f"{human(5 + shape.scale * django_mix.LOAD_S_PER_SCALE)})")
    psql(c, f"CREATE DATABASE {db} OWNER {BENCH_USER}")
    c.sh(f"mkdir -p {DJANGO_SCRIPT_DIR}")
    for name, text in django_mix.SCRIPTS.items():
        c.write(django_mix.script_path(DJANGO_SCRIPT_DIR, name), text)
    c.write(f"{DJANGO_SCRIPT_DIR}/load.sql", django_mix.load_sql(shape))
    c.sh(f"{client_env()} psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U {BENCH_USER} "
         f"-d {db} -f {DJANGO_SCRIPT_DIR}/load.sql", timeout=3600)
    size = psql(c, f"SELECT pg_database_size('{db}')")
    progress.say(f"    {db}: {int(size) / 2**20:,.0f} MB")


def client_env(port: int = 5432) -> str:
    # TLS off for every client: Debian's cluster has ssl=on, PgBouncer does not
    # offer TLS to clients; both paths then pay the same SCRAM handshake.
    return (f"ulimit -n 65536 2>/dev/null; PGPASSWORD={BENCH_PASSWORD} PGSSLMODE=disable "
            f"PGPORT={port}")


def setup_pgbouncer(c: Container, mapping: dict, databases: list[str]) -> dict:
    secret = psql(c, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{BENCH_USER}'")
    if not secret.startswith("SCRAM-SHA-256$"):
        raise CommandFailed(f"expected a SCRAM secret for {BENCH_USER}, got {secret[:14]}...")
    text, used = pgbouncer_ini(mapping, databases)
    c.write("/etc/pgbouncer/pgbouncer.ini", text, mode="0640", owner="postgres:postgres")
    c.write("/etc/pgbouncer/userlist.txt", f'"{BENCH_USER}" "{secret}"\n', mode="0600",
            owner="postgres:postgres")
    # Debian's unit leaves LimitNOFILE at systemd's 1024: too few for max_client_conn.
    c.sh("mkdir -p /etc/systemd/system/pgbouncer.service.d")
    c.write("/etc/systemd/system/pgbouncer.service.d/bench.conf",
            "[Service]\nLimitNOFILE=65536\n")
    c.sh("systemctl daemon-reload && systemctl restart pgbouncer")
    wait_ready(c, 6432)
    return used


def effective_settings(c: Container, names: list[str]) -> dict:
    array = ",".join(f"'{n}'" for n in names)
    rows = psql(c, f"SELECT n, coalesce(current_setting(n, true), '(unset)') "
                   f"FROM unnest(ARRAY[{array}]) AS n")
    return dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)


def environment(s: Settings, c: Container | None) -> dict:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = re.search(r"^model name\s*:\s*(.+)$", read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                           capture_output=True, text=True, check=False).stdout.strip()
    server = docker("version", "--format", "{{.Server.Version}}", check=False).stdout.strip()
    env = {
        "timestamp_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": cpu.group(1).strip() if cpu else platform.processor(),
        "host_cpus": os.cpu_count(),
        "host_memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else None,
        "kernel": platform.release(),
        "docker_version": server or None,
        "container_image": IMAGE,
        "container_limits": f"--memory {s.docker_memory} --cpus {s.plan_cpus}",
        "stacktune_commit": (git or "unknown") + (" (working tree modified)" if dirty else ""),
        "load_average_start": read("/proc/loadavg").split()[:3],
        "python": platform.python_version(),
    }
    return env


def container_facts(c: Container) -> dict:
    inspect = json.loads(docker("inspect", c.name).stdout)[0]["HostConfig"]
    return {
        "postgresql_version": psql(c, "SELECT version()"),
        "pgbench_version": c.sh("pgbench --version").stdout.strip(),
        "pgbouncer_version": c.sh("pgbouncer --version | head -1").stdout.strip(),
        "container_memory_bytes": inspect.get("Memory"),
        "container_nano_cpus": inspect.get("NanoCpus"),
    }


# --- the pgbench phase ----------------------------------------------------------

def run_pgbench(c: Container, w: Workload, *, clients: int, duration: int, s: Settings,
                progress_interval: int | None) -> dict:
    args = pgbench_args(w, clients=clients, duration=duration,
                        progress=progress_interval)
    started = time.monotonic()
    proc = c.sh(f"{client_env(w.port)} timeout -s INT {duration + 120} {command_line(args)}",
                check=False, timeout=duration + 240)
    sample = parse_pgbench(proc.stdout, proc.stderr, clients=clients, exit_code=proc.returncode)
    sample["wall_s"] = round(time.monotonic() - started, 2)
    sample["command"] = command_line(args)
    if not sample["completed"]:
        sample["stderr_tail"] = proc.stderr.strip().splitlines()[-5:]
    return sample


def prepare_server(s: Settings, c: Container, progress: Progress, results: dict) -> list[dict]:
    """Start the container, install PostgreSQL and PgBouncer, load the data; the three
    configurations (default, pgtune, stacktune) with the settings this server knows."""
    plans = results["plans"]
    progress.say(f"starting container {c.name} ({IMAGE}, --memory {s.docker_memory} "
                 f"--cpus {s.plan_cpus})")
    c.start()
    progress.say("installing postgresql-15, pg_qualstats and pgbouncer with apt (about 30-60 s)")
    install(c)
    setup_cluster(c, s, progress)
    server_names = set(psql(c, "SELECT name FROM pg_settings").splitlines())

    configs = [{"name": "default", "source": "empty conf.d file: PostgreSQL 15 as packaged",
                "settings": {}, "dropped": []}]
    for name in ("pgtune", "stacktune"):
        kept, dropped = known_settings(plans[name]["plan"]["postgresql"], server_names)
        configs.append({"name": name, "source": plans[name]["command"], "settings": kept,
                        "dropped": dropped})
    for config in configs:
        config["conf_file"] = render_conf(config["settings"], label=config["name"])
    results["configs"] = configs
    databases = ["bench_s1"] + (["bench_s2"] if s.scale_s2 else [])
    results["pgbouncer"] = setup_pgbouncer(c, plans["stacktune"]["plan"]["pgbouncer"],
                                           databases)
    results["environment"].update(container_facts(c))
    return configs


def pgbench_phase(s: Settings, c: Container, progress: Progress, results: dict) -> None:
    configs = prepare_server(s, c, progress, results)
    watched = sorted({"max_connections", "shared_buffers", "work_mem",
                      *[n for cfg in configs for n in cfg["settings"]]})

    workloads = s.workloads
    if not s.storm_clients:
        raise RuntimeError("the storms have no client count: size_storms() was not run")
    steps = interleave(s.rounds, [cfg["name"] for cfg in configs], workloads, s.rotate)
    by_name = {cfg["name"]: cfg for cfg in configs}
    planned = [st.workload.duration + s.warmup for st in steps]
    max_conn = 0
    for pos, step in enumerate(steps):
        w, cfg = step.workload, by_name[step.config]
        step_start = time.monotonic()
        if step.first_of_config:
            progress.say(f"round {step.round}: applying {cfg['name']} "
                         f"({len(cfg['settings'])} settings), restarting PostgreSQL")
            c.write(CONF_PATH, cfg["conf_file"], owner="postgres:postgres")
            restart_postgresql(c)
            c.sh("systemctl restart pgbouncer")
            wait_ready(c, 6432)
            max_conn = int(psql(c, "SHOW max_connections"))
            if "effective" not in cfg:
                cfg["effective"] = effective_settings(c, watched)
                cfg["max_connections"] = max_conn
        clients = w.clients
        label = f"round {step.round} {cfg['name']} {w.name} ({clients} clients)"
        progress.step(step.index, len(steps), label, planned[pos],
                      sum(planned[pos:]), len(steps) - pos)
        if s.warmup:
            run_pgbench(c, w, clients=clients, duration=s.warmup, s=s, progress_interval=None)
        sample = run_pgbench(c, w, clients=clients, duration=w.duration, s=s,
                             progress_interval=s.progress_interval)
        sample.update(round=step.round, config=cfg["name"], workload=w.name,
                      max_connections=max_conn)
        results["samples"].append(sample)
        progress.record(planned[pos], time.monotonic() - step_start)
        note = f" — {sample['errors']} errors" if sample["errors"] else ""
        if not sample["completed"]:
            note += f" — no result: {sample.get('error_message')}"
        progress.say(f"    {sample['tps']:,.1f} tps, latency {sample['latency_avg_ms']} ms{note}")
    results["environment"]["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]


# --- the sweep (--sweep) --------------------------------------------------------

@dataclass
class SweepOptions:
    workloads: tuple[str, ...]
    trials: int
    top: int
    duration: int
    seed: int


SWEEP_QUICK = {"workloads": ("tpcb-s1",), "trials": 3, "top": 1, "duration": 4}
SWEEP_FULL = {"workloads": ("tpcb-s1", "select-s1", "tpcb-s2"), "trials": 24, "top": 2,
              "duration": 20}


def apply_settings(c: Container, settings: Mapping[str, str], label: str) -> str | None:
    """Apply one configuration and restart; None, or why PostgreSQL refused it (the
    server then runs PostgreSQL's defaults again, so the sweep goes on)."""
    c.write(CONF_PATH, render_conf(settings, label=label), owner="postgres:postgres")
    try:
        restart_postgresql(c)
    except CommandFailed as exc:
        c.write(CONF_PATH, render_conf({}, label="default"), owner="postgres:postgres")
        restart_postgresql(c)
        lines = [ln for ln in str(exc).splitlines() if "FATAL" in ln or "LOG" in ln]
        return (lines[-1] if lines else str(exc).splitlines()[0]).strip()
    c.sh("systemctl restart pgbouncer")
    wait_ready(c, 6432)
    return None


def sweep_phase(s: Settings, o: SweepOptions, c: Container, progress: Progress,
                results: dict) -> None:
    configs = {cfg["name"]: cfg for cfg in prepare_server(s, c, progress, results)}
    dims = sweep.space(int(s.memory_gib * 1024))
    mine = configs["stacktune"]["settings"]
    starts = {"default": sweep.point_from_settings(dims, {}),
              "pgtune": sweep.point_from_settings(dims, configs["pgtune"]["settings"]),
              "stacktune": sweep.point_from_settings(dims, mine)}
    by_name = {w.name: w for w in s.workloads}
    out = results["sweep"] = {
        "options": {"trials": o.trials, "top": o.top, "trial_duration": o.duration,
                    "confirm_duration": s.duration, "confirm_rounds": s.rounds,
                    "warmup": s.warmup, "seed": o.seed, "sampler": "optuna TPE"},
        "space": [{"name": d.name, "low": d.low, "high": d.high, "unit": d.unit,
                   "log": d.log, "choices": list(d.choices), "why": d.why} for d in dims],
        "start_points": {n: sweep.point_settings(dims, p) for n, p in starts.items()},
        "workloads": {}}
    for name in o.workloads:
        w = by_name[name]
        progress.say(f"sweep {w.name}: {len(starts)} start points and {o.trials} trials of "
                     f"{o.duration} s, then the best {o.top} with stacktune, default and "
                     f"PGTune over {s.rounds} round(s) of {s.duration} s")

        def measure(settings: Mapping[str, str], duration: int, w: Workload = w) -> dict:
            error = apply_settings(c, settings, label="sweep")
            if error:
                return {"tps": 0.0, "completed": False, "error_message": error}
            if s.warmup:
                run_pgbench(c, w, clients=w.clients, duration=s.warmup, s=s,
                            progress_interval=None)
            return run_pgbench(c, w, clients=w.clients, duration=duration, s=s,
                               progress_interval=None)

        records = sweep.search(dims, starts, lambda st: measure(st, o.duration), mine,
                               trials=o.trials, seed=o.seed, say=progress.say)
        best = sweep.top_points(records, o.top,
                                exclude=[sweep.point_settings(dims, starts["stacktune"])])
        candidates = {"default": {}, "pgtune": configs["pgtune"]["settings"],
                      "stacktune": mine}
        for rank, record in enumerate(best, start=1):
            candidates[f"best-{rank}"] = sweep.trial_settings(mine, dims, record["point"])
        samples = sweep.confirm(candidates, lambda st: measure(st, s.duration),
                                rounds=s.rounds, say=progress.say)
        verdict = sweep.verdict(samples, list(candidates))
        swept = {n: sweep.point_settings(dims, sweep.point_from_settings(dims, st))
                 for n, st in candidates.items()}
        out["workloads"][w.name] = {
            "title": w.title, "clients": w.clients, "trials": records,
            "candidates": swept, "confirm_samples": samples, **verdict,
            "differences": sweep.differences(dims, swept[verdict["best"]],
                                             swept["stacktune"])}
        ratio = verdict["stacktune_over_best"]
        progress.say(f"sweep {w.name}: best {verdict['best']}, stacktune / best "
                     f"{report.ratio_spread_text(ratio)}")
    results["environment"]["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]


# --- assembling -------------------------------------------------------------------

def workload_records(s: Settings) -> list[dict]:
    records = []
    for w in s.workloads:
        args = pgbench_args(w, clients=w.clients, duration=w.duration,
                            progress=s.progress_interval)
        records.append({"name": w.name, "title": w.title,
                        "short": SHORT[w.name].format(s1=s.scale_s1, s2=s.scale_s2,
                                                      sd=s.django_scale),
                        "command": command_line(args), "clients": w.clients,
                        "duration": w.duration,
                        "warmup": s.warmup, "rounds": s.rounds, "storm": w.storm,
                        "database": w.database, "port": w.port})
    return records


def finish(results: dict, s: Settings, started: float) -> None:
    env = results["environment"]
    env["wall_time"] = human(time.monotonic() - started)
    env.setdefault("load_average_end", Path("/proc/loadavg").read_text().split()[:3])
    start, end = env.get("load_average_start"), env.get("load_average_end")
    if start and end:
        env["load_average"] = f"{' '.join(start)} → {' '.join(end)}"
    summary = results.setdefault("summary", {})
    summary["pgbench"] = report.summarize_groups(
        results["samples"], "workload", "config", "tps", CONFIG_NAMES,
        extra=("latency_avg_ms", "latency_stddev_ms"))
    if results.get("kit"):
        summary["kit"] = report.summarize_kit(results["kit"])
    if results.get("http"):
        stacks = list(dict.fromkeys(x["stack"] for x in results["http"]))
        summary["http"] = report.summarize_groups(
            results["http"], "endpoint", "stack", "requests_per_s", stacks,
            # The first stack of the config is the baseline (the untuned one).
            baselines=stacks[:1], extra=("p50_ms", "p95_ms", "p99_ms"))
        if any(x.get("memory") for x in results["http"]):
            summary["http_memory"] = memory.summarize(results["http"])
    summary["ratios"] = report.comparison_summary(results)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark PostgreSQL 15 under its defaults, PGTune's settings and the "
        "stacktune plan (pgbench, interleaved rounds, one resource-limited container); "
        "optional hooks time the kit's Ansible runs and load the Django stack with wrk.")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 round, scale 10, the Django-shaped read/write mix "
                   "at scale 1, 4 s runs, "
                   "no out-of-memory scale "
                   "(about 2-3 min; the full run takes about 50-55 min)")
    p.add_argument("--out", type=Path, help="output directory (default bench/results/<UTC>)")
    p.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    p.add_argument("--duration", type=int, help="seconds per timed run (default 60, quick 4)")
    p.add_argument("--storm-duration", type=int, help="seconds per storm run (30, quick 4)")
    p.add_argument("--warmup", type=int, help="untimed seconds before each run (10, quick 1)")
    p.add_argument("--scale-s1", type=int, help="scale that fits in memory (50, quick 10)")
    p.add_argument("--scale-s2", type=int, help="scale larger than memory (300, quick 0=skip)")
    p.add_argument("--django-scale", type=non_negative_int,
                   help="scale of the Django-shaped tables, about "
                   f"{django_mix.MB_PER_SCALE} MB each (quick 1, full 0=skip; 200 is larger "
                   "than the 4 GiB container)")
    p.add_argument("--clients", type=int, default=16,
                   help="pgbench clients for TPC-B and select-only (default 16: below every "
                   "configuration's max_connections)")
    p.add_argument("--storm-factor", type=positive_int, default=10,
                   help="storm clients = this x stacktune's planned max_connections, the "
                   "same count for every configuration (default 10)")
    p.add_argument("--storm-clients", type=positive_int,
                   help="storm clients for every configuration (overrides --storm-factor)")
    p.add_argument("--order", choices=("fixed", "rotate"), default="fixed",
                   help="configuration order per round: fixed (default, pgtune, stacktune "
                   "every round) or rotate (A B C, B C A, C A B)")
    p.add_argument("--memory-gib", type=float, default=4.0, help="container memory (GiB)")
    p.add_argument("--cpus", type=float, default=2.0, help="container CPUs")
    p.add_argument("--container-name", default=f"stacktune-bench-{os.getpid()}")
    p.add_argument("--keep-container", action="store_true", help="do not remove it at the end")
    p.add_argument("--skip-pgbench", action="store_true", help="only run the hooks below")
    w = p.add_argument_group("sweep: the best settings this hardware allows (bench/sweep.py)")
    w.add_argument("--sweep", action="store_true",
                   help="instead of the three-configuration comparison: search the settings "
                   "that matter per workload (optuna), confirm the best points against "
                   "stacktune, default and PGTune in interleaved rounds, and report "
                   "stacktune / best (full: about 2 hours; --quick: about 6 min)")
    w.add_argument("--sweep-workloads",
                   help="comma-separated workload names (full: tpcb-s1,select-s1,tpcb-s2; "
                   "quick: tpcb-s1)")
    w.add_argument("--sweep-trials", type=positive_int,
                   help="sampled points per workload after the 3 start points (24, quick 3)")
    w.add_argument("--sweep-top", type=positive_int,
                   help="best points confirmed per workload (2, quick 1)")
    w.add_argument("--sweep-duration", type=positive_int,
                   help="seconds per search run (20, quick 4); confirm runs take --duration")
    w.add_argument("--sweep-seed", type=int, default=42, help="the sampler's seed (42)")
    g = p.add_argument_group("kit timing hook (shell commands run on this machine)")
    g.add_argument("--kit-config", type=Path, help="JSON, e.g. bench/kit.json")
    g.add_argument("--converge-cmd", help="first converge of site.yml")
    g.add_argument("--idempotent-cmd", help="second converge (default: the converge command)")
    g.add_argument("--check-cmd", help="a --check run")
    g.add_argument("--facts-cmd", help="a facts-only play (the floor)")
    g.add_argument("--reset-cmd", help="untimed, before each round: fresh hosts")
    g.add_argument("--kit-rounds", type=int, help="default: rounds if --reset-cmd, else 1")
    h = p.add_argument_group("HTTP hook")
    h.add_argument("--http-config", type=Path, help="JSON, see bench/http.json")
    h.add_argument("--http-rounds", type=int, help="default: the rounds above")
    h.add_argument("--http-sweep", action="store_true",
                   help="instead of untuned vs stacktune: search Gunicorn workers x threads, "
                   "PgBouncer's pool size, CONN_MAX_AGE and the cache backend (as "
                   "stacktune_overrides), confirm the best points against stacktune's plan "
                   "over --http-rounds rounds, and report stacktune / best per page (with "
                   "bench/http.json: about 1 h 15 min)")
    h.add_argument("--http-sweep-trials", type=positive_int, default=12,
                   help="sampled points after the 2 start points (default 12)")
    h.add_argument("--http-sweep-top", type=positive_int, default=2,
                   help="best points confirmed (default 2)")
    n = p.add_argument_group("the demo's naive mode and the query recorder (make bench)")
    n.add_argument("--naive-config", type=Path,
                   help="JSON, see bench/naive.json: naive pages before and after "
                   "stacktune report --apply")
    n.add_argument("--recorder-config", type=Path,
                   help="JSON, see bench/recorder.json: the query recorder's CPU per request "
                   "and req/s, off vs on")
    return p.parse_args(argv)


def make_settings(a: argparse.Namespace) -> Settings:
    base = QUICK if a.quick else FULL

    def pick(name: str) -> int:
        value = getattr(a, name)
        return base[name] if value is None else value

    s = Settings(mode="quick" if a.quick else "full", rounds=pick("rounds"),
                 scale_s1=pick("scale_s1"), scale_s2=pick("scale_s2"),
                 django_scale=pick("django_scale"),
                 duration=pick("duration"), storm_duration=pick("storm_duration"),
                 warmup=pick("warmup"), clients=a.clients, storm_factor=a.storm_factor,
                 memory_gib=a.memory_gib, cpus=a.cpus,
                 progress_interval=2 if a.quick else 5, rotate=a.order == "rotate")
    if a.storm_clients:
        s.storm_clients, s.storm_basis = a.storm_clients, "--storm-clients"
    if a.quick:
        # The read/write mix runs all three scripts: CI proves them at ~33 s, not ~66.
        s.django_mixes = ("read-write",)
    s.workloads = build_workloads(s)
    return s


def make_sweep_options(a: argparse.Namespace, s: Settings) -> SweepOptions:
    base = SWEEP_QUICK if a.quick else SWEEP_FULL
    names = tuple(n.strip() for n in a.sweep_workloads.split(",") if n.strip()) \
        if a.sweep_workloads else base["workloads"]
    known = [w.name for w in s.workloads]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"bench: --sweep-workloads {','.join(unknown) or '(empty)'}: not a "
                         f"workload of this run; choose from {','.join(known)} (tpcb-s2 "
                         "needs --scale-s2, django-* --django-scale, storm-* run anyway)")
    return SweepOptions(workloads=names, trials=a.sweep_trials or base["trials"],
                        top=a.sweep_top or base["top"],
                        duration=a.sweep_duration or base["duration"], seed=a.sweep_seed)


def _terminate(signum, frame):  # pragma: no cover - signal path
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    s = make_settings(a)
    out = a.out or ROOT / "bench" / "results" / datetime.now(timezone.utc).strftime(
        "%Y-%m-%dT%H%M%SZ")
    progress = Progress()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminate)

    kit_config = kit_mod.load_kit_config(a.kit_config) if a.kit_config else {}
    kit_rounds_cfg = kit_config.pop("rounds", None)
    kit_container = kit_config.pop("container", None)
    commands = kit_mod.kit_commands(a.converge_cmd, a.idempotent_cmd, a.check_cmd,
                                    a.facts_cmd, a.reset_cmd, config=kit_config)
    def load(path: Path | None) -> dict | None:
        # ${STACKTUNE_DEMO_PORT:-8000} and the like follow the environment.
        return naive.expand(json.loads(path.read_text()), os.environ) if path else None

    http_config = load(a.http_config)
    naive_config = load(a.naive_config)
    recorder_config = load(a.recorder_config)

    plans: dict = {}
    if not a.skip_pgbench:
        # The storms' one client count comes from the stacktune plan: plan first.
        plans = compute_plans(s)
        size_storms(s, plans["stacktune"]["plan"], a.storm_clients)
    sweep_options = make_sweep_options(a, s) if a.sweep and not a.skip_pgbench else None

    results: dict = {"mode": s.mode, "rounds": s.rounds, "samples": [], "configs": [],
                     "round_orders": round_orders(s.rounds, CONFIG_NAMES, s.rotate),
                     "workloads": [] if a.skip_pgbench or sweep_options
                     else workload_records(s),
                     "environment": environment(s, None), "plans": plans,
                     "notes": [
                         "All configurations run on the same server and data; each is "
                         "applied by writing conf.d/90-bench.conf and restarting PostgreSQL.",
                         "Clients connect over TCP to 127.0.0.1 with SCRAM and TLS off "
                         "(PGSSLMODE=disable), directly or through PgBouncer.",
                         "PgBouncer: the stacktune plan's pgbouncer mapping (transaction "
                         "pooling, its pool sizes and max_client_conn) for every "
                         "configuration; auth_type scram-sha-256 with the bench role's "
                         "SCRAM secret from pg_authid in the userlist (the plan's 'hba' "
                         "needs an hba file the bench does not need).",
                     ]}
    if plans:
        results["notes"].append(storm_note(s, plans["stacktune"]["plan"]["pgbouncer"]))
    if not s.rotate:
        results["notes"].append(
            "Fixed order: each round runs default, pgtune, stacktune, so whatever builds up "
            "within a round (dead tuples from the earlier TPC-B runs, autovacuum catching "
            "up, page cache) always falls on the same configuration; --order rotate "
            "spreads it.")
    container = Container(a.container_name, memory=s.docker_memory, cpus=s.plan_cpus)
    status = 0
    try:
        if not a.skip_pgbench:
            steps_n = s.rounds * len(CONFIG_NAMES) * len(s.workloads)
            est = steps_n * (s.warmup + 5) + s.rounds * len(CONFIG_NAMES) * sum(
                w.duration for w in s.workloads) + 60 + (s.scale_s1 + s.scale_s2) * 0.8 + \
                s.django_scale * django_mix.LOAD_S_PER_SCALE
            load_s = 60 + (s.scale_s1 + s.scale_s2) * 0.8 + \
                s.django_scale * django_mix.LOAD_S_PER_SCALE
            if sweep_options:
                o = sweep_options
                est = load_s + sweep.estimate_seconds(
                    len(o.workloads), o.trials, o.top, s.rounds, o.duration, s.duration,
                    s.warmup)
                progress.say(f"sweep ({s.mode}): {', '.join(o.workloads)}, about {human(est)} "
                             f"in all; results in {out}")
            else:
                progress.say(f"{s.mode} mode: {steps_n} pgbench runs in {s.rounds} round(s), "
                             f"about {human(est)} in all; results in {out}")
            if not image_exists():
                progress.say(f"image {IMAGE} missing: running scripts/container-harness")
                subprocess.run([str(ROOT / "scripts" / "container-harness"), "bookworm"],
                               check=True)
            if sweep_options:
                results["mode"] = f"sweep ({s.mode})"
                sweep_phase(s, sweep_options, container, progress, results)
            else:
                pgbench_phase(s, container, progress, results)
        if commands:
            kit_rounds = a.kit_rounds or kit_rounds_cfg or (s.rounds if "reset" in commands
                                                            else 1)
            container_cpu = kit_mod.container_cpu_reader(kit_container) if kit_container else None
            results["kit"] = kit_mod.time_kit(commands, rounds=kit_rounds, say=progress.say,
                                              container_cpu=container_cpu)
        if http_config and a.http_sweep:
            results["http_sweep"] = http_sweep.run(
                http_config, trials=a.http_sweep_trials, top=a.http_sweep_top,
                rounds=a.http_rounds or s.rounds, seed=a.sweep_seed, say=progress.say)
        elif http_config:
            # Filled run by run: a setup that fails in a later round keeps the earlier runs.
            results["http"] = []
            wrk.run_http_phase(http_config, rounds=a.http_rounds or s.rounds, say=progress.say,
                               samples=results["http"])
        if naive_config:
            results["naive"] = naive.run_naive_phase(naive_config, out=out, say=progress.say)
        if recorder_config:
            results["recorder"] = recorder.run_overhead_phase(recorder_config,
                                                              say=progress.say)
    except KeyboardInterrupt:
        progress.say("interrupted: cleaning up, writing what was measured")
        results["interrupted"] = True
        status = 130
    except (CommandFailed, subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        progress.say(f"ERROR: {exc}")
        results["error"] = str(exc)
        status = 1
    finally:
        if not a.keep_container:
            container.remove()
    if not any(results.get(k) for k in ("samples", "sweep", "kit", "http", "http_sweep",
                                        "naive", "recorder")):
        return status or 1
    finish(results, s, started)
    paths = report.write_results(results, out)
    tables = report.pgbench_tables(results) + report.sweep_tables(results) + \
        report.kit_table(results) + \
        report.http_tables(results) + report.http_sweep_tables(results) + \
        report.naive_tables(results) + report.recorder_tables(results)
    print("\n".join(tables).strip() + "\n")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    verdict = "done" if status == 0 else "stopped early, partial results written"
    progress.say(f"{verdict} in {human(time.monotonic() - started)}")
    return status


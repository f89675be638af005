"""Every accepted plan, rendered, is accepted by the services' own checkers (issue 10).

Hypothesis draws random hosts (memory, CPUs, storage, workload, app hosts) and
random legal overrides; the engine plans each for the PostgreSQL version this
container runs. A plan the engine accepts must fit its memory model, and its
files, rendered by the code `stacktune render` uses, must be accepted by:

- PostgreSQL: `postgres -C` over the cluster's config with the candidate conf.d
  file (stacktune-pg-checkconf, the postgresql role's validator);
- PgBouncer and Redis: a throwaway instance started on the candidate file
  (stacktune-pgbouncer-checkconf, stacktune-redis-checkconf);
- Gunicorn: `gunicorn --check-config` in the app's virtualenv;
- nginx: `nginx -t` on the candidate nginx.conf (the nginx role's validator).

The plans are generated on the controller, copied into the container in one
archive and checked there by one script, in parallel, to keep the run short.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shlex
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stacktune.memory_model import postgres_memory
from stacktune.model import SERVICES, Host, HostProfile, PlanError, StackInputs, Storage, Workload
from stacktune.plan import plan_stack
from stacktune.planners.postgresql import query_concurrency
from stacktune.render import render_host
from stacktune.units import GiB, MiB

PLANS = 42
WORK = "/tmp/stacktune-rendered-plans"
PG_CONF_NAME = "90-stacktune.conf"
GUNICORN = "/srv/app/venv/bin/gunicorn --check-config -c {conf} --chdir /srv/app/src " \
           "demo_site.wsgi:application"

# Legal values for every service, in each service's own syntax.
OVERRIDES = st.fixed_dictionaries({}, optional={
    "postgresql": st.fixed_dictionaries({}, optional={
        "work_mem": st.sampled_from(["64kB", "1MB", "8MB", "64MB"]),
        "max_locks_per_transaction": st.sampled_from(["64", "256"]),
        "max_prepared_transactions": st.sampled_from(["0", "10"]),
        "random_page_cost": st.sampled_from(["1.1", "2", "4"]),
        "checkpoint_timeout": st.sampled_from(["5min", "30min"]),
        "huge_pages": st.sampled_from(["off", "try"]),
    }),
    "postgresql_app_role": st.fixed_dictionaries({}, optional={
        "statement_timeout": st.sampled_from(["5s", "10s", "15s"]),
        "lock_timeout": st.sampled_from(["1s", "2s"]),
    }),
    "pgbouncer": st.fixed_dictionaries({}, optional={
        "query_wait_timeout": st.sampled_from(["5", "10"]),
        "client_login_timeout": st.sampled_from(["5", "30"]),
        "server_idle_timeout": st.sampled_from(["60", "600"]),
    }),
    "redis": st.fixed_dictionaries({}, optional={
        "maxmemory-policy": st.sampled_from(["allkeys-lru", "allkeys-lfu", "volatile-ttl"]),
        "maxmemory-samples": st.sampled_from(["5", "10"]),
        "tcp-keepalive": st.sampled_from(["60", "300"]),
    }),
    "gunicorn": st.fixed_dictionaries({}, optional={
        "timeout": st.sampled_from(["30", "60"]),
        "keepalive": st.sampled_from(["2", "5"]),
        "max_requests": st.sampled_from(["0", "500"]),
    }),
    "nginx": st.fixed_dictionaries({}, optional={
        "client_max_body_size": st.sampled_from(["1m", "100m"]),
        "large_client_header_buffers": st.sampled_from(["2 4k", "8 16k"]),
        "proxy_read_timeout": st.sampled_from(["2m", "300s"]),
    }),
})


@st.composite
def stacks(draw, version: int) -> StackInputs:
    profile = HostProfile(
        memory_bytes=draw(st.sampled_from([2 * GiB, 4 * GiB, 16 * GiB, 64 * GiB, 512 * GiB]))
        + draw(st.integers(0, 512)) * MiB,
        cpus=float(draw(st.sampled_from([1, 1.5, 2, 4, 8, 16, 64, 128]))),
        storage=draw(st.sampled_from(list(Storage))))
    apps = draw(st.integers(0, 3))
    hosts = (Host("db", profile, frozenset(SERVICES)),
             *(Host(f"app{i}", profile, frozenset({"gunicorn"})) for i in range(apps)))
    return StackInputs(hosts=hosts, workload=draw(st.sampled_from(list(Workload))),
                       pg_version=version, overrides=draw(OVERRIDES))


def _fits_the_memory_model(plan) -> None:
    pg = plan.services["postgresql"]
    concurrency = query_concurrency(plan.chain, int(pg["max_parallel_workers"]),
                                    int(pg["max_parallel_workers_per_gather"]))
    used = postgres_memory(pg, plan.inputs.pg_version, concurrency).total_bytes
    assert used <= plan.hosts["db"].budget.postgresql_bytes
    for host_plan in plan.hosts.values():
        assert host_plan.budget.total_bytes <= host_plan.budget.usable_bytes


def _accepted_plans(version: int) -> tuple[list, int]:
    """Up to PLANS accepted plans (the engine's refusals are counted, not checked here)."""
    plans: list = []
    refused = [0]

    @settings(max_examples=PLANS * 3, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(stacks(version))
    def collect(inputs):
        if len(plans) >= PLANS:
            return
        try:
            plans.append(plan_stack(inputs))
        except PlanError:
            refused[0] += 1

    collect()
    return plans, refused[0]


# Rendered file -> the checker that must accept it (the roles' own validators).
CHECKERS = {
    "postgresql.stacktune.conf": "/usr/local/sbin/stacktune-pg-checkconf {version} main "
                                 f"{PG_CONF_NAME} {{file}}",
    "pgbouncer.ini": "/usr/local/sbin/stacktune-pgbouncer-checkconf {file}",
    "redis.conf": "/usr/local/sbin/stacktune-redis-checkconf {file}",
    "gunicorn.conf.py": GUNICORN.replace("{conf}", "{file}"),
    # nginx reads a relative -c path from its prefix (/usr/share/nginx), not the directory.
    "nginx.conf": 'nginx -t -q -c "$PWD"/{file}',
}


def _archive(plans) -> tuple[bytes, dict[str, list[int]]]:
    """Each distinct rendered file once (plans share many), and which plans rendered it."""
    users: dict[str, list[int]] = {}
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for index, plan in enumerate(plans):
            out = Path(tmp) / f"plan{index:03d}"
            for path in render_host(plan, "db", out):
                if path.name not in CHECKERS:
                    continue
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                name = f"{digest}-{path.name}"
                if name not in users:
                    tar.add(path, arcname=name)
                users.setdefault(name, []).append(index)
    return buffer.getvalue(), users


CHECK_SCRIPT = r"""
set -u
cd {work}
check() {{
    file=$1
    case "$file" in
        *-postgresql.stacktune.conf) command="{postgresql}" ;;
        *-pgbouncer.ini) command="{pgbouncer}" ;;
        *-redis.conf) command="{redis}" ;;
        *-gunicorn.conf.py) command="{gunicorn}" ;;
        *-nginx.conf) command="{nginx}" ;;
    esac
    if eval "$command" > "$file.errors" 2>&1; then echo "$file ok"; else echo "$file refused"; fi
}}
export -f check
ls | grep -v -e '\.errors$' -e '\.b64$' | xargs -P 8 -I{{}} bash -c 'check {{}}'
"""


def test_every_accepted_plan_is_accepted_by_the_services(host):
    version = int(host.check_output(
        "runuser -u postgres -- psql -XAtqc 'SHOW server_version_num'")) // 10000
    plans, refused = _accepted_plans(version)
    assert len(plans) >= 40, f"only {len(plans)} accepted plans ({refused} refused)"
    for plan in plans:
        _fits_the_memory_model(plan)

    archive, users = _archive(plans)
    payload = base64.b64encode(archive).decode()
    host.check_output(f"rm -rf {WORK} && mkdir -p {WORK} && chmod 0755 {WORK}")
    chunk = 60_000
    for start in range(0, len(payload), chunk):
        host.check_output(f"printf %s {payload[start:start + chunk]} >> {WORK}/plans.b64")
    host.check_output(f"base64 -d {WORK}/plans.b64 | tar -xz -C {WORK} && chmod -R a+rX {WORK}")

    commands = {key.split(".")[0]: value.format(version=version, file='"$file"')
                for key, value in CHECKERS.items()}
    script = CHECK_SCRIPT.format(work=WORK, **commands)
    result = host.run(f"bash -c {shlex.quote(script)}")
    assert result.rc == 0, result.stderr
    verdicts = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line)
    assert set(verdicts) == set(users), "every distinct file was checked"
    refused_files = sorted(name for name, verdict in verdicts.items() if verdict != "ok")
    details = ""
    for name in refused_files[:3]:
        details += f"\n{name}: " + host.run(f"head -c 1500 {WORK}/{name}.errors").stdout
        details += f"\n  inputs: {plans[users[name][0]].inputs}"
    assert not refused_files, (
        f"{len(refused_files)} of {len(verdicts)} distinct files ({len(plans)} plans) "
        f"refused:{details}")
    host.run(f"rm -rf {WORK}")

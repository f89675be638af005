"""PostgreSQL after converge: the plan for the container's own profile is what runs."""

from __future__ import annotations

import re

import pytest
from conftest import APP_PASSWORD, PRIMARY
from stacktune_testlib import psql, recap_is_clean, run_playbook, show

from stacktune import pg_params
from stacktune.render import render_service
from stacktune.units import GiB, MiB

testinfra_hosts = [PRIMARY]

LIVE_SETTINGS = [
    "shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
    "max_connections", "superuser_reserved_connections", "autovacuum_max_workers",
    "autovacuum_naptime", "autovacuum_vacuum_scale_factor", "autovacuum_analyze_scale_factor",
    "autovacuum_vacuum_insert_scale_factor", "autovacuum_vacuum_cost_limit",
    "autovacuum_work_mem", "shared_preload_libraries", "log_min_duration_statement",
    "wal_compression", "random_page_cost", "password_encryption", "pg_stat_statements.max",
]


def test_profile_comes_from_the_cgroup_not_the_machine(profile):
    """molecule.yml limits the container to 2g and 1.5 CPUs; /proc/meminfo shows more."""
    assert profile.memory_bytes == 2 * GiB
    assert profile.cpus == 1.5
    assert profile.physical_memory_bytes > 2 * GiB
    assert "cgroup" in profile.memory_source


def test_plan_is_sized_for_2_gib(plan):
    shared = pg_params.value_in_base_units(
        "shared_buffers", plan.services["postgresql"]["shared_buffers"], plan.inputs.pg_version)
    assert shared * 8192 <= 512 * MiB  # 25% of 2 GiB at most; the machine's RAM would give GBs


@pytest.mark.parametrize("name", LIVE_SETTINGS)
def test_live_value_is_the_planned_one(host, plan, name):
    planned = str(plan.services["postgresql"][name])
    live = show(host, name)
    version = plan.inputs.pg_version
    param = pg_params.param_for(name, version)
    if param.vartype in ("integer", "real"):
        assert pg_params.value_in_base_units(name, live, version) == pytest.approx(
            pg_params.value_in_base_units(name, planned, version)), (name, planned, live)
    else:
        assert live == planned


def test_no_setting_waits_for_a_restart(host):
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_pg_stat_statements_answers_in_the_app_database(host):
    psql(host, "SELECT count(*) FROM pg_class", db="app")
    calls = psql(host, "SELECT sum(calls) FROM pg_stat_statements", db="app")
    assert int(calls) > 0


def test_app_role_logs_in_over_tcp_with_scram(host):
    ok = host.run("PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -U app -d app -c 'SELECT current_user'",
                  APP_PASSWORD)
    assert ok.rc == 0, ok.stderr
    assert ok.stdout.strip() == "app"
    wrong = host.run("PGPASSWORD=wrong psql -XAtq -h 127.0.0.1 -U app -d app -c 'SELECT 1'")
    assert wrong.rc != 0
    assert "password authentication failed" in wrong.stderr
    stored = psql(host, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
    assert stored.startswith("SCRAM-SHA-256$")


def test_hba_allows_no_trust_md5_or_plain_password(host):
    methods = psql(host, "SELECT DISTINCT auth_method FROM pg_hba_file_rules ORDER BY 1")
    assert set(methods.split()) == {"peer", "scram-sha-256"}


def test_conf_d_file_is_sorted_and_explained(host, plan):
    path = f"/etc/postgresql/{plan.inputs.pg_version}/main/conf.d/90-stacktune.conf"
    content = host.file(path).content_string
    settings = [line for line in content.splitlines() if re.match(r"^[a-z_.]+ = ", line)]
    planned = [line.split(" = ")[0] for line in settings][:len(plan.services["postgresql"])]
    assert planned == sorted(plan.services["postgresql"])
    assert all("\t# " in line for line in settings)


def test_cli_render_is_byte_identical_to_the_deployed_file(host, plan):
    path = f"/etc/postgresql/{plan.inputs.pg_version}/main/conf.d/90-stacktune.conf"
    name = host.backend.get_hostname()
    rendered = render_service("postgresql", plan.host_view(name),
                              {"postgresql_listen_addresses": show(host, "listen_addresses")})
    assert host.file(path).content_string == rendered


def test_check_mode_on_the_converged_host_changes_nothing():
    result = run_playbook("--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert recap_is_clean(result.stdout), result.stdout[-2000:]

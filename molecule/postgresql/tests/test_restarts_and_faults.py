"""Safe apply: bad values never go live, reloads keep the server, restarts only when allowed.

Each test leaves the server as the plain converge left it.
"""

from __future__ import annotations

import os

import pytest
from conftest import PRIMARY, plan_for
from stacktune_testlib import extra_vars, postmaster_pid, psql, run_playbook, show

from stacktune.live import pending_restart_settings

testinfra_hosts = [PRIMARY]

CONF = "/etc/postgresql/{version}/main/conf.d/90-stacktune.conf"
# Task headers name the role by its collection name.
POSTGRESQL = "stacktune.stacktune.postgresql"

# The faults exercise the role's mechanism (validate, swap, reload, restart), the same
# on every release; scripts/test runs them on one (STACKTUNE_FAULTS_ON), a plain
# `molecule test -s postgresql` on whichever release it converges.
pytestmark = pytest.mark.skipif(
    os.environ.get("STACKTUNE_FAULTS_ON", os.environ.get("MOLECULE_DISTRO", "bookworm"))
    != os.environ.get("MOLECULE_DISTRO", "bookworm"),
    reason="fault tests run on STACKTUNE_FAULTS_ON only")


@pytest.fixture
def conf_path(plan):
    return CONF.format(version=plan.inputs.pg_version)


@pytest.fixture
def back_to_the_plan():
    """For tests that change the server: converge it back to the plan afterwards."""
    yield
    result = run_playbook(*extra_vars(postgresql_allow_restart=True))
    assert result.returncode == 0, result.stdout[-3000:]


def test_invalid_override_fails_before_the_live_file_changes(host, conf_path):
    before = host.file(conf_path).content_string
    work_mem = show(host, "work_mem")
    result = run_playbook(*extra_vars(stacktune_overrides={"postgresql": {"work_mem": "64XB"}}))
    assert result.returncode != 0
    assert "postgresql.work_mem" in result.stdout
    assert host.file(conf_path).content_string == before
    assert show(host, "work_mem") == work_mem


def test_postgresql_check_keeps_a_bad_value_out_of_the_live_file(host, conf_path):
    """A value the engine never produced is rejected by `postgres -C` in the validate step."""
    before = host.file(conf_path).content_string
    pid = postmaster_pid(host)
    result = run_playbook(*extra_vars(bad_work_mem="64XB"),
                          playbook="molecule/postgresql/playbooks/bypass_engine.yml")
    assert result.returncode != 0
    assert 'invalid value for parameter "work_mem"' in result.stdout
    assert host.file(conf_path).content_string == before
    assert postmaster_pid(host) == pid
    assert psql(host, "SELECT 1") == "1"


def test_reload_only_change_keeps_the_postmaster(host, back_to_the_plan):
    pid = postmaster_pid(host)
    override = {"postgresql": {"log_min_duration_statement": "750ms"}}
    result = run_playbook(*extra_vars(stacktune_overrides=override))
    assert result.returncode == 0, result.stdout[-3000:]
    assert show(host, "log_min_duration_statement") == "750ms"
    assert postmaster_pid(host) == pid
    reload_task = result.stdout.split(f"TASK [{POSTGRESQL} : Reload PostgreSQL]")[1]
    assert "changed:" in reload_task.split("TASK [")[0]


def test_restart_only_change_waits_then_restarts_once_keeping_data(host, profile,
                                                                  back_to_the_plan):
    pid = postmaster_pid(host)
    before = show(host, "shared_buffers")
    overrides = {"postgresql": {"shared_buffers": "256MB"}}
    override = {"stacktune_overrides": overrides}
    # What the engine says this change needs a restart for (wal_buffers follows
    # shared_buffers), from the live rows before the change.
    rows = [dict(zip(("name", "setting", "context"), line.split("|"), strict=True))
            for line in psql(host, "SELECT name, setting, context FROM pg_settings").splitlines()]
    planned = plan_for(host, profile, overrides).services["postgresql"]
    expected = pending_restart_settings(planned, rows, int(show(host, "server_version_num"))
                                        // 10000)
    assert "shared_buffers" in expected

    held = run_playbook(*extra_vars(**override, postgresql_allow_restart=False))
    assert held.returncode == 0, held.stdout[-3000:]
    assert f"needs a restart to apply: {', '.join(expected)}" in " ".join(held.stdout.split())
    assert postmaster_pid(host) == pid
    assert show(host, "shared_buffers") == before
    pending = psql(host, "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
    assert pending.split() == expected

    psql(host, "CREATE TABLE IF NOT EXISTS restart_probe (note text)", db="app")
    psql(host, "INSERT INTO restart_probe VALUES ('written before the restart')", db="app")
    applied = run_playbook(*extra_vars(**override, postgresql_allow_restart=True))
    assert applied.returncode == 0, applied.stdout[-3000:]
    restart_task = applied.stdout.split(f"TASK [{POSTGRESQL} : Restart PostgreSQL")[1]
    assert restart_task.split("TASK [")[0].count("changed:") == 1
    assert postmaster_pid(host) != pid
    assert show(host, "shared_buffers") == "256MB"
    assert psql(host, "SELECT note FROM restart_probe", db="app") == "written before the restart"
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    psql(host, "DROP TABLE restart_probe", db="app")

"""The timeout chain and the app role's settings (section postgresql_app_role).

postgresql_app_role is a contract with the postgresql role, which applies it with
ALTER ROLE <app> SET: {setting: PostgreSQL time value as a string}, reasons under
postgresql_app_role.<name>, present whenever postgresql is placed.
"""

from __future__ import annotations

import json

import pytest

from stacktune.cli import main
from stacktune.model import Host, HostProfile, PlanError, StackInputs, Storage
from stacktune.plan import Plan, plan_stack
from stacktune.units import GiB

ALL = ("postgresql", "pgbouncer", "redis", "gunicorn")
HOST = ["--memory", "4GiB", "--cpus", "2", "--storage", "ssd", "--host-name", "web1"]


def plan(services=ALL, overrides=None, pg_version: int = 15) -> Plan:
    profile = HostProfile(memory_bytes=4 * GiB, cpus=2, storage=Storage.SSD)
    return plan_stack(StackInputs(hosts=(Host("h", profile, frozenset(services)),),
                                  overrides=overrides or {}, pg_version=pg_version))


# --- The postgresql_app_role contract ---------------------------------------------------------


@pytest.mark.parametrize("services", [ALL, ("postgresql",), ("postgresql", "pgbouncer")])
def test_app_role_section_whenever_postgresql_is_placed(services):
    p = plan(services)
    role = p.services["postgresql_app_role"]
    assert role == {"statement_timeout": "15s", "lock_timeout": "5s",
                    "idle_in_transaction_session_timeout": "60s"}
    assert all(isinstance(v, str) for v in role.values())
    for name in role:
        assert p.reasons[f"postgresql_app_role.{name}"]
    view = p.host_view("h")
    assert view["postgresql_app_role"] == role
    assert all(f"postgresql_app_role.{name}" in view["reasons"] for name in role)
    assert p.to_dict()["postgresql_app_role"] == role


def test_no_app_role_section_without_postgresql():
    p = plan(("redis", "gunicorn"))
    assert "postgresql_app_role" not in p.services
    assert "postgresql_app_role" not in p.host_view("h")


def test_app_role_override_applies_with_its_reason():
    p = plan(overrides={"postgresql_app_role": {"statement_timeout": "20s"}})
    assert p.services["postgresql_app_role"]["statement_timeout"] == "20s"
    assert "15s" in p.reasons["postgresql_app_role.statement_timeout"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("statement_timeout", "15 parsecs", "postgresql_app_role.statement_timeout"),
    ("statement_timeout", "-5s", "postgresql_app_role.statement_timeout"),
    ("work_mem", "64MB", "unknown setting postgresql_app_role.work_mem"),
    ("transaction_timeout", "30s", "does not exist in PostgreSQL 15"),
])
def test_app_role_bad_overrides_name_the_setting(name, value, message):
    with pytest.raises(PlanError, match=message):
        plan(overrides={"postgresql_app_role": {name: value}})


def test_cli_json_and_table_print_the_app_role(capsys):
    assert main(["plan", *HOST, "--format", "json",
                 "--set", "postgresql_app_role.statement_timeout=20s"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["postgresql_app_role"]["statement_timeout"] == "20s"
    assert data["reasons"]["postgresql_app_role.lock_timeout"]
    assert main(["plan", *HOST]) == 0
    table = capsys.readouterr().out
    assert "[postgresql_app_role]" in table
    assert "statement_timeout" in table.split("[postgresql_app_role]")[1].split("[")[0]


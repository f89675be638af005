"""PostgreSQL alone on one host: the plan for the container's own profile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from stacktune_testlib import container_profile, show

from stacktune.model import Host, HostProfile, StackInputs, Workload
from stacktune.plan import Plan, plan_stack

APP_PASSWORD = "molecule-only-password"


def plan_for(host, profile: HostProfile, overrides: dict | None = None) -> Plan:
    version = int(show(host, "server_version_num")) // 10000
    name = host.backend.get_hostname()
    return plan_stack(StackInputs(
        hosts=(Host(name, profile, frozenset({"postgresql"})),),
        workload=Workload.WEB, pg_version=version, overrides=overrides or {}))


@pytest.fixture(scope="module")
def profile(host) -> HostProfile:
    return container_profile(host)


@pytest.fixture(scope="module")
def plan(host, profile) -> Plan:
    return plan_for(host, profile)

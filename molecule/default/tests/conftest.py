"""The single-host stack: one container runs every service."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from stacktune_testlib import container_profile

from stacktune.model import SERVICES, Host, StackInputs, Workload
from stacktune.plan import Plan, plan_stack


@pytest.fixture(scope="module")
def plan(host) -> Plan:
    """The engine's plan for this container's own profile, every service on it."""
    version = int(host.check_output(
        "runuser -u postgres -- psql -XAtqc 'SHOW server_version_num'")) // 10000
    name = host.backend.get_hostname()
    return plan_stack(StackInputs(
        hosts=(Host(name, container_profile(host), frozenset(SERVICES)),),
        workload=Workload.WEB, pg_version=version))

"""PostgreSQL on one host and its streaming replica: the plan for the containers' own profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from stacktune_testlib import container_profile, show

from stacktune.model import REPLICA, Host, HostProfile, StackInputs, Workload
from stacktune.plan import Plan, plan_stack

APP_PASSWORD = "molecule-only-password"
REPLICATION_PASSWORD = "molecule-only-replication"
_SUFFIX = (os.environ.get("MOLECULE_DISTRO", "bookworm")
           + os.environ.get("STACKTUNE_INSTANCE", ""))
# molecule.yml's two containers: the tests of the primary run there only (testinfra_hosts).
PRIMARY_NAME = f"stacktune-pg-{_SUFFIX}"
REPLICA_NAME = f"stacktune-pg-replica-{_SUFFIX}"
PRIMARY = f"ansible://{PRIMARY_NAME}"
REPLICA_HOST = f"ansible://{REPLICA_NAME}"
_replica_profile: list[HostProfile] = []


def replica_profile() -> HostProfile:
    if not _replica_profile:
        import testinfra

        _replica_profile.append(container_profile(testinfra.get_host(
            REPLICA_HOST, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])))
    return _replica_profile[0]


def plan_for(host, profile: HostProfile, overrides: dict | None = None) -> Plan:
    """The scenario's plan: the primary (``host``) and its replica, as the converge planned."""
    version = int(show(host, "server_version_num")) // 10000
    return plan_stack(StackInputs(
        hosts=(Host(PRIMARY_NAME, profile, frozenset({"postgresql"})),
               Host(REPLICA_NAME, replica_profile(), frozenset({REPLICA}))),
        workload=Workload.WEB, pg_version=version, overrides=overrides or {}))


@pytest.fixture(scope="module")
def profile(host) -> HostProfile:
    return container_profile(host)


@pytest.fixture(scope="module")
def plan(host, profile) -> Plan:
    return plan_for(host, profile)

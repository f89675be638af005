"""Three tiers: db (PostgreSQL + PgBouncer), cache (Redis, and nginx in front of the app hosts),
app1 and app2, and an outsider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))

from stacktune_testlib import container_profile

from stacktune.model import Host, StackInputs, Workload
from stacktune.plan import Plan, plan_stack

PLACEMENT = {
    "stacktune-db": {"postgresql", "pgbouncer"},
    "stacktune-cache": {"redis", "nginx"},
    "stacktune-app1": {"gunicorn"},
    "stacktune-app2": {"gunicorn"},
}


def node(name: str):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


@pytest.fixture(scope="session")
def nodes() -> dict:
    return {name: node(name) for name in (*PLACEMENT, "stacktune-outsider")}


@pytest.fixture(scope="session")
def plan(nodes) -> Plan:
    """The engine's plan for the four containers' own profiles and this placement."""
    db = nodes["stacktune-db"]
    version = int(db.check_output(
        "runuser -u postgres -- psql -XAtqc 'SHOW server_version_num'")) // 10000
    hosts = tuple(Host(name, container_profile(nodes[name]), frozenset(services))
                  for name, services in PLACEMENT.items())
    return plan_stack(StackInputs(hosts=hosts, workload=Workload.WEB, pg_version=version))

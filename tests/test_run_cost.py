"""What a run costs per host, checked without containers: each task on a remote host is
one exec or more, so the kit gathers facts once per run and pipelines its modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from test_playbooks import ANSIBLE_PLAYBOOK, ROOT, TEST_SECRETS, THREE_TIER


def test_the_docker_connection_pipelines_modules():
    """The demo and molecule reach hosts with community.docker.docker, which has no
    pipelining option of its own and follows the global one ([ssh_connection] reaches
    ssh only). Pipelined, a module is one exec; otherwise four: mkdir, copy, chmod, run."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_PIPELINING"}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-config"), "dump",
                          "--only-changed", "--format", "json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    settings = {entry["name"]: entry["value"] for entry in json.loads(out) if "name" in entry}
    assert settings.get("ANSIBLE_PIPELINING") is True


def test_site_gathers_each_hosts_facts_once(tmp_path):
    """site.yml imports the plan play once per tier (each tier runs alone too): the
    facts are gathered by the first, and no later play gathers them again."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(THREE_TIER.format(python=sys.executable, root=ROOT, secrets=TEST_SECRETS))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOCALHOST_WARNING": "0"}
    # --tags always: the plan plays, and the gathering of any play that still gathers.
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), "site.yml",
                             "--tags", "always"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    gathered: Counter[str] = Counter()
    for play in json.loads(result.stdout)["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("action") in ("gather_facts", "ansible.builtin.gather_facts",
                                         "setup", "ansible.builtin.setup") \
                        and not res.get("skipped") and "ansible_facts" in res:
                    gathered[host] += 1
    assert gathered == {"db1": 1, "cache1": 1, "app1": 1, "app2": 1}


def test_tier_plays_use_the_plan_plays_facts():
    """Every tier play follows the plan play (site.yml, or its own import of plan.yml),
    which gathered the facts: none gathers them again."""
    import yaml

    for playbook in sorted((ROOT / "playbooks").glob("*.yml")):
        if playbook.name in ("plan.yml", "facts.yml"):
            continue
        for play in yaml.safe_load(playbook.read_text()):
            if "hosts" in play:
                assert play.get("gather_facts") is False, f"{playbook.name}: {play['name']}"


# Roles only the kit's own roles and plays include, with values those compute from
# variables the plan play has checked (or the plan checks the roles' own variables):
# a check of their arguments on every inclusion is a task result per inclusion and run
# (service_recovery alone: 4 per host) that cannot find anything new.
INTERNAL_ROLES = {"service_recovery", "tier_firewall", "package_index"}
# gunicorn's other entry points take the options of its service entry, which the plan
# checks (that one keeps its own check: it requires stacktune_plan).
GUNICORN_CHECKED_ENTRIES = {("gunicorn", "workers"), ("gunicorn", "install"),
                            ("gunicorn", "healthcheck")}


def _role_inclusions(node):
    """Every include_role/import_role task under node (a task list, block or play)."""
    if isinstance(node, list):
        for item in node:
            yield from _role_inclusions(item)
    elif isinstance(node, dict):
        for key in ("ansible.builtin.include_role", "include_role",
                    "ansible.builtin.import_role", "import_role"):
            if key in node:
                yield node[key]
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _role_inclusions(node.get(key))


def test_internal_roles_are_included_without_a_second_argument_check():
    import yaml

    found: Counter[str] = Counter()
    for path in sorted([*(ROOT / "roles").glob("*/tasks/*.yml"),
                        *(ROOT / "playbooks").glob("*.yml")]):
        for inclusion in _role_inclusions(yaml.safe_load(path.read_text())):
            role = inclusion["name"].removeprefix("stacktune.stacktune.")
            entry = inclusion.get("tasks_from", "main")
            if role in INTERNAL_ROLES or (role, entry) in GUNICORN_CHECKED_ENTRIES:
                found[f"{role}:{entry}"] += 1
                assert inclusion.get("rolespec_validate") is False, \
                    f"{path.relative_to(ROOT)}: {role}:{entry} keeps its argument check"
    assert found == {"service_recovery:main": 4, "tier_firewall:main": 4, "package_index:main": 1,
                     "gunicorn:workers": 1, "gunicorn:install": 1, "gunicorn:healthcheck": 1}


def test_the_plan_checks_the_variables_of_the_internal_roles_users_set():
    """tier_firewall's variables are all set by the role that includes it; the other two
    have variables of their own that an inventory may set."""
    import yaml

    entries = yaml.safe_load((ROOT / "roles/stacktune/vars/main.yml").read_text())[
        "__stacktune_role_entries"]
    checked = {(entry["service"], entry["role"]) for entry in entries}
    assert {("host", "service_recovery"), ("host", "package_index")} <= checked

"""The Ansible collection: built from this checkout, installed offline into an empty
directory, and run from a directory that is not this checkout (no containers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from test_playbooks import TEST_SECRETS, THREE_TIER, plan_with

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COLLECTION = "stacktune.stacktune"

# Runs the collection's plan playbook and writes the plan, as tests/playbooks/plan_dump.yml
# does from the checkout.
PLAN_DUMP = """
- name: Plan
  ansible.builtin.import_playbook: stacktune.stacktune.plan

- name: Write the plan
  hosts: all
  gather_facts: false
  tasks:
    - name: Dump the whole plan and every host's view
      ansible.builtin.copy:
        content: "{{ {'plan': stacktune_plan_result.plan,
                      'views': stacktune_plan_result.views} | to_nice_json }}"
        dest: "{{ plan_dump_path }}"
        mode: "0644"
      delegate_to: localhost
      run_once: true
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """An empty directory with the built collection installed in ./collections, an
    inventory of local hosts and an ansible.cfg that knows only that collections path."""
    home = tmp_path_factory.mktemp("elsewhere")
    built = subprocess.run([str(ROOT / "scripts" / "build-collection"), str(home / "dist")],
                           capture_output=True, text=True, env=clean_env(), check=False)
    assert built.returncode == 0, built.stderr
    tarball = Path(built.stdout.strip().splitlines()[-1])
    if not tarball.is_absolute():
        tarball = ROOT / tarball
    assert tarball.name == "stacktune-stacktune-0.1.0.tar.gz"
    (home / "ansible.cfg").write_text(
        "[defaults]\ncollections_path = ./collections\ninterpreter_python = auto_silent\n")
    installed = run(home, "ansible-galaxy", "collection", "install", "--offline",
                    "-p", str(home / "collections"), str(tarball))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "stacktune.stacktune:0.1.0 was installed successfully" in installed.stdout
    (home / "hosts.yml").write_text(THREE_TIER.format(
        python=sys.executable, secrets=TEST_SECRETS,
        # The demo app shipped in the collection stands for the operator's project.
        root=home / "collections" / "ansible_collections" / "stacktune" / "stacktune"))
    (home / "tarball").write_text(str(tarball))
    return home


def clean_env() -> dict[str, str]:
    """This process's environment without any ANSIBLE_* setting that could point at the
    checkout (ANSIBLE_CONFIG, collections or roles paths)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", PATH=f"{BIN}:{env.get('PATH', '')}")
    return env


def run(cwd: Path, tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_tarball_ships_the_engine_and_templates_not_the_tests(installed):
    with tarfile.open((installed / "tarball").read_text()) as tar:
        names = set(tar.getnames())
    for shipped in ("galaxy.yml", "MANIFEST.json", "meta/runtime.yml", "CHANGELOG.md",
                    "playbooks/site.yml", "plugins/action/stacktune_plan.py",
                    "plugins/modules/stacktune_plan.py", "plugins/filter/pg_quote.yml",
                    "stacktune/plan.py", "templates/postgresql.conf.j2",
                    "roles/postgresql/meta/argument_specs.yml"):
        assert shipped in names or shipped == "galaxy.yml", shipped
    for left_out in ("tests", "molecule", "bench", "scripts", ".cache", ".venv", "site.yml"):
        assert not any(name == left_out or name.startswith(left_out + "/") for name in names), \
            left_out
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_report_ships_its_collector_and_playbook(installed):
    root = installed / "collections/ansible_collections/stacktune/stacktune"
    # The module's collector is the engine's own file (a link in the checkout).
    shipped = root / "plugins/module_utils/stacktune_report_collect.py"
    assert shipped.read_text() == (root / "stacktune/report/collect.py").read_text()
    # And the index advisor, which the module runs on the database host.
    advisor = root / "plugins/module_utils/stacktune_report_indexes.py"
    assert advisor.read_text() == (root / "stacktune/report/indexes.py").read_text()
    result = run(installed, "ansible-playbook", f"{COLLECTION}.report", "--syntax-check",
                 "-i", "hosts.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_site_playbook_passes_syntax_check_from_elsewhere(installed):
    result = run(installed, "ansible-playbook", f"{COLLECTION}.site", "--syntax-check",
                 "-i", "hosts.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    site = installed / "collections/ansible_collections/stacktune/stacktune/playbooks/site.yml"
    assert f"playbook: {site}" in result.stdout


@pytest.mark.parametrize(("kind", "name", "expected"), [
    ("module", "host_profile", ["data_path", "choices: [hdd, ssd, nvme, san]"]),
    # The action plugin, documented by its module stub.
    ("module", "stacktune_plan", ["overrides", "workload", "distro_pg_versions",
                                  "corresponding action plugin"]),
    ("filter", "pg_quote", ["single quotes", "_input"]),
    ("filter", "stacktune_scram_verifier", ["SCRAM-SHA-256", "current"]),
    ("module", "postgresql_snapshot", ["login_db", "statement_timeout_ms", "check mode"]),
    ("filter", "stacktune_report", ["self-contained HTML", "choices: [md, json, html]"]),
    ("role", "postgresql", ["postgresql_allow_restart"]),
    ("role", "stacktune", ["stacktune_workload", "stacktune_overrides"]),
])
def test_ansible_doc_documents_the_installed_plugins_and_roles(installed, kind, name, expected):
    result = run(installed, "ansible-doc", "-t", kind, f"{COLLECTION}.{name}")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for text in expected:
        assert text in out, f"{text!r} not in ansible-doc -t {kind} {name}:\n{out[:3000]}"
    if kind != "role":  # plugin docs name the file they come from: the installed copy
        assert str(installed / "collections" / "ansible_collections") in out.splitlines()[0]


def test_the_installed_engine_computes_the_checkouts_plan(installed, tmp_path):
    """The plan play of the installed collection, on local hosts with pinned hardware,
    plans what the checkout plans."""
    (installed / "plan_dump.yml").write_text(PLAN_DUMP)
    dump = installed / "plan.json"
    result = run(installed, "ansible-playbook", "-i", "hosts.yml", "plan_dump.yml",
                 "-e", f"plan_dump_path={dump}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from_collection = json.loads(dump.read_text())
    assert set(from_collection["views"]) == {"db1", "cache1", "app1", "app2"}
    assert from_collection["plan"]["postgresql"]["shared_buffers"].endswith(("MB", "GB"))
    from_checkout = plan_with(installed / "hosts.yml", tmp_path)
    assert from_collection["plan"] == from_checkout["plan"]
    assert from_collection["views"] == from_checkout["views"]


def test_the_plugins_load_the_engine_shipped_beside_them(installed):
    """Even where another copy of the stacktune package is importable (this checkout's
    editable install), the plugins run the one inside the collection."""
    engine = (installed / "collections" / "ansible_collections" / "stacktune" / "stacktune" /
              "plugins" / "module_utils" / "stacktune_engine.py")
    probe = ("import importlib.util, sys\n"
             f"spec = importlib.util.spec_from_file_location('engine', {str(engine)!r})\n"
             "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
             "import stacktune.plan\n"
             "print(stacktune.plan.__file__)\n")
    default = subprocess.run([sys.executable, "-c", "import stacktune; print(stacktune.__file__)"],
                             cwd=installed, capture_output=True, text=True, check=True)
    assert str(installed) not in default.stdout  # another copy is importable here
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=installed, capture_output=True,
                            text=True, check=True)
    assert loaded.stdout.strip() == str(engine.parents[2] / "stacktune" / "plan.py")

"""The bad-input corpus (tests/data/bad_inputs.yaml) through the CLI and the Ansible plan play.

Every case must exit 2 with one line on stderr that names the offending input and says what
to do, with no traceback and nothing written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacktune.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = yaml.safe_load((ROOT / "tests" / "data" / "bad_inputs.yaml").read_text())
HOST = ["--memory", "4GiB", "--cpus", "2", "--storage", "ssd", "--host-name", "web1"]
# A message says what to do: one of these words, or argparse's own "(choose from ...)".
FIX_WORDS = re.compile(
    r"\b(use|expected|expects|write|set|remove|raise|lower|place|give|choose|drop|keep|"
    r"at most|at least|one of|must|required|need|needs|did you mean|known|range|see|include|"
    r"cannot)\b", re.IGNORECASE)


def _argv(case: dict, tmp_path: Path) -> list[str]:
    out = str(tmp_path / "out")
    afile = tmp_path / "a-file"
    args = [a.replace("{out}", out).replace("{file}", str(afile)) for a in case["args"]]
    if "{file}" in "".join(case["args"]):
        afile.write_text("keep me\n")
    cmd = case.get("cmd", "render")
    if cmd == "raw":
        return args
    base = [] if case.get("bare") else HOST
    if cmd == "render":
        return ["render", "--out", out, *base, *args]
    return [cmd, *base, *args]


def _listing(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else b"")
            for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("case", CORPUS["cli"], ids=[c["id"] for c in CORPUS["cli"]])
def test_cli_bad_input(case, tmp_path, monkeypatch, capsys):
    argv = _argv(case, tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _listing(tmp_path)
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, (argv, captured)
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("stacktune: error: ")
    assert "Traceback" not in captured.err
    assert case["names"] in lines[0], lines[0]
    assert FIX_WORDS.search(lines[0].removeprefix("stacktune: error: ")), lines[0]
    assert _listing(tmp_path) == before, "something was written"


def test_corpus_size():
    assert len(CORPUS["cli"]) >= 100
    assert len(CORPUS["ansible"]) + len(CORPUS["ansible_play"]) >= 20
    for group in ("cli", "ansible", "ansible_play", "ansible_role_args"):
        ids = [c["id"] for c in CORPUS[group]]
        assert len(ids) == len(set(ids)), group


# --- Ansible ---------------------------------------------------------------------------------

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
INVENTORY = """\
[postgresql]
localhost
[pgbouncer]
localhost
[redis]
localhost
[app]
localhost
[all:vars]
ansible_connection=local
ansible_python_interpreter={python}
stacktune_memory=4GiB
stacktune_cpus=2
stacktune_storage=ssd
stacktune_pg_version=15
stacktune_address=192.0.2.10
postgresql_app_password=test-only-db
pgbouncer_admin_password=test-only-pgbouncer-admin
pgbouncer_stats_password=test-only-pgbouncer-stats
redis_app_password=test-only-cache
redis_admin_password=test-only-cache-admin
django_settings_secret_key=test-only-secret-key-0123456789012345678901234567890123456789
gunicorn_wsgi_app=demo_site.wsgi:application
gunicorn_requirements=requirements-django5.2.txt
"""
# The demo as the app tier's project (the plan play checks it is there).
INVENTORY += f"gunicorn_app_src={ROOT / 'demo'}\n"


def _ansible_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_RETRY_FILES_ENABLED="0",
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def ansible_results(tmp_path_factory) -> dict[str, dict]:
    """Every Ansible case in one ansible-playbook run: the stacktune role per case, rescued."""
    tmp_path = tmp_path_factory.mktemp("ansible")
    inventory = tmp_path / "inventory"
    inventory.write_text(INVENTORY.format(python=sys.executable))
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"bad_cases": CORPUS["ansible"]}))
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(ROOT / "tests" / "playbooks" /
                                                         "bad_vars.yml"),
         "-e", f"@{cases}", "-e", f"bad_results_file={results}"],
        cwd=ROOT, env=_ansible_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {r["id"]: r for r in json.loads(results.read_text())}


@pytest.mark.parametrize("case", CORPUS["ansible"], ids=[c["id"] for c in CORPUS["ansible"]])
def test_ansible_bad_variable(case, ansible_results):
    result = ansible_results[case["id"]]
    assert result["failed"], f"{case['id']} was accepted: {result}"
    message = result["msg"]
    assert "Traceback" not in message
    assert case["names"] in message, message
    assert not result["planned"], "a plan was kept although the input is bad"


@pytest.mark.parametrize("case", CORPUS["ansible_play"],
                         ids=[c["id"] for c in CORPUS["ansible_play"]])
def test_plan_play_stops_before_any_change(case, tmp_path):
    """playbooks/plan.yml itself: the plan task fails naming the variable; no host_tuning."""
    inventory = tmp_path / "inventory"
    inventory.write_text(INVENTORY.format(python=sys.executable))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({**case["vars"],
                                 "host_tuning_sysctl_file": str(tmp_path / "sysctl.conf")}))
    proc = subprocess.run(
        # --check: should the plan be accepted after all, host_tuning must not touch this machine.
        [str(ANSIBLE_PLAYBOOK), "--check", "-i", str(inventory),
         str(ROOT / "playbooks" / "plan.yml"), "-e", f"@{extra}"],
        cwd=ROOT, env=_ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    failed = [line for line in proc.stdout.splitlines() if line.startswith("fatal:")]
    assert failed and "stacktune plan: " in proc.stdout, proc.stdout[-3000:]
    assert case["names"] in proc.stdout[proc.stdout.index("fatal:"):], proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "host_tuning" not in proc.stdout
    assert not (tmp_path / "sysctl.conf").exists()


@pytest.mark.parametrize("case", CORPUS["ansible_role_args"],
                         ids=[c["id"] for c in CORPUS["ansible_role_args"]])
def test_plan_play_checks_the_included_roles_variables(case, tmp_path):
    """service_recovery and package_index run without an argument check of their own: a bad
    value of theirs stops the plan play's check of every role's variables, naming it."""
    inventory = tmp_path / "inventory"
    inventory.write_text(INVENTORY.format(python=sys.executable))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--check", "-i", str(inventory),
         str(ROOT / "playbooks" / "plan.yml"), "-e", json.dumps(case["vars"])],
        cwd=ROOT, env=_ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    before, failed = proc.stdout.split("failed: [localhost]", 1)
    last_task = before[before.rindex("TASK ["):].splitlines()[0]
    assert "Check the variables of every role this host will run, before any change" in last_task
    assert "Validation of arguments failed" in failed, proc.stdout[-3000:]
    assert f"argument '{case['names']}' is of type str" in failed, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr


def _render_with_ansible(tmp_path: Path, extra: dict) -> tuple[subprocess.CompletedProcess,
                                                                 Path]:
    from stacktune.render import DEFAULT_CONTEXT

    inventory = tmp_path / "inventory"
    inventory.write_text(INVENTORY.format(python=sys.executable).replace("localhost", "web1")
                         + "[proxy]\nweb1\n")
    out = tmp_path / "ansible"
    out.mkdir()
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({**DEFAULT_CONTEXT, "repo_root": str(ROOT),
                                     "render_out": str(out), **extra}))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory),
         str(ROOT / "tests" / "playbooks" / "render_templates.yml"), "-e", f"@{variables}"],
        cwd=ROOT, env=_ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    return proc, out


def test_ansible_renders_what_the_cli_renders_through_the_same_guards(tmp_path, capsys):
    overrides = {"pgbouncer": {"listen_port": "6433"}}
    proc, out = _render_with_ansible(tmp_path, {"stacktune_overrides": overrides})
    assert proc.returncode == 0, proc.stdout[-3000:]
    cli = tmp_path / "cli"
    assert main(["render", "--out", str(cli), *HOST, "--set", "pgbouncer.listen_port=6433"]) == 0
    capsys.readouterr()
    ansible_files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert ansible_files == {p.name: p.read_bytes() for p in cli.iterdir()}
    assert b'"PORT": 6433,' in ansible_files["stacktune_settings.py"]


def test_ansible_template_refuses_an_injected_line(tmp_path):
    # Given as a template variable, past the plan play's own check of inventory variables.
    proc, out = _render_with_ansible(
        tmp_path, {"pgbouncer_listen_addr": "127.0.0.1\nauth_type = trust"})
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "control character '\\n'" in proc.stdout
    assert not (out / "pgbouncer.ini").exists()

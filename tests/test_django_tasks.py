"""The django_settings role's one-process Django steps (files/stacktune_django_tasks.py),
run as the role runs them (`manage.py shell -c`) on the demo app with SQLite: --check's
plan applies nothing, migrate applies what the plan listed, check --deploy's verdict is
the command's own."""

from __future__ import annotations

import json
import subprocess
import sys

from test_demo_app import DEMO, _demo_env, _secret_key
from test_playbooks import ROOT

SCRIPT = (ROOT / "roles/django_settings/files/stacktune_django_tasks.py").read_text()


def tasks(env: dict[str, str], steps: str) -> dict:
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], cwd=DEMO,
                            env={**env, "STACKTUNE_DJANGO_TASKS": steps}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def unapplied(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "manage.py", "showmigrations", "--plan"], cwd=DEMO,
                         env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.startswith("[ ]")]


def test_plan_lists_what_migrate_applies_and_applies_nothing(tmp_path):
    env = _demo_env(tmp_path, DJANGO_SECRET_KEY=_secret_key())
    pending = unapplied(env)
    assert "sessions.0001_initial" in pending
    planned = tasks(env, "plan")
    assert planned["pending"] == pending
    assert planned["migrated"] is False
    assert unapplied(env) == pending

    migrated = tasks(env, "migrate")
    assert migrated["pending"] == pending and migrated["migrated"] is True
    assert unapplied(env) == []
    again = tasks(env, "migrate")
    assert again["pending"] == [] and again["migrated"] is False


def test_check_deploy_verdict_is_the_commands(tmp_path):
    env = _demo_env(tmp_path, DJANGO_SECRET_KEY=_secret_key())
    command = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                              "WARNING"], cwd=DEMO, env=env, capture_output=True, text=True,
                             timeout=120, check=False)
    result = tasks(env, "check")
    assert result["check_failed"] is (command.returncode != 0)
    assert result["recorder_loaded"] is None
    if command.returncode:
        # The same findings, by their ids (security.W004 ...).
        def ids(text: str) -> list[str]:
            return sorted(word for word in text.split() if word.startswith("(security."))
        assert ids(command.stderr) and ids(command.stderr) == ids(result["check"])


def test_data_command_runs_after_migrate_in_the_same_start(tmp_path):
    """The demo's data loader runs in the role's one Django start: loads once, then says so."""
    env = {**_demo_env(tmp_path, DJANGO_SECRET_KEY=_secret_key()),
           "STACKTUNE_DJANGO_DATA_COMMAND": "load_demo_data"}
    first = tasks(env, "migrate,data")
    assert first["migrated"] is True
    loaded = "Loaded 200 authors, 20 categories, 10000 articles"
    assert first["data"].startswith(loaded), first["data"]
    again = tasks(env, "migrate,data")
    assert again["migrated"] is False
    assert "already present (200 authors" in again["data"], again["data"]
    assert tasks(env, "check")["data"] is None

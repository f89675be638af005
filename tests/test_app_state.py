"""The gunicorn role's one-call read of an app host (files/stacktune_app_state.py), run as
the role runs it (python3 -c SCRIPT ARGS) on a real virtualenv and directory tree."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

from test_playbooks import ROOT

SCRIPT = (ROOT / "roles/gunicorn/files/stacktune_app_state.py").read_text()


def read_state(home: Path, user: str, *dirs: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(home), user, str(home / "venv"),
                             str(home / "dist"), *map(str, dirs)],
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def test_fresh_host_has_nothing(tmp_path):
    home = tmp_path / "app"
    state = read_state(home, "no-such-user", home, home / "src")
    assert state == {"venv": False, "user": None,
                     "dirs": {str(home): None, str(home / "src"): None},
                     "app_owned": [], "freeze": [], "freeze_ok": False, "purelib": "",
                     "old_wheels": []}


def test_installed_host_matches_pip_freeze(tmp_path):
    home = tmp_path / "app"
    (home / "src").mkdir(parents=True)
    (home / "dist").mkdir()
    (home / "dist" / "mysite-1.0-py3-none-any.whl").write_text("")
    (home / "src").chmod(0o750)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, timeout=120)
    me = os.getuid()
    owner = pwd.getpwuid(me).pw_name
    state = read_state(home, owner, home, home / "src", home / "missing")
    assert state["venv"] is True and state["freeze_ok"] is True
    freeze = subprocess.run([str(home / "venv/bin/python"), "-m", "pip", "freeze", "--all"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert sorted(state["freeze"]) == sorted(freeze) and any(
        line.startswith("pip==") for line in freeze)
    assert state["purelib"].startswith(str(home / "venv/lib/python"))
    assert state["purelib"].endswith("/site-packages")
    assert state["dirs"][str(home / "src")] == [me, os.getgid(), "0750"]
    assert state["dirs"][str(home / "missing")] is None
    assert state["old_wheels"] == [str(home / "dist" / "mysite-1.0-py3-none-any.whl")]
    # Everything under the tree is this user's: the home first, then what find lists.
    assert state["app_owned"][0] == str(home)
    assert str(home / "venv" / "bin" / "python") in state["app_owned"]
    assert read_state(home, "nobody", home)["app_owned"] == []


def test_the_app_user_s_home_and_shell_decide_whether_the_user_task_runs(tmp_path):
    """The role skips its user module call when the user's home and shell are right."""
    entry = pwd.getpwuid(os.getuid())
    assert read_state(tmp_path, entry.pw_name)["user"] == [entry.pw_dir, entry.pw_shell]
    assert read_state(tmp_path, "no-such-user")["user"] is None

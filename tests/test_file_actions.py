"""stacktune.stacktune.template and .copy: the builtin plugins, with one remote call
(the stat) for a file that is already right instead of two (stat, then the file module).
Run through ansible-playbook on the local host: the calls are counted in -vvv's output."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from test_playbooks import ANSIBLE_PLAYBOOK, ROOT

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - name: Template
      {action}template:
        src: {tmp}/in.j2
        dest: {tmp}/out.conf
        mode: "{mode}"
      register: written
    - name: Copy
      {action}copy:
        content: "fixed {{{{ word }}}}\\n"
        dest: {tmp}/copied.conf
        mode: "{mode}"
    - name: Result
      ansible.builtin.debug:
        msg: "changed={{{{ written.changed }}}}"
"""


def run(tmp: Path, action: str, word: str, mode: str = "0640", *args: str) -> tuple[str, int]:
    """Runs the playbook; returns its output and the number of modules it ran."""
    (tmp / "in.j2").write_text("value {{ word }}\n")
    playbook = tmp / "play.yml"
    playbook.write_text(PLAYBOOK.format(action=action, tmp=tmp, mode=mode, python=sys.executable))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook), "-vvv",
                             "-e", f"word={word}", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result.stdout, len(re.findall(r"^Using module file ", result.stdout, re.M))


def test_a_file_already_right_costs_one_call(tmp_path):
    action = "stacktune.stacktune."
    out, _ = run(tmp_path, action, "one")
    assert "changed=True" in out
    _, calls = run(tmp_path, action, "one")
    # Two files: a stat each, and no file module when owner, group and mode are right.
    # ansible.builtin.template and .copy make 4 here.
    assert calls == 2, f"{calls} module calls for two files already right"


def test_the_roles_write_files_with_the_kits_actions():
    """Every template and copy of a file on a host goes through the plugins above."""
    builtin = [f"{path.relative_to(ROOT)}:{number}"
               for path in sorted((ROOT / "roles").glob("*/tasks/*.yml"))
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if re.match(r"\s*ansible\.builtin\.(template|copy):", line)]
    assert builtin == []


def test_a_wrong_mode_is_still_set(tmp_path):
    run(tmp_path, "stacktune.stacktune.", "one")
    (tmp_path / "out.conf").chmod(0o600)
    out, calls = run(tmp_path, "stacktune.stacktune.", "one")
    assert "changed=True" in out
    assert stat.S_IMODE((tmp_path / "out.conf").stat().st_mode) == 0o640
    out, calls = run(tmp_path, "stacktune.stacktune.", "one", "u+rw,g+r,o-rwx")
    assert calls == 4, "a symbolic mode is left to the file module"
    assert stat.S_IMODE((tmp_path / "out.conf").stat().st_mode) == 0o640


def test_check_and_diff_report_a_change_without_making_it(tmp_path):
    run(tmp_path, "stacktune.stacktune.", "one")
    out, _ = run(tmp_path, "stacktune.stacktune.", "two", "0640", "--check", "--diff")
    assert "changed=True" in out
    assert "-value one" in out and "+value two" in out
    assert (tmp_path / "out.conf").read_text() == "value one\n"
    out, _ = run(tmp_path, "stacktune.stacktune.", "two")
    assert (tmp_path / "out.conf").read_text() == "value two\n"
    assert (tmp_path / "copied.conf").read_text() == "fixed two\n"

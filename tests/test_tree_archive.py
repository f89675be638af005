"""stacktune.stacktune.tree_archive: the app's trees packed in the controller's own process
and sent as one archive each, with no scratch-directory, tar or clean-up task on the
controller (each was a module run: about 5 s of a re-run of the demo)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml
from ansible.plugins.loader import init_plugin_loader
from test_playbooks import ANSIBLE_PLAYBOOK, ROOT

# scripts/setup links the checkout in as the collection. Ansible's own collection finder
# imports it: a plain sys.path import would leave `ansible_collections` loaded without the
# collection's metadata, and every later in-process plugin lookup (test_inputs) would fail.
COLLECTIONS = ROOT / ".cache" / "collections"
init_plugin_loader([str(COLLECTIONS)])

from ansible_collections.stacktune.stacktune.plugins.action.tree_archive import (  # noqa: E402
    pack_tree,
)

EXCLUDES = [".git", "__pycache__", "*.pyc", "stacktune_settings.py"]


def make_tree(root: Path) -> Path:
    tree = root / "src"
    (tree / "site" / "__pycache__").mkdir(parents=True)
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref\n")
    (tree / "manage.py").write_text("print('manage')\n")
    (tree / "manage.py").chmod(0o775)
    (tree / "site" / "views.py").write_text("VIEW = 1\n")
    (tree / "site" / "views.pyc").write_bytes(b"\0")
    (tree / "site" / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"\0")
    (tree / "site" / "stacktune_settings.py").write_text("SECRET = 'host only'\n")
    (tree / "site" / "current").symlink_to("views.py")
    return tree


def packed(tree: Path, path: Path, **kwargs) -> bytes:
    pack_tree(str(tree), str(path), **kwargs)
    return path.read_bytes()


def test_the_same_tree_packs_to_the_same_bytes(tmp_path):
    """The copy sends an archive only when its checksum differs: times, owners and the
    order the file system lists names in must not change the bytes; content must."""
    tree = make_tree(tmp_path)
    first = packed(tree, tmp_path / "a.tar", excludes=EXCLUDES)
    os.utime(tree / "manage.py", (1, 1))
    os.utime(tree / "site", (2, 2))
    assert packed(tree, tmp_path / "b.tar", excludes=EXCLUDES) == first
    (tree / "site" / "views.py").write_text("VIEW = 2\n")
    assert packed(tree, tmp_path / "c.tar", excludes=EXCLUDES) != first


def test_the_archive_holds_the_tree_less_excludes_root_owned_not_group_writable(tmp_path):
    tree = make_tree(tmp_path)
    archive = packed(tree, tmp_path / "a.tar", excludes=EXCLUDES)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [".", "./manage.py", "./site", "./site/current", "./site/views.py"]
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.mtime == 0
               for m in members.values())
    assert members["./manage.py"].mode == 0o755  # 0775 less group write
    assert members["./site/current"].issym() and members["./site/current"].linkname == "views.py"


def test_gnu_tar_unpacks_it_as_the_host_does(tmp_path):
    """The host unpacks with GNU tar (roles/gunicorn/vars/main.yml, the sync script)."""
    tree = make_tree(tmp_path)
    archive = tmp_path / "a.tar"
    pack_tree(str(tree), str(archive), excludes=EXCLUDES)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "--extract", "--file", str(archive), "--directory", str(out),
                    "--no-same-owner"], check=True)
    assert (out / "manage.py").read_text() == "print('manage')\n"
    assert (out / "site" / "views.py").read_text() == "VIEW = 1\n"
    assert os.readlink(out / "site" / "current") == "views.py"
    assert not (out / "site" / "stacktune_settings.py").exists()
    assert not (out / "site" / "__pycache__").exists()


def test_members_pack_only_the_named_files(tmp_path):
    """A wheel's tree is its directory with the one wheel file."""
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (tmp_path / "dist" / "app-0.9-py3-none-any.whl").write_bytes(b"old")
    with tarfile.open(fileobj=io.BytesIO(packed(tmp_path / "dist", tmp_path / "w.tar",
                                                members=["app-1.0-py3-none-any.whl"]))) as tar:
        assert tar.getnames() == ["app-1.0-py3-none-any.whl"]


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - name: Send the tree
      stacktune.stacktune.tree_archive:
        src: {tree}
        excludes: {excludes}
        dest: {dest}
        mode: "0600"
"""


def send(tmp_path: Path, tree: Path, *args: str) -> str:
    playbook = tmp_path / "send.yml"
    playbook.write_text(PLAYBOOK.format(python=sys.executable, tree=tree, excludes=EXCLUDES,
                                        dest=tmp_path / "sent.tar"))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook), *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result.stdout


def test_the_archive_is_sent_only_when_the_tree_changed(tmp_path):
    """Through ansible-playbook: sent, then unchanged, --check reports a changed tree
    without sending it, then a run sends it; no scratch file is left on the controller."""
    tree = make_tree(tmp_path)
    sent = tmp_path / "sent.tar"
    assert "changed: [localhost]" in send(tmp_path, tree)
    first = sent.read_bytes()
    assert oct(sent.stat().st_mode & 0o777) == "0o600"
    assert "ok: [localhost]" in send(tmp_path, tree)
    (tree / "site" / "views.py").write_text("VIEW = 2\n")
    assert "changed: [localhost]" in send(tmp_path, tree, "--check")
    assert sent.read_bytes() == first
    assert "changed: [localhost]" in send(tmp_path, tree)
    with tarfile.open(sent) as tar:
        assert tar.extractfile("./site/views.py").read() == b"VIEW = 2\n"


def test_the_source_tree_deploy_runs_no_module_on_the_controller():
    """Without a wheel or a git repository, the gunicorn install runs nothing delegated to
    the controller (they were a scratch directory, a tar per tree and its removal)."""
    tasks = yaml.safe_load((ROOT / "roles/gunicorn/tasks/install.yml").read_text())

    def walk(items, inherited):
        for task in items:
            when = task.get("when", [])
            whens = inherited + [str(w) for w in ([when] if isinstance(when, str) else when)]
            delegated = task.get("delegate_to") == "localhost" or any(
                w.startswith("__delegated") for w in inherited)
            if "block" in task:
                marker = ["__delegated"] if task.get("delegate_to") == "localhost" else []
                yield from walk(task["block"], whens + marker)
            elif delegated:
                yield task["name"], whens

    unconditional = [name for name, whens in walk(tasks, [])
                     if not any("gunicorn_app_wheel" in w or "gunicorn_app_git_repo" in w
                                for w in whens)]
    assert unconditional == []


def test_the_bytes_are_gnu_tar_s_so_an_upgrade_resends_nothing(tmp_path):
    """The role packed with GNU tar before (same options): a host that holds that archive
    gets no new one, and no Gunicorn reload, from the first run of this plugin."""
    tree = make_tree(tmp_path)
    gnu = tmp_path / "gnu.tar"
    subprocess.run(["tar", "--create", "--file", str(gnu), "--directory", str(tree),
                    "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                    "--mode=go-w", *(f"--exclude={pattern}" for pattern in EXCLUDES), "."],
                   check=True)
    assert packed(tree, tmp_path / "ours.tar", excludes=EXCLUDES) == gnu.read_bytes()

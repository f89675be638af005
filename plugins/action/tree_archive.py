"""Action plugin: pack a directory tree on the controller and send it as one archive.

stacktune.stacktune.copy of a tar file that this plugin packs first, in the controller's
own process, with Python's tarfile: no scratch-directory, `tar` and clean-up tasks, which
each started a module on the controller (about 4 module runs and 5 s of wall time per
re-run of the demo). The archive is the same bytes for the same tree (names sorted,
mtime 0, owner and group 0 without names, no write bit for group and others), so the
copy sends it only when the tree changed, and --check / --diff say so as for any file.

Options: ``src`` the directory, ``members`` the names under it to pack (default the
whole tree), ``excludes`` shell patterns matched against each name's last part (as
GNU tar's --exclude: an excluded directory is skipped whole); every other option is
the copy module's (``dest``, ``owner``, ``group``, ``mode``...).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible_collections.stacktune.stacktune.plugins.action.copy import (
    ActionModule as StacktuneCopy,
)

_OWN_OPTIONS = ("src", "members", "excludes")


def _excluded(name: str, excludes: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in excludes)


def pack_tree(src: str, archive: str, members: Iterable[str] = (".",),
              excludes: Iterable[str] = ()) -> None:
    """Write ``members`` of directory ``src`` (recursively, less ``excludes``) to the tar
    file ``archive``: the same bytes for the same names, contents, modes and links."""
    excludes = list(excludes)

    def add(tar: tarfile.TarFile, relative: str) -> None:
        path = os.path.join(src, relative)
        info = tar.gettarinfo(path, arcname=relative)
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode &= ~0o022
        if info.isreg():
            with open(path, "rb") as content:
                tar.addfile(info, content)
        else:
            tar.addfile(info)
        if info.isdir():
            for name in sorted(os.listdir(path)):
                if not _excluded(name, excludes):
                    add(tar, os.path.join(relative, name))

    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            add(tar, os.path.normpath(member) if member != "." else ".")


class ActionModule(StacktuneCopy):
    """Pack ``src`` on the controller, then stacktune.stacktune.copy the archive to ``dest``."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        args = dict(self._task.args)
        src, members, excludes = (args.pop(key, None) for key in _OWN_OPTIONS)
        if not src or not os.path.isdir(src):
            raise AnsibleActionFail(
                f"tree_archive: src must be a directory on the controller, not {src!r}")
        scratch = tempfile.mkdtemp(prefix="stacktune-tree-")
        try:
            archive = os.path.join(scratch, "tree.tar")
            try:
                pack_tree(src, archive, members or (".",), excludes or ())
            except OSError as error:
                raise AnsibleActionFail(f"tree_archive: cannot pack {src}: {error}") from error
            self._task.args = {**args, "src": archive}
            return super().run(tmp, task_vars)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

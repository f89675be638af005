#!/usr/bin/python
"""Ansible module: this host's usable memory, CPUs and storage after cgroup limits."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_profile
short_description: Inspect a host's usable memory, CPUs and storage for stacktune
description:
  - Reports memory and CPUs after cgroup v1/v2 limits (inside a container
    /proc/meminfo shows the machine's RAM), the storage kind of the device
    holding a path, the OS, the PostgreSQL majors already installed (server
    binaries and pg_lsclusters' clusters), and the major installed or
    installable from the distribution.
  - Read-only; runs in check mode. Shares its inspection code with
    C(stacktune inspect).
options:
  data_path:
    description:
      - Path whose block device decides the storage kind.
      - Default the PostgreSQL data directory, else /.
    type: str
  storage:
    description: Storage kind to report instead of detecting it.
    type: str
    choices: [hdd, ssd, nvme, san]
author: stacktune
"""

EXAMPLES = r"""
- name: Inspect the host
  stacktune.stacktune.host_profile:
    storage: ssd
"""

RETURN = r"""
ansible_facts:
  description: >-
    C(stacktune_host_profile) with memory_bytes, cpus, storage, their sources, the OS
    postgresql_version, postgresql_installed (the majors already installed: server
    binaries or pg_lsclusters' clusters); C(stacktune_apt_lists_age_seconds), the
    seconds since the package index was refreshed (null without one); and C(packages),
    the installed packages read from dpkg's status file, in the shape of
    M(ansible.builtin.package_facts).
  returned: always
  type: dict
"""

import glob
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stacktune.stacktune.plugins.module_utils.stacktune_inspect import (
    InspectError,
    apt_lists_age_seconds,
    inspect_host,
    installed_packages,
)


def installed_postgresql_majors(module: AnsibleModule) -> list[int]:
    """Majors already on the host: server binaries and clusters (pg_lsclusters' first column)."""
    majors = {int(part) for part in (
        os.path.basename(os.path.dirname(os.path.dirname(path)))
        for path in glob.glob("/usr/lib/postgresql/*/bin/postgres")) if part.isdigit()}
    lsclusters = module.get_bin_path("pg_lsclusters")
    if lsclusters:
        rc, out, _ = module.run_command([lsclusters, "--no-header"])
        if rc == 0:
            majors.update(int(line.split()[0]) for line in out.splitlines()
                          if line.split() and line.split()[0].isdigit())
    return sorted(majors)


def postgresql_version(module: AnsibleModule, installed: list[int]) -> int | None:
    """Installed server major version, else the one the distribution's 'postgresql' depends on."""
    if installed:
        return installed[-1]
    apt_cache = module.get_bin_path("apt-cache")
    if apt_cache:
        rc, out, _ = module.run_command([apt_cache, "show", "--no-all-versions", "postgresql"])
        depends = r"^Depends:.*\bpostgresql-(\d+)\b"
        match = re.search(depends, out, re.MULTILINE) if rc == 0 else None
        if match:
            return int(match.group(1))
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "data_path": {"type": "str"},
            "storage": {"type": "str", "choices": ["hdd", "ssd", "nvme", "san"]},
        },
        supports_check_mode=True,
    )
    try:
        profile = inspect_host(data_path=module.params["data_path"],
                               storage_override=module.params["storage"])
    except InspectError as error:
        module.fail_json(msg=f"host inspection failed: {error}")
    installed = installed_postgresql_majors(module)
    profile["postgresql_installed"] = installed
    profile["postgresql_version"] = postgresql_version(module, installed)
    # Beside the profile, not in it: the profile feeds the plan, which must not
    # change with the index's age.
    module.exit_json(changed=False, ansible_facts={
        "stacktune_host_profile": profile,
        "stacktune_apt_lists_age_seconds": apt_lists_age_seconds(),
        "packages": installed_packages()})


if __name__ == "__main__":
    main()

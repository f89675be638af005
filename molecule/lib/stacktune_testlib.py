"""Helpers shared by the molecule scenarios' testinfra tests.

Expected values come from the plan engine for the containers' own profiles,
inspected from inside with the code the host_profile module ships.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from stacktune.model import HostProfile

REPO = Path(__file__).resolve().parents[2]
INSPECT_SOURCE = (REPO / "stacktune" / "inspect.py").read_text()


def psql(host, sql: str, db: str = "postgres") -> str:
    """Run SQL as the postgres superuser through the local socket; return the trimmed output."""
    result = host.run("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def show(host, name: str) -> str:
    return psql(host, f"SHOW {name}")


def postmaster_pid(host) -> str:
    data_dir = show(host, "data_directory")
    return host.check_output("head -n 1 %s/postmaster.pid", data_dir)


def container_profile(host) -> HostProfile:
    """Inspect the container from inside, with the same code the host_profile module ships."""
    script = INSPECT_SOURCE + "\nimport json\nprint(json.dumps(inspect_host()))\n"
    return HostProfile.from_dict(json.loads(host.check_output("python3 -c %s", script)))


def inventory_vars() -> dict:
    """The scenario's group_vars for all hosts, as molecule wrote them."""
    import yaml

    group_vars = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / "group_vars"
    for path in (group_vars / "all", group_vars / "all.yml"):
        if path.exists():
            return yaml.safe_load(path.read_text())
    return {}


def run_playbook(*args: str, playbook: str = "site.yml") -> subprocess.CompletedProcess:
    """ansible-playbook against the scenario's own inventory, from the repository root."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    command = ["ansible-playbook", "-i", str(Path(inventory).parent), playbook, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def extra_vars(**variables: object) -> list[str]:
    return ["-e", json.dumps(variables)]


def recap_is_clean(output: str) -> bool:
    """The PLAY RECAP of a run reports no changes and no failures on any host."""
    import re

    recap = output[output.rindex("PLAY RECAP"):]
    return not re.search(r"changed=[1-9]", recap) and not re.search(r"failed=[1-9]", recap)


def http_get(host, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET from inside a container (no curl in minimal images): status and body, no redirects."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "class NoRedirect(urllib.request.HTTPRedirectHandler):\n"
        "    def redirect_request(self, *args): return None\n"
        "opener = urllib.request.build_opener(NoRedirect)\n"
        "request = urllib.request.Request(sys.argv[1], headers=dict(h.split(': ', 1) "
        "for h in sys.argv[2:]))\n"
        "try:\n"
        "    response = opener.open(request, timeout=30)\n"
        "    status, body = response.status, response.read()\n"
        "except urllib.error.HTTPError as error:\n"
        "    status, body = error.code, error.read()\n"
        "print(status)\n"
        "sys.stdout.write(body.decode('utf-8', 'replace'))\n"
    )
    args = [f"{name}: {value}" for name, value in (headers or {}).items()]
    out = host.check_output("python3 -c %s %s" + " %s" * len(args), script, url, *args)
    status, _, body = out.partition("\n")
    return int(status), body

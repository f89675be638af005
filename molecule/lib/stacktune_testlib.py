"""Helpers shared by the molecule scenarios' testinfra tests.

Expected values come from the plan engine for the containers' own profiles,
inspected from inside with the code the host_profile module ships.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
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



# GETs from inside a container, one Python process for all of them; prints the statuses.
_STATUSES_SOURCE = """
import json, sys, urllib.request, urllib.error
statuses = []
for path in json.loads(sys.argv[2]):
    request = urllib.request.Request(sys.argv[1] + path, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            statuses.append(response.status)
    except urllib.error.HTTPError as error:
        statuses.append(error.code)
print(json.dumps(statuses))
"""


def get_statuses(host, base_url: str, paths: list[str]) -> list[int]:
    """GET each path of base_url from inside the container, in order; their statuses."""
    out = host.check_output("python3 -c %s %s %s", _STATUSES_SOURCE, base_url, json.dumps(paths))
    return json.loads(out)

# Code for the load generators that run inside a container (put after their imports of
# time, urllib.error and urllib.request): one GET and its outcome - the HTTP status, or the
# name of the exception when there was no response - with its start and end times.
LOAD_TIMED_GET = r"""
def timed_get(url, timeout, headers=None, context=None):
    request = urllib.request.Request(url, headers=headers or {})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except Exception as error:
        status = type(error).__name__
    return t0, time.monotonic(), status
"""


def start_load_unit(host, unit: str, script: str, cfg: dict) -> None:
    """Start a load generator (python3 -c script cfg) inside the container as a transient
    systemd unit, so it outlives this connection; cfg names its "stop" and "result" files."""
    host.run("rm -f %s %s", cfg["stop"], cfg["result"])
    host.run("systemctl reset-failed %s", unit)
    host.check_output("systemd-run --quiet --unit %s --collect python3 -c %s %s",
                      unit, script, json.dumps(cfg))


def stop_load_unit(host, unit: str, cfg: dict, wait_seconds: float = 60):
    """Ask the generator to stop (its stop file) and return the JSON it wrote."""
    host.check_output("touch %s", cfg["stop"])
    for _ in range(int(wait_seconds * 2)):
        if host.file(cfg["result"]).exists:
            time.sleep(0.5)    # written in one go; let it finish
            return json.loads(host.file(cfg["result"]).content_string)
        time.sleep(0.5)
    raise AssertionError(host.run("journalctl -u %s --no-pager | tail -30", unit).stdout)


# The container end of a forwarded TCP connection: its stdin and stdout to a loopback port.
_PIPE_SOURCE = """
import os, socket, sys, threading
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def upstream():
    while data := os.read(0, 65536):
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := sock.recv(65536):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
"""


class LoopbackTunnel:
    """``ssh -L`` for a container: a controller port forwarded to a port the container
    serves on its loopback only (PostgreSQL and Redis listen on 127.0.0.1 on the
    single-host stack), each connection carried by ``docker exec -i``.

    with LoopbackTunnel("stacktune-one-bookworm", 5432) as port: connect to 127.0.0.1:port
    """

    def __init__(self, container: str, remote_port: int) -> None:
        import socket

        self.container, self.remote_port = container, remote_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> int:
        import threading

        threading.Thread(target=self._accept, daemon=True).start()
        return self.port

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed by __exit__
            process = subprocess.Popen(
                ["docker", "exec", "-i", self.container, "python3", "-c", _PIPE_SOURCE,
                 str(self.remote_port)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                bufsize=0)
            self._processes.append(process)
            threading.Thread(target=self._to_container, args=(client, process),
                             daemon=True).start()
            threading.Thread(target=self._from_container, args=(client, process),
                             daemon=True).start()

    @staticmethod
    def _to_container(client, process: subprocess.Popen) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                view = memoryview(data)
                while view:  # a raw pipe may take part of it
                    view = view[process.stdin.write(view):]
        with contextlib.suppress(OSError):
            process.stdin.close()

    @staticmethod
    def _from_container(client, process: subprocess.Popen) -> None:
        with contextlib.suppress(OSError):
            while data := process.stdout.read(65536):
                client.sendall(data)
        client.close()

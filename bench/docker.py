"""The benchmark container: one systemd container, resource-limited."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

IMAGE = "stacktune/debian:bookworm"

# What a systemd container needs here (never --privileged).
SYSTEMD_FLAGS = (
    "--cap-add", "SYS_ADMIN",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
)


class CommandFailed(RuntimeError):
    pass


def docker(*args: str, input: str | None = None, timeout: float | None = None,
           check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(f"docker {' '.join(args[:3])} ... failed ({proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


def image_exists(image: str = IMAGE) -> bool:
    return docker("image", "inspect", image, check=False).returncode == 0


@dataclass
class Container:
    name: str
    memory: str = "4g"
    cpus: str = "2"
    image: str = IMAGE
    started: bool = False

    def start(self) -> None:
        docker("rm", "-f", self.name, check=False)
        docker("run", "-d", "--name", self.name, "--hostname", "bench",
               "--memory", self.memory, "--memory-swap", self.memory, "--cpus", self.cpus,
               "--shm-size", "1g", "--label", "stacktune.bench=1",
               *SYSTEMD_FLAGS, self.image, "/lib/systemd/systemd")
        self.started = True
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = self.sh("systemctl is-system-running 2>/dev/null || true", check=False)
            if state.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(1)
        raise CommandFailed(f"systemd in {self.name} did not come up in 90 s")

    def sh(self, script: str, *, input: str | None = None, timeout: float | None = 600,
           check: bool = True) -> subprocess.CompletedProcess:
        """Run a bash script in the container as root."""
        args = ["exec", "-i", self.name, "bash", "-c", script] if input is not None else \
               ["exec", self.name, "bash", "-c", script]
        try:
            return docker(*args, input=input, timeout=timeout, check=check)
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(f"timed out after {timeout} s in {self.name}: {script[:200]}") \
                from exc

    def write(self, path: str, content: str, mode: str = "0644",
              owner: str = "root:root") -> None:
        self.sh(f"cat > {path} && chmod {mode} {path} && chown {owner} {path}", input=content)

    def remove(self) -> None:
        if self.started:
            docker("rm", "-f", self.name, check=False, timeout=120)
            self.started = False

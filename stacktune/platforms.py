"""The distribution releases stacktune supports: the ones its molecule scenarios test."""

from __future__ import annotations

from stacktune.model import PlanError

# Debian 12 (bookworm) and 13 (trixie). Debian 11 (bullseye) ships Redis 6.0, which lacks
# the ACL selectors the redis role writes, and Python 3.9, which cannot run Django 5.2.
OLDEST_DEBIAN_MAJOR = 12
TESTED_RELEASES = "Debian 12 (bookworm) and 13 (trixie)"


def check_supported_release(host: str, os_id: str, os_version: str) -> None:
    """Refuse a Debian release older than the oldest tested one, before any host changes.

    ``os_id`` and ``os_version`` are /etc/os-release's ID and VERSION_ID. A release
    without VERSION_ID (Debian testing or unstable) is newer than any numbered one.
    """
    if os_id != "debian" or not os_version:
        return
    major = os_version.split(".", 1)[0]
    if major.isascii() and major.isdigit() and int(major) < OLDEST_DEBIAN_MAJOR:
        raise PlanError(
            f"host {host!r} runs Debian {os_version}: stacktune supports {TESTED_RELEASES} "
            f"only; upgrade {host} or take it out of the stacktune groups")

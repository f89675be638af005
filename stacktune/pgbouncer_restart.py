"""How a PgBouncer setting change is applied: a reload, an online restart, or held back.

PgBouncer rereads most of its file on RELOAD (SIGHUP); the settings below it reads only
at start (CF_NO_RELOAD in src/main.c, the same set from 1.18 to 1.25 apart from
track_extra_parameters, new in 1.20). An online restart (``pgbouncer -R``: the new
process connects to the old one over the Unix socket, SUSPENDs it and takes over its
listening and client sockets; PgBouncer docs, usage: -R; src/takeover.c) applies them
without closing a client connection, except those that describe the listening sockets
themselves: the new process keeps the old sockets as they are and binds nothing anew
(takeover_finish instead of pooler_setup), although SHOW CONFIG then reports the new
values. Those need a plain restart, which closes every client connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stacktune.model import PlanError

# Read only at start (src/main.c, CF_NO_RELOAD).
RESTART_ONLY = frozenset({
    "disable_pqexec", "job_name", "service_name", "listen_addr", "listen_backlog",
    "listen_port", "pidfile", "pkt_buf", "resolv_conf", "so_reuseport",
    "track_extra_parameters", "unix_socket_dir", "unix_socket_group", "unix_socket_mode",
    "user",
})
# Of those, the ones that describe the listening sockets: an online restart inherits the
# old sockets unchanged (src/takeover.c: use_pooler_socket), so it cannot apply them.
SOCKET_SETTINGS = frozenset({
    "listen_addr", "listen_backlog", "listen_port", "so_reuseport", "unix_socket_dir",
    "unix_socket_group", "unix_socket_mode",
})
# Integers PgBouncer's users write in octal.
OCTAL_SETTINGS = frozenset({"unix_socket_mode"})
# -R exists in every PgBouncer Debian ships (1.18 in 12, 1.24 in 13); deprecated since
# 1.20 in favour of so_reuseport rolling restarts, still present in 1.25.
ONLINE_RESTART_SINCE = (1, 0)
ONLINE_RESTART_LAST_CHECKED = (1, 25)

RELOAD = "reload"
ONLINE = "online"
PLAIN = "plain"
HOLD = "hold"

_VERSION = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)")


@dataclass(frozen=True)
class RestartDecision:
    """What to do with a new pgbouncer.ini on a running PgBouncer."""

    method: str              # reload | online | plain | hold
    changed: tuple[str, ...]  # restart-only settings whose running value differs
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"method": self.method, "changed": list(self.changed), "message": self.message}


def pgbouncer_version(package_version: str) -> tuple[int, int]:
    """(major, minor) of a Debian package version such as '1.18.0-1' or '1.24.1-1+deb13u2'."""
    match = _VERSION.match(str(package_version).strip())
    if match is None:
        raise PlanError(f"PgBouncer package version {package_version!r}: expected 1.NN...")
    return int(match.group(1)), int(match.group(2))


def show_config_rows(show_config_lines: Iterable[str]) -> dict[str, tuple[str, str]]:
    """psql -At rows of SHOW CONFIG ('key|value|default|changeable') as {key: (value, default)}."""
    rows = {}
    for line in show_config_lines:
        fields = str(line).split("|")
        if len(fields) >= 3:
            rows[fields[0]] = (fields[1], fields[2])
    return rows


def _c_integer(text: str) -> int:
    """An integer as PgBouncer's loader reads it (strtol base 0: 0777 is octal, 0x1f hex)."""
    text = text.strip()
    if text[:2].lower() == "0x":
        return int(text, 16)
    if len(text) > 1 and text.startswith("0"):
        return int(text, 8)
    return int(text)


def _same(name: str, wanted: str, live: str) -> bool:
    if name in OCTAL_SETTINGS:
        # SHOW CONFIG prints the mode in decimal (511) and its default as written (0777).
        try:
            return _c_integer(wanted) == _c_integer(live)
        except ValueError:
            return wanted.strip() == live.strip()
    try:
        return float(wanted) == float(live)
    except ValueError:
        # SHOW CONFIG lists addresses as written; compare them as sets.
        return sorted(w.strip().lower() for w in wanted.split(",")) == sorted(
            v.strip().lower() for v in live.split(","))


def restart_only_changes(wanted: Mapping[str, object],
                         show_config_lines: Iterable[str]) -> list[str]:
    """Settings that only a restart applies whose running value differs from the new file's.

    ``wanted`` holds every value the new pgbouncer.ini sets; a restart-only setting it does
    not set is wanted at PgBouncer's default (a line removed from the file goes back to
    the default at the next start). A setting PgBouncer does not report (a version
    without it) is left out: the throwaway checker already accepted the file.
    """
    rows = show_config_rows(show_config_lines)
    return sorted(name for name, (value, default) in rows.items() if name in RESTART_ONLY
                  and not _same(name, str(wanted.get(name, default)), value))


def decide_restart(wanted: Mapping[str, object], show_config_lines: Iterable[str],
                   package_version: str, allow_restart: bool,
                   allow_plain_restart: bool) -> RestartDecision:
    """Reload, restart online (-R), restart plainly, or hold the change back and say why.

    The online restart needs the Unix socket (unix_socket_dir set, not abstract) and no
    client TLS (PgBouncer drops TLS clients on -R); a change of a socket setting, or an
    unknown PgBouncer version, leaves only a plain restart, which closes every client
    connection: allowed only with ``pgbouncer_allow_plain_restart``.
    """
    changed = tuple(restart_only_changes(wanted, show_config_lines))
    if not changed:
        return RestartDecision(RELOAD, changed, "no setting needs a restart")
    names = ", ".join(changed)
    version = pgbouncer_version(package_version)
    socket_dir = str(wanted.get("unix_socket_dir", "")).strip()
    blockers = []
    if sorted(SOCKET_SETTINGS.intersection(changed)):
        blockers.append(
            f"{', '.join(sorted(SOCKET_SETTINGS.intersection(changed)))} describe the "
            "listening sockets, which an online restart takes over unchanged")
    if not ONLINE_RESTART_SINCE <= version <= ONLINE_RESTART_LAST_CHECKED:
        blockers.append(f"PgBouncer {version[0]}.{version[1]} is not a version whose "
                        "online restart (-R) this kit has checked")
    if not socket_dir or socket_dir.startswith("@"):
        blockers.append("the online restart needs unix_socket_dir (a directory)")
    if str(wanted.get("client_tls_sslmode", "disable")).strip() not in ("", "disable"):
        blockers.append("the online restart drops TLS clients (client_tls_sslmode)")
    if not blockers:
        if allow_restart:
            return RestartDecision(ONLINE, changed, f"{names}: online restart (-R)")
        return RestartDecision(HOLD, changed, (
            f"PgBouncer reads {names} only at start; the change is written but not live. "
            "Run again with pgbouncer_allow_restart=true for an online restart (-R: no "
            "client connection is closed), or restart PgBouncer in a maintenance window."))
    why = "; ".join(blockers)
    if allow_restart and allow_plain_restart:
        return RestartDecision(PLAIN, changed, f"{names}: plain restart ({why})")
    return RestartDecision(HOLD, changed, (
        f"PgBouncer reads {names} only at start and cannot take it without closing its "
        f"client connections ({why}); the change is written but not live. Restart "
        "PgBouncer in a maintenance window (systemctl restart pgbouncer), or run again "
        "with pgbouncer_allow_restart=true and pgbouncer_allow_plain_restart=true."))

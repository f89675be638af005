"""How a new pgbouncer.ini goes live: reload, online restart (-R), plain restart, or held."""

from __future__ import annotations

import pytest

from stacktune.model import PlanError
from stacktune.pgbouncer_restart import (
    HOLD,
    ONLINE,
    PLAIN,
    RELOAD,
    decide_restart,
    pgbouncer_version,
    restart_only_changes,
)

# SHOW CONFIG as psql -At prints it (1.18: key|value|default|changeable).
LIVE = [
    "listen_addr|127.0.0.1|localhost|no",
    "listen_port|6432|6432|no",
    "pkt_buf|4096|4096|no",
    "unix_socket_dir|/var/run/postgresql|/tmp|no",
    "unix_socket_mode|511|0777|no",
    "pool_mode|transaction|session|yes",
    "default_pool_size|20|20|yes",
]
SAME = {"listen_addr": "127.0.0.1", "listen_port": "6432", "pkt_buf": 4096,
        "unix_socket_dir": "/var/run/postgresql", "pool_mode": "transaction",
        "default_pool_size": 40}


def decide(wanted, version="1.18.0-1", allow=True, plain=False):
    return decide_restart(wanted, LIVE, version, allow, plain)


def test_reloadable_changes_are_reloaded():
    decision = decide(SAME)
    assert (decision.method, decision.changed) == (RELOAD, ())


def test_a_changed_pkt_buf_takes_the_online_restart_on_debian_12_and_13():
    for version in ("1.18.0-1", "1.24.1-1+deb13u2"):
        decision = decide({**SAME, "pkt_buf": 8192}, version)
        assert (decision.method, decision.changed) == (ONLINE, ("pkt_buf",))


def test_without_permission_a_restart_only_change_is_held_and_says_how_to_apply_it():
    decision = decide({**SAME, "pkt_buf": "8192"}, allow=False)
    assert decision.method == HOLD
    assert "pkt_buf" in decision.message and "pgbouncer_allow_restart=true" in decision.message


@pytest.mark.parametrize("change", [{"listen_addr": "127.0.0.1,10.0.0.5"},
                                    {"listen_port": "6433"}])
def test_a_listening_socket_change_needs_a_plain_restart(change):
    held = decide({**SAME, **change})
    assert held.method == HOLD
    assert "takes over unchanged" in held.message
    assert "pgbouncer_allow_plain_restart=true" in held.message
    assert decide({**SAME, **change}, plain=True).method == PLAIN
    # The plain restart is a restart: it needs pgbouncer_allow_restart too.
    assert decide({**SAME, **change}, allow=False, plain=True).method == HOLD


def test_listen_addr_compares_as_a_set_of_addresses():
    assert restart_only_changes({**SAME, "listen_addr": " 127.0.0.1 "}, LIVE) == []
    assert restart_only_changes({**SAME, "listen_addr": "127.0.0.1, 10.0.0.5"}, LIVE) == [
        "listen_addr"]


def test_client_tls_or_no_unix_socket_rules_out_the_online_restart():
    tls = decide({**SAME, "pkt_buf": 8192, "client_tls_sslmode": "require"})
    assert tls.method == HOLD and "client_tls_sslmode" in tls.message
    no_socket = decide({**SAME, "pkt_buf": 8192, "unix_socket_dir": ""})
    assert no_socket.method == HOLD and "unix_socket_dir" in no_socket.message


def test_an_unchecked_version_is_not_restarted_online():
    decision = decide({**SAME, "pkt_buf": 8192}, "2.0.0-1")
    assert decision.method == HOLD and "PgBouncer 2.0" in decision.message


def test_a_setting_the_running_version_does_not_report_is_left_out():
    assert restart_only_changes({**SAME, "track_extra_parameters": "search_path"}, LIVE) == []


def test_a_restart_only_line_removed_from_the_file_goes_back_to_its_default():
    running = [line.replace("pkt_buf|4096|", "pkt_buf|8192|") for line in LIVE]
    wanted = {name: value for name, value in SAME.items() if name != "pkt_buf"}
    assert restart_only_changes(wanted, running) == ["pkt_buf"]
    assert restart_only_changes({**wanted, "pkt_buf": "8192"}, running) == []


@pytest.mark.parametrize(("text", "version"), [("1.18.0-1", (1, 18)),
                                               ("1.24.1-1+deb13u2", (1, 24)),
                                               ("1:1.25.0-1", (1, 25))])
def test_package_versions(text, version):
    assert pgbouncer_version(text) == version


def test_a_version_that_is_not_one_is_an_error():
    with pytest.raises(PlanError, match="PgBouncer package version 'unknown'"):
        pgbouncer_version("unknown")


def test_unix_socket_mode_compares_as_the_octal_number_pgbouncer_reads():
    # SHOW CONFIG (1.18): the value in decimal, its default as written.
    assert restart_only_changes(SAME, LIVE) == []
    assert restart_only_changes({**SAME, "unix_socket_mode": "0777"}, LIVE) == []
    assert restart_only_changes({**SAME, "unix_socket_mode": "0770"}, LIVE) == [
        "unix_socket_mode"]


# SHOW CONFIG's restart-only rows of Debian 13's PgBouncer 1.24.1 running the file the role
# writes (listen_addr, unix_socket_dir and pidfile set, the rest left at their defaults).
DEBIAN_13_ROWS = """disable_pqexec|0|0|no
job_name|pgbouncer|pgbouncer|no
listen_addr|127.0.0.1||no
listen_backlog|128|128|no
listen_port|6432|6432|no
pidfile|/var/run/postgresql/pgbouncer.pid||no
pkt_buf|4096|4096|no
resolv_conf|||no
so_reuseport|0|0|no
track_extra_parameters|IntervalStyle|IntervalStyle|no
unix_socket_dir|/var/run/postgresql|/tmp|no
unix_socket_group|||no
unix_socket_mode|511|0777|no
user|||no""".splitlines()


def test_a_pgbouncer_running_the_roles_file_needs_no_restart():
    wanted = {"listen_port": "6432", "listen_addr": "127.0.0.1",
              "unix_socket_dir": "/var/run/postgresql",
              "pidfile": "/var/run/postgresql/pgbouncer.pid", "pool_mode": "transaction"}
    assert decide_restart(wanted, DEBIAN_13_ROWS, "1.24.1-1+deb13u2", True, True).method == RELOAD
    assert decide_restart({**wanted, "pkt_buf": "8192"}, DEBIAN_13_ROWS, "1.24.1-1+deb13u2",
                          True, False).method == ONLINE

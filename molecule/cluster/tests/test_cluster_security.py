"""Across hosts, only the app tier reaches PgBouncer and only the proxy tier reaches Gunicorn:
an outsider cannot even connect."""

from __future__ import annotations

testinfra_hosts = ["ansible://stacktune-app1"]

CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except OSError as error:
    print(type(error).__name__)
"""


def tcp_connect(node, host: str, port: int) -> str:
    return node.check_output("python3 -c %s %s %s", CONNECT, host, str(port))


def test_an_outsider_cannot_open_a_tcp_connection_to_pgbouncer(nodes, plan):
    port = int(plan.services["pgbouncer"]["listen_port"])
    assert tcp_connect(nodes["stacktune-app1"], "stacktune-db", port) == "connected"
    # Dropped, not refused: no unauthenticated socket ever takes a client slot.
    outsider = tcp_connect(nodes["stacktune-outsider"], "stacktune-db", port)
    assert outsider in ("timeout", "TimeoutError")


def test_only_the_proxy_tier_reaches_gunicorn(nodes):
    """Gunicorn listens beyond loopback for nginx on the cache host; nobody else gets in."""
    for app in ("stacktune-app1", "stacktune-app2"):
        assert tcp_connect(nodes["stacktune-cache"], app, 8000) == "connected"
        outsider = tcp_connect(nodes["stacktune-outsider"], app, 8000)
        assert outsider in ("timeout", "TimeoutError"), app
    # The other app host is no proxy either.
    other = tcp_connect(nodes["stacktune-app2"], "stacktune-app1", 8000)
    assert other in ("timeout", "TimeoutError")

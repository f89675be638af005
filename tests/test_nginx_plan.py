"""The nginx section of the plan: sized from the proxy host's CPUs and the app tier's Gunicorn,
and the proxy's link of the timeout chain."""

from __future__ import annotations

import pytest

from stacktune.catalogue import nginx_seconds
from stacktune.model import Host, HostProfile, PlanError, StackInputs, Storage
from stacktune.plan import Plan, plan_stack
from stacktune.units import GiB

STACK = frozenset({"postgresql", "pgbouncer", "redis", "gunicorn"})


def profile(cpus: float = 2, memory_gib: int = 4) -> HostProfile:
    return HostProfile(memory_bytes=memory_gib * GiB, cpus=cpus, storage=Storage.SSD)


def single(overrides=None, cpus: float = 2) -> Plan:
    return plan_stack(StackInputs(hosts=(Host("web1", profile(cpus), STACK | {"nginx"}),),
                                  overrides=overrides or {}))


def three_tier(proxy_cpus: float = 1.5) -> Plan:
    return plan_stack(StackInputs(hosts=(
        Host("proxy1", profile(proxy_cpus, 2), frozenset({"nginx"})),
        Host("app1", profile(2), frozenset({"gunicorn"})),
        Host("app2", profile(2), frozenset({"gunicorn"})),
        Host("db1", profile(4, 8), frozenset({"postgresql", "pgbouncer", "redis"})),
    )))


def test_every_value_has_a_reason_and_reaches_the_proxy_host_only():
    p = three_tier()
    nginx = p.services["nginx"]
    assert set(nginx) == {
        "worker_processes", "worker_connections", "worker_rlimit_nofile", "upstream_keepalive",
        "upstream_keepalive_timeout", "client_max_body_size", "client_body_buffer_size",
        "large_client_header_buffers", "client_header_timeout", "client_body_timeout",
        "send_timeout", "keepalive_timeout", "proxy_connect_timeout", "proxy_read_timeout",
        "proxy_send_timeout", "max_fails", "fail_timeout"}
    for name in nginx:
        assert p.reasons[f"nginx.{name}"], name
    assert p.host_view("proxy1")["nginx"] == nginx
    assert "nginx" not in p.host_view("app1")
    assert p.to_dict()["nginx"] == nginx


def test_workers_follow_the_cpus_after_cgroup_limits():
    # 1.5 CPUs (a cgroup quota of 150000/100000) -> 2 workers; 1 CPU -> 1.
    assert three_tier(1.5).services["nginx"]["worker_processes"] == "2"
    assert three_tier(1).services["nginx"]["worker_processes"] == "1"
    assert "1.5" in three_tier(1.5).reasons["nginx.worker_processes"]


def test_connections_and_keepalive_from_gunicorn_workers_x_threads_x_app_hosts():
    p = three_tier(2)
    gunicorn = p.services["gunicorn"]
    slots = int(gunicorn["workers"]) * int(gunicorn["threads"]) * 2
    nginx = p.services["nginx"]
    keepalive = max(2, -(-slots // 2))
    assert nginx["upstream_keepalive"] == str(keepalive)
    clients = max(512, 8 * slots)
    assert nginx["worker_connections"] == str(max(1024, -(-2 * clients // 2) + keepalive))
    assert nginx["worker_rlimit_nofile"] == str(2 * int(nginx["worker_connections"]))


def test_connections_follow_a_gunicorn_override():
    base = single()
    more = single({"gunicorn": {"workers": "5", "threads": "32"}}, cpus=2)
    assert more.services["nginx"]["upstream_keepalive"] == str(5 * 32 // 2)
    assert int(more.services["nginx"]["worker_connections"]) > \
        int(base.services["nginx"]["worker_connections"])
    assert more.services["nginx"]["worker_connections"] == str(8 * 160 * 2 // 2 + 80)


def test_timeouts_sit_outside_gunicorn():
    p = single()
    nginx, gunicorn = p.services["nginx"], p.services["gunicorn"]
    assert nginx["proxy_read_timeout"] == "35s"
    assert nginx_seconds("x", nginx["proxy_read_timeout"]) > int(gunicorn["timeout"])
    assert nginx_seconds("x", nginx["upstream_keepalive_timeout"]) < int(gunicorn["keepalive"])
    # A longer Gunicorn timeout moves nginx's with it.
    longer = single({"gunicorn": {"timeout": "60", "graceful_timeout": "60"}})
    assert longer.services["nginx"]["proxy_read_timeout"] == "65s"


@pytest.mark.parametrize(("overrides", "names"), [
    ({"nginx": {"proxy_read_timeout": "30s"}}, "nginx.proxy_read_timeout"),
    ({"nginx": {"proxy_read_timeout": "20"}}, "nginx.proxy_read_timeout"),
    ({"nginx": {"proxy_send_timeout": "10s"}}, "nginx.proxy_send_timeout"),
    ({"nginx": {"proxy_connect_timeout": "1m"}}, "nginx.proxy_connect_timeout"),
    ({"nginx": {"upstream_keepalive_timeout": "5s"}}, "nginx.upstream_keepalive_timeout"),
    ({"gunicorn": {"keepalive": "2"}, "nginx": {"upstream_keepalive_timeout": "3s"}},
     "gunicorn.keepalive"),
])
def test_a_timeout_chain_out_of_order_is_refused_naming_the_setting(overrides, names):
    with pytest.raises(PlanError) as error:
        single(overrides)
    assert names in str(error.value)
    assert any(word in str(error.value) for word in ("raise", "lower"))


def test_a_proxy_with_no_app_hosts_is_refused_naming_the_upstream():
    with pytest.raises(PlanError) as error:
        plan_stack(StackInputs(hosts=(
            Host("proxy1", profile(), frozenset({"nginx"})),
            Host("db1", profile(), frozenset({"postgresql", "pgbouncer"})),
        )))
    assert "nginx is placed on proxy1 but no host runs gunicorn" in str(error.value)
    assert "stacktune_groups.gunicorn" in str(error.value)


@pytest.mark.parametrize(("name", "value"), [
    ("proxy_read_timeout", "soon"), ("client_max_body_size", "10 MB"),
    ("large_client_header_buffers", "8k"), ("worker_processes", "0"),
    ("client_body_timeout", "5s\nuser root;"),
])
def test_bad_nginx_override_names_the_setting(name, value):
    with pytest.raises(PlanError) as error:
        single({"nginx": {name: value}})
    assert f"nginx.{name}" in str(error.value)


def test_an_override_of_nginx_without_a_proxy_host_is_refused():
    with pytest.raises(PlanError) as error:
        plan_stack(StackInputs(hosts=(Host("web1", profile(), STACK),),
                               overrides={"nginx": {"max_fails": "5"}}))
    assert "nginx.max_fails is set but no host of this plan runs nginx" in str(error.value)


def test_nginx_time_units():
    assert nginx_seconds("k", "500ms") == 0.5
    assert nginx_seconds("k", "2m") == 120
    assert nginx_seconds("k", "30") == 30

"""stacktune_address: the address each host's services are reached at."""

from __future__ import annotations

import pytest

from stacktune.addresses import host_address
from stacktune.model import PlanError


def test_the_only_non_loopback_address_is_the_default():
    assert host_address("db1", "", ["127.0.0.1", "10.0.0.5"]) == "10.0.0.5"
    assert host_address("db1", None, ["10.0.0.5"]) == "10.0.0.5"


def test_the_inventory_value_wins_over_the_facts():
    assert host_address("db1", "10.1.0.7", ["10.0.0.5", "192.0.2.9"]) == "10.1.0.7"
    assert host_address("db1", " 10.1.0.7 ", []) == "10.1.0.7"


@pytest.mark.parametrize("addresses", [["10.0.0.5", "172.17.0.1"], [], ["127.0.0.1"]])
def test_no_guess_names_the_variable_and_the_fix(addresses):
    with pytest.raises(PlanError) as error:
        host_address("app1", "", addresses)
    message = str(error.value)
    assert "stacktune_address is not set for app1" in message
    assert "host_vars/app1.yml" in message
    for address in addresses:
        if not address.startswith("127."):
            assert address in message


@pytest.mark.parametrize("value", ["app1.internal", "10.0.0.300", "10.0.0.5\ninclude x", "::1"])
def test_a_value_that_is_not_an_ipv4_address_is_refused(value):
    with pytest.raises(PlanError, match=r"stacktune_address for app1 is .*not an IPv4 address"):
        host_address("app1", value, ["10.0.0.5"])


@pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0"])
def test_an_address_other_hosts_cannot_reach_is_refused(value):
    with pytest.raises(PlanError, match="which other hosts cannot reach"):
        host_address("app1", value, ["10.0.0.5"])

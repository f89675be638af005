"""Which address a host's services listen on and are reached at (``stacktune_address``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from stacktune.model import PlanError


def host_address(host: str, explicit: object, ipv4_addresses: Iterable[object]) -> str:
    """The IPv4 address other hosts reach ``host`` at.

    ``explicit`` is the inventory's ``stacktune_address`` (empty or None when unset):
    it must be one IPv4 address, written as one. Unset, the host's only non-loopback
    IPv4 address is taken (``ipv4_addresses``: Ansible's ``all_ipv4_addresses`` fact).
    A host with none or several cannot be guessed: the default route's interface
    (``ansible_default_ipv4``) is often the wrong one on a multi-homed host (a
    management or public NIC rather than the private network the tiers share).
    """
    if explicit not in (None, ""):
        text = str(explicit).strip()
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise PlanError(
                f"stacktune_address for {host} is {explicit!r}, not an IPv4 address: set it in "
                f"host_vars/{host}.yml to the address the other tiers reach {host} at "
                f"(e.g. 10.0.0.5)") from None
        if address.is_loopback or address.is_unspecified:
            raise PlanError(
                f"stacktune_address for {host} is {text}, which other hosts cannot reach: set it "
                f"in host_vars/{host}.yml to {host}'s address on the network the tiers share")
        return str(address)
    candidates = sorted({str(ipaddress.IPv4Address(str(a).strip())) for a in ipv4_addresses
                         if not ipaddress.IPv4Address(str(a).strip()).is_loopback},
                        key=ipaddress.IPv4Address)
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(candidates) if candidates else "none"
    raise PlanError(
        f"stacktune_address is not set for {host} and it has {len(candidates)} non-loopback "
        f"IPv4 addresses ({found}): set stacktune_address in host_vars/{host}.yml to the address "
        f"the other tiers reach {host} at")

"""Callback address rules: the classification itself, with no traffic to the addresses."""

from __future__ import annotations

import ipaddress

import pytest

from faxgate.errors import AddressNotAllowedError
from faxgate.notify.guard import (
    GuardedResolver,
    NetworkAddressGuard,
    address_allowed,
    classify_address,
    parse_networks,
)

CLASSIFIED = [
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("fe80::1", "a link-local address"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("100.64.0.1", "a shared (CGNAT) address"),
    ("8.8.8.8", None),
]


@pytest.mark.parametrize(("address", "kind"), CLASSIFIED)
def test_callbacks_use_fetch_rules(address: str, kind: str | None) -> None:
    """Callbacks refuse the same addresses as document fetches, with the same reason."""
    assert classify_address(ipaddress.ip_address(address)) == kind


def test_allow_networks_admit_addresses() -> None:
    loopback = parse_networks(["127.0.0.0/8"])

    assert address_allowed(ipaddress.ip_address("127.0.0.1"), loopback)
    assert address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"), loopback)
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), loopback)
    assert not address_allowed(ipaddress.ip_address("::1"), loopback)
    assert not address_allowed(ipaddress.ip_address("169.254.169.254"), loopback)
    assert address_allowed(ipaddress.ip_address("8.8.8.8"), [])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/hook", "must start with http:// or https://"),
        ("http:///hook", "has no host"),
        ("http://127.0.0.1:9/hook", "127.0.0.1, a loopback address"),
        ("http://[::ffff:169.254.169.254]/latest", "metadata address"),
        ("https://10.0.0.5/hook", "10.0.0.5, a private address"),
    ],
)
async def test_check_url_rejects(url: str, message: str) -> None:
    guard = NetworkAddressGuard([])

    with pytest.raises(AddressNotAllowedError, match=message):
        await guard.check_url(url)


async def test_check_url_allows_listed_network() -> None:
    guard = NetworkAddressGuard(["127.0.0.0/8"])

    await guard.check_url("http://127.0.0.1:9/hook")


async def test_resolver_drops_refused_addresses() -> None:
    # localhost resolves from /etc/hosts: no DNS query leaves the machine.
    refusing = GuardedResolver([])
    allowing = GuardedResolver(["127.0.0.0/8", "::1/128"])
    try:
        with pytest.raises(AddressNotAllowedError, match="loopback address"):
            await refusing.resolve("localhost", 80)
        results = await allowing.resolve("localhost", 80)
    finally:
        await refusing.close()
        await allowing.close()

    assert results
    assert all(ipaddress.ip_address(result["host"]).is_loopback for result in results)

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
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "private"),
    ("100.64.0.1", "non-global"),
    ("8.8.8.8", None),
    ("2001:4860:4860::8888", None),
]


@pytest.mark.parametrize(("address", "kind"), CLASSIFIED)
def test_classify_special_addresses(address: str, kind: str | None) -> None:
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
        ("http://127.0.0.1:9/hook", "loopback address 127.0.0.1"),
        ("http://[::ffff:169.254.169.254]/latest", "metadata address"),
        ("https://10.0.0.5/hook", "private address 10.0.0.5"),
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

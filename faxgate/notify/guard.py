"""Address rules for callbacks: which hosts faxgate may send a callback to.

Callback URLs come from API users, so without these rules a user could make
faxgate send requests into the operator's own network (server-side request
forgery). Loopback, private, link-local, cloud metadata and other non-global
addresses are refused unless a network in `fetch.allow_networks` contains
them. The rules are checked twice: on the URL before a request, and on every
address the resolver returns while connecting. So a name that resolves to a
public address at the check and to a private one at connect time is still
rejected.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from faxgate.errors import AddressNotAllowedError
from faxgate.fetch import blocked_reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

class AddressGuard(Protocol):
    """Check run on a callback URL before faxgate connects to it."""

    async def check_url(self, url: str) -> None:
        """Raise AddressNotAllowedError unless faxgate may send a request to `url`."""
        ...


def parse_networks(networks: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(network, strict=False) for network in networks]


def classify_address(address: IPAddress) -> str | None:
    """Return why `address` is refused by default, or None for a public address.

    The rules are those of document fetches (`faxgate.fetch.blocked_reason`),
    so callbacks and fetches refuse the same addresses.
    """
    return blocked_reason(address)


def address_allowed(address: IPAddress, allow_networks: Iterable[IPNetwork]) -> bool:
    """Return whether faxgate may connect to `address`.

    Public addresses are allowed, and so is any address inside one of
    `allow_networks`.
    """
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for network in allow_networks:
        if any(candidate.version == network.version and candidate in network
               for candidate in candidates):
            return True
    return classify_address(address) is None


def _refusal(host: str, address: IPAddress, url: str) -> AddressNotAllowedError:
    kind = classify_address(address)
    return AddressNotAllowedError(
        f"host {host} has address {address}, {kind}, which callbacks may not reach;"
        " add its network to fetch.allow_networks to allow it",
        url=url,
        address=str(address),
    )


class NetworkAddressGuard:
    """The default AddressGuard: resolve the URL's host and check every address."""

    def __init__(self, allow_networks: Iterable[str]) -> None:
        self.allow_networks = parse_networks(allow_networks)

    async def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise AddressNotAllowedError(
                f"callback URL must start with http:// or https://, got {parts.scheme!r}",
                url=url,
            )
        host = parts.hostname
        if not host:
            raise AddressNotAllowedError("callback URL has no host", url=url)
        for address in await self._resolve(host, parts.port, url):
            if not address_allowed(address, self.allow_networks):
                raise _refusal(host, address, url)

    async def _resolve(self, host: str, port: int | None, url: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise AddressNotAllowedError(
                f"cannot resolve the callback host {host}: {exc}", url=url
            ) from exc
        return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that drops addresses the callback rules refuse.

    aiohttp does not call a resolver for IP literal hosts, so the URL check
    covers those, and this covers names whose addresses changed since the check.
    """

    def __init__(self, allow_networks: Iterable[str]) -> None:
        self.allow_networks = parse_networks(allow_networks)
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [
            result for result in results
            if address_allowed(ipaddress.ip_address(result["host"]), self.allow_networks)
        ]
        if not allowed:
            address = ipaddress.ip_address(results[0]["host"])
            raise _refusal(host, address, url=f"//{host}:{port}")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


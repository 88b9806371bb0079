"""HTTP requests to user-given URLs: document fetches now, callbacks later.

A user-given URL must not reach faxgate's own host or network, or a cloud
metadata service. `AddressGuard` classifies addresses. `Fetcher` resolves
every host itself, checks every resolved address and connects only to the
checked addresses. It follows redirects one hop at a time and checks each
hop again. Only http and https URLs are fetched, and only a 2xx answer counts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from faxgate.config import FetchConfig
from faxgate.errors import AddressNotAllowedError, FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024
_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)

# Cloud instance metadata services: AWS, GCP, Azure and OpenStack use the
# IPv4 address, and AWS also serves the IPv6 one. Both are link-local or
# private and so rejected anyway, but naming them gives a clearer reason.
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
# Carrier-grade NAT space (RFC 6598); Python's is_private leaves it out.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class FetchTooLargeError(FetchError):
    """The document is larger than fetch.max_bytes."""

    code = "too_large"


class FetchTimeoutError(FetchError):
    """The document server did not respond within fetch.timeout."""

    code = "timeout"


class FetchStatusError(FetchError):
    """The document server responded with a status other than 2xx."""

    code = "bad_status"


class InvalidUrlError(FetchError):
    """The URL is not an absolute http or https URL with a host."""

    code = "invalid_url"


def blocked_reason(address: IPAddress) -> str | None:
    """Return why `address` may not be connected to by default, or None when it may.

    An IPv6 address that embeds an IPv4 address (IPv4-mapped or 6to4) is
    judged as that IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return blocked_reason(mapped)
    if address in _METADATA:
        return "a cloud metadata address"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    for blocked, reason in checks:
        if blocked:
            return reason
    return None


@dataclass
class AddressGuard:
    """Decides which addresses fetches may connect to; `allow_networks` opens ranges."""

    allow_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )

    @classmethod
    def from_config(cls, config: FetchConfig) -> AddressGuard:
        networks = [ipaddress.ip_network(text, strict=False) for text in config.allow_networks]
        return cls(networks)

    def check(self, address: IPAddress, host: str) -> None:
        """Raise AddressNotAllowedError unless `address` (resolved from `host`) is allowed."""
        if any(address in network for network in self.allow_networks):
            return
        reason = blocked_reason(address)
        if reason is not None:
            raise AddressNotAllowedError(
                f"the document URL host {host} resolves to {address}, {reason}; "
                "faxgate does not fetch from such addresses unless fetch.allow_networks "
                "includes them"
            )

    def check_url(self, url: URL) -> None:
        """Raise unless `url` is an absolute http(s) URL whose host, if an IP literal, is allowed.

        Host names are checked when they are resolved, at fetch time.
        """
        if url.scheme not in ("http", "https"):
            raise InvalidUrlError(f"the document URL must use http or https, not {url.scheme!r}")
        if not url.host:
            raise InvalidUrlError("the document URL has no host")
        literal = ip_literal(url.host)
        if literal is not None:
            self.check(literal, url.host)


def ip_literal(host: str) -> IPAddress | None:
    """Return the address when `host` is an IP literal (IPv6 without brackets), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """Resolves names with the system resolver and passes on only allowed addresses.

    aiohttp connects to the addresses a resolver returns, so the connection
    goes to exactly the address that was checked. A name with any disallowed
    address is refused whole, so that a name that resolves to a public and
    a private address cannot be used to reach the private one.
    """

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
            )
        except socket.gaierror as exc:
            raise FetchError(f"the document URL host {host} could not be resolved: {exc}") from exc
        results: list[ResolveResult] = []
        for info_family, _type, proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            self.guard.check(address, host)
            results.append(
                {
                    "hostname": host,
                    "host": str(address),
                    "port": int(sockaddr[1]),
                    "family": info_family,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not results:
            raise FetchError(f"the document URL host {host} has no address")
        return results

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class FetchRequest:
    """A document to fetch, as the job's `document` object describes it."""

    url: str
    method: str = "get"
    content: str | None = None
    content_type: str | None = None
    host: str | None = None
    referer: str | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> FetchRequest:
        return cls(
            url=str(document["url"]),
            method=str(document.get("method") or "get").lower(),
            content=document.get("content"),
            content_type=document.get("content_type"),
            host=document.get("host"),
            referer=document.get("referer"),
        )


@dataclass(frozen=True)
class FetchedDocument:
    data: bytes
    content_type: str | None
    filename: str | None
    url: str


class Fetcher:
    """Fetches user-given URLs within the size, time, redirect and address limits."""

    def __init__(self, config: FetchConfig, user_agent: str = "faxgate") -> None:
        self.config = config
        self.guard = AddressGuard.from_config(config)
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.guard), use_dns_cache=False
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, request: FetchRequest) -> FetchedDocument:
        """Fetch the document; raise a FetchError subclass with a readable reason."""
        try:
            async with asyncio.timeout(self.config.timeout):
                return await self._follow(request)
        except TimeoutError as exc:
            raise FetchTimeoutError(
                f"fetching {request.url} took longer than {self.config.timeout:g} s"
            ) from exc

    async def _follow(self, request: FetchRequest) -> FetchedDocument:
        url = _parse_url(request.url)
        method = request.method.upper()
        body = request.content.encode("utf-8") if method == "POST" and request.content else None
        for _hop in range(self.config.max_redirects + 1):
            self.guard.check_url(url)
            try:
                async with self._request(method, url, body, request) as response:
                    if response.status in _REDIRECTS and "Location" in response.headers:
                        url = _redirect_target(url, response.headers["Location"])
                        # RFC 9110 15.4: after 303, and by common practice after
                        # 301 and 302, the next request is a GET without a body.
                        if response.status == 303 or (
                            response.status in (301, 302) and method == "POST"
                        ):
                            method, body = "GET", None
                        continue
                    return await self._document(response, url)
            except aiohttp.ClientError as exc:
                raise FetchError(f"fetching {url} failed: {exc}") from exc
        raise FetchError(
            f"fetching {request.url} failed: more than {self.config.max_redirects} redirects"
        )

    def _request(
        self, method: str, url: URL, body: bytes | None, request: FetchRequest
    ) -> aiohttp.client._RequestContextManager:
        headers = {"User-Agent": self.user_agent}
        if request.host:
            headers["Host"] = request.host
        if request.referer:
            headers["Referer"] = request.referer
        if body is not None:
            headers["Content-Type"] = request.content_type or "application/x-www-form-urlencoded"
        return self._client().request(
            method, url, data=body, headers=headers, allow_redirects=False
        )

    async def _document(self, response: aiohttp.ClientResponse, url: URL) -> FetchedDocument:
        if not 200 <= response.status < 300:
            raise FetchStatusError(
                f"fetching {url} failed: the server responded with HTTP {response.status}"
            )
        data = await self._read_limited(response, url)
        return FetchedDocument(
            data=data,
            content_type=response.headers.get("Content-Type"),
            filename=_filename(response.headers.get("Content-Disposition"), url),
            url=str(url),
        )

    async def _read_limited(self, response: aiohttp.ClientResponse, url: URL) -> bytes:
        limit = self.config.max_bytes
        if response.content_length is not None and response.content_length > limit:
            raise FetchTooLargeError(
                f"the document at {url} is {response.content_length} bytes; "
                f"the limit is {limit} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise FetchTooLargeError(
                    f"the document at {url} is larger than the limit of {limit} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _parse_url(text: str) -> URL:
    try:
        url = URL(text)
    except ValueError as exc:
        raise InvalidUrlError(f"the document URL {text!r} is not a valid URL: {exc}") from exc
    if not url.is_absolute():
        raise InvalidUrlError(f"the document URL {text!r} is not absolute")
    return url


def _redirect_target(current: URL, location: str) -> URL:
    return current.join(_parse_relative(location))


def _parse_relative(location: str) -> URL:
    try:
        return URL(location)
    except ValueError as exc:
        raise FetchError(f"the redirect target {location!r} is not a valid URL") from exc


def _filename(disposition: str | None, url: URL) -> str | None:
    if disposition:
        match = _FILENAME.search(disposition)
        if match:
            return unquote(match.group(1)).strip() or None
    name = url.name
    return name or None


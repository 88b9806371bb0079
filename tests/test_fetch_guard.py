"""Document fetches: the address classification (no traffic) and fetches from a local server."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from aiohttp import web

from faxgate.config import FetchConfig
from faxgate.errors import AddressNotAllowedError, FetchError
from faxgate.fetch import (
    AddressGuard,
    Fetcher,
    FetchRequest,
    FetchStatusError,
    FetchTimeoutError,
    FetchTooLargeError,
    InvalidUrlError,
    blocked_reason,
)
from tests.outgoing_support import document_server, make_pdf

BLOCKED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd12::1": "private",
    "169.254.10.10": "link-local",
    "fe80::1": "link-local",
    "169.254.169.254": "metadata",
    "fd00:ec2::254": "metadata",
    "100.64.0.1": "CGNAT",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "metadata",
    "2002:a00:1::": "private",
}


@pytest.mark.parametrize(("address", "reason"), sorted(BLOCKED.items()))
def test_blocked_address_classified(address: str, reason: str) -> None:
    found = blocked_reason(ipaddress.ip_address(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_address_allowed(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_allow_list_opens_network() -> None:
    guard = AddressGuard.from_config(FetchConfig(allow_networks=["10.20.0.0/16"]))
    guard.check(ipaddress.ip_address("10.20.3.4"), "intranet")
    with pytest.raises(AddressNotAllowedError):
        guard.check(ipaddress.ip_address("10.21.3.4"), "intranet")


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.pdf", "gopher://x/", "http:///nohost"],
)
def test_non_http_url_rejected(url: str) -> None:
    from yarl import URL

    with pytest.raises(InvalidUrlError):
        AddressGuard().check_url(URL(url))


def allow_local(**settings: object) -> FetchConfig:
    config = FetchConfig(allow_networks=["127.0.0.1/32"], timeout=5.0)
    for key, value in settings.items():
        setattr(config, key, value)
    return config


async def test_fetch_follows_redirect() -> None:
    fetcher = Fetcher(allow_local())
    try:
        async with document_server() as server:
            server.documents["/doc.pdf"] = make_pdf(1)
            fetched = await fetcher.fetch(FetchRequest(server.url("/redirect/doc.pdf")))
    finally:
        await fetcher.close()
    assert fetched.data == make_pdf(1)
    assert [r.path for r in server.requests] == ["/redirect/doc.pdf", "/doc.pdf"]


async def test_redirect_to_blocked_address_refused() -> None:
    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:9/secret")

    fetcher = Fetcher(allow_local())
    try:
        async with document_server() as server:
            server.documents["/doc.pdf"] = b"x"
            app = web.Application()
            app.router.add_get("/", redirect)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                with pytest.raises(AddressNotAllowedError):
                    await fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/"))
            finally:
                await runner.cleanup()
    finally:
        await fetcher.close()


async def test_redirect_limit_enforced() -> None:
    fetcher = Fetcher(allow_local(max_redirects=1))
    try:
        async with document_server() as server:
            server.documents["/doc.pdf"] = make_pdf(1)
            with pytest.raises(FetchError, match="redirects"):
                await fetcher.fetch(FetchRequest(server.url("/redirect/redirect/doc.pdf")))
    finally:
        await fetcher.close()


async def test_size_limit_enforced() -> None:
    fetcher = Fetcher(allow_local(max_bytes=1000))
    try:
        async with document_server() as server:
            server.documents["/big.pdf"] = make_pdf(1) + b"0" * 5000
            with pytest.raises(FetchTooLargeError):
                await fetcher.fetch(FetchRequest(server.url("/big.pdf")))
    finally:
        await fetcher.close()


async def test_only_2xx_counts() -> None:
    fetcher = Fetcher(allow_local())
    try:
        async with document_server() as server:
            with pytest.raises(FetchStatusError, match="HTTP 404"):
                await fetcher.fetch(FetchRequest(server.url("/missing.pdf")))
    finally:
        await fetcher.close()


async def test_slow_server_times_out() -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fetcher = Fetcher(allow_local(timeout=0.3))
    try:
        with pytest.raises(FetchTimeoutError):
            await fetcher.fetch(FetchRequest(f"http://127.0.0.1:{runner.addresses[0][1]}/"))
    finally:
        await fetcher.close()
        await runner.cleanup()


async def test_localhost_name_refused_by_resolver() -> None:
    fetcher = Fetcher(FetchConfig())
    try:
        async with document_server() as server:
            with pytest.raises(AddressNotAllowedError, match="loopback"):
                await fetcher.fetch(FetchRequest(f"http://localhost:{server.port}/doc.pdf"))
            assert server.requests == []
    finally:
        await fetcher.close()

"""Authentication: API keys, auth tokens and account isolation over real HTTP."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from faxgate.service import Service
from tests.conftest import Account, ApiClient, make_config


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_api_key_gives_token(service: Service, http: aiohttp.ClientSession,
                                   account: Account) -> None:
    client = ApiClient(http, service.http_url)
    status, body = await client.request(
        "PUT", "/v2/api_auth", {"data": {"api_key": account.api_key}}
    )

    assert status == 201
    assert body["status"] == "success"
    assert body["data"]["account_id"] == account.account_id
    assert len(body["auth_token"]) == 64
    assert body["request_id"]
    assert body["timestamp"].endswith("Z")


async def test_bad_api_key_rejected(service: Service, http: aiohttp.ClientSession,
                                    account: Account) -> None:
    client = ApiClient(http, service.http_url)
    status, body = await client.request("PUT", "/v2/api_auth", {"data": {"api_key": "wrong"}})

    assert status == 401
    assert body["status"] == "error"
    assert body["error"] == "401"
    assert "auth_token" not in body or body["auth_token"] == ""


async def test_missing_api_key_is_validation_error(service: Service,
                                                   http: aiohttp.ClientSession) -> None:
    client = ApiClient(http, service.http_url)
    status, body = await client.request("PUT", "/v2/api_auth", {"data": {}})

    assert status == 400
    assert body["message"] == "validation error"
    assert "required" in body["data"]["api_key"]


async def test_missing_token_rejected(api: ApiClient) -> None:
    status, body = await api.request("GET", api.account_path("/faxboxes"), token="")

    assert status == 401
    assert body["message"] == "invalid credentials"


async def test_unknown_token_rejected(api: ApiClient) -> None:
    status, _ = await api.request("GET", api.account_path("/faxboxes"), token="0" * 64)

    assert status == 401


async def test_request_id_echoed(api: ApiClient) -> None:
    status, body = await api.request(
        "GET", api.account_path("/faxboxes"), headers={"X-Request-ID": "trace-42"}
    )

    assert status == 200
    assert body["request_id"] == "trace-42"


async def test_other_account_answers_404(service: Service, api: ApiClient,
                                         http: aiohttp.ClientSession) -> None:
    other, other_key = await service.store.create_account("other")
    other_client = ApiClient(http, service.http_url)
    await other_client.authenticate(other_key)
    status, created = await other_client.request(
        "PUT", other_client.account_path("/faxboxes"), {"data": {"name": "theirs"}}
    )
    assert status == 201
    their_faxbox = created["data"]["id"]

    status, body = await api.request("GET", f"/v2/accounts/{other['id']}/faxboxes")
    assert status == 404
    assert body["message"] == "bad_identifier"
    assert body["data"]["cause"] == other["id"]

    status, body = await api.request("GET", api.account_path(f"/faxboxes/{their_faxbox}"))
    assert status == 404
    assert body["data"]["cause"] == their_faxbox

    status, _ = await api.request(
        "PATCH", api.account_path(f"/faxboxes/{their_faxbox}"), {"data": {"name": "mine"}}
    )
    assert status == 404

    status, _ = await api.request("DELETE", api.account_path(f"/faxboxes/{their_faxbox}"))
    assert status == 404

    status, body = await other_client.request(
        "GET", other_client.account_path(f"/faxboxes/{their_faxbox}")
    )
    assert status == 200
    assert body["data"]["name"] == "theirs"


async def test_expired_token_rejected(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    clock = ManualClock(1_800_000_000.0)
    config = make_config(tmp_path / "data", auth={"token_ttl": 60})
    service = Service(config, clock=clock)
    await service.start()
    try:
        _, api_key = await service.store.create_account("clocked")
        client = ApiClient(http, service.http_url)
        await client.authenticate(api_key)

        clock.now += 59
        status, _ = await client.request("GET", client.account_path("/faxboxes"))
        assert status == 200

        clock.now += 2
        status, body = await client.request("GET", client.account_path("/faxboxes"))
        assert status == 401
        assert "expired" in body["data"]["message"]
    finally:
        await service.stop()


async def test_api_key_stored_hashed(service: Service, account: Account) -> None:
    raw = service.store.path.read_bytes()
    wal = service.store.path.with_name(service.store.path.name + "-wal")
    if wal.exists():
        raw += wal.read_bytes()

    assert account.api_key.encode() not in raw

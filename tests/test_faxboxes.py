"""The faxboxes resource over real HTTP: CRUD, validation and pagination."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from faxgate.service import Service
from tests.conftest import ApiClient


async def create(api: ApiClient, fields: dict[str, object]) -> dict[str, object]:
    status, body = await api.request("PUT", api.account_path("/faxboxes"), {"data": fields})
    assert status == 201, body
    data: dict[str, object] = body["data"]
    return data


async def test_faxbox_crud(api: ApiClient) -> None:
    created = await create(
        api,
        {
            "name": "Front desk",
            "caller_id": "(212) 555-0142",
            "fax_identity": "+1 212 555 0142",
            "fax_timezone": "America/New_York",
            "smtp_permission_list": ["Alice@Example.com", "*@corp.example"],
            "retries": 2,
        },
    )
    faxbox_id = str(created["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", faxbox_id)
    assert created["caller_id"] == "+12125550142"
    assert created["smtp_permission_list"] == ["alice@example.com", "*@corp.example"]
    assert re.fullmatch(r"[0-9a-f]{8}\.fax\.localhost", str(created["smtp_email_address"]))

    status, body = await api.request("GET", api.account_path(f"/faxboxes/{faxbox_id}"))
    assert status == 200
    assert body["data"] == created

    status, body = await api.request(
        "PATCH", api.account_path(f"/faxboxes/{faxbox_id}"), {"data": {"retries": 4}}
    )
    assert status == 200
    assert body["data"]["retries"] == 4
    assert body["data"]["name"] == "Front desk"
    assert body["data"]["smtp_email_address"] == created["smtp_email_address"]

    status, body = await api.request(
        "POST", api.account_path(f"/faxboxes/{faxbox_id}"), {"data": {"name": "Renamed"}}
    )
    assert status == 200
    assert body["data"]["name"] == "Renamed"
    assert "retries" not in body["data"]
    assert body["data"]["smtp_email_address"] == created["smtp_email_address"]

    status, body = await api.request("GET", api.account_path("/faxboxes"))
    assert status == 200
    assert [row["id"] for row in body["data"]] == [faxbox_id]

    status, _ = await api.request("DELETE", api.account_path(f"/faxboxes/{faxbox_id}"))
    assert status == 200
    status, body = await api.request("GET", api.account_path(f"/faxboxes/{faxbox_id}"))
    assert status == 404
    assert body["message"] == "bad_identifier"


async def test_faxbox_missing_name(api: ApiClient, service: Service) -> None:
    status, body = await api.request("PUT", api.account_path("/faxboxes"), {"data": {}})

    assert status == 400
    assert body["message"] == "validation error"
    assert body["data"]["name"]["required"]["message"] == "Field is required but missing"
    assert await service.store.fetch_all("SELECT id FROM faxboxes") == []


async def test_faxbox_bad_types(api: ApiClient) -> None:
    status, body = await api.request(
        "PUT",
        api.account_path("/faxboxes"),
        {"data": {"name": 7, "retries": "three", "smtp_permission_list": "a@b.example"}},
    )

    assert status == 400
    assert set(body["data"]) == {"name", "retries", "smtp_permission_list"}
    assert "type" in body["data"]["name"]
    assert body["data"]["retries"]["type"]["cause"] == "three"
    assert "type" in body["data"]["smtp_permission_list"]


async def test_faxbox_retries_out_of_range(api: ApiClient) -> None:
    status, body = await api.request(
        "PUT", api.account_path("/faxboxes"), {"data": {"name": "x", "retries": 9}}
    )

    assert status == 400
    assert body["data"]["retries"]["maximum"]["cause"] == 9


async def test_faxbox_bad_values(api: ApiClient) -> None:
    status, body = await api.request(
        "PUT",
        api.account_path("/faxboxes"),
        {
            "data": {
                "name": "x",
                "caller_id": "12",
                "fax_timezone": "Mars/Olympus",
                "custom_smtp_email_address": "not a domain",
                "smtp_permission_list": ["ok@example.com", "@@"],
            }
        },
    )

    assert status == 400
    assert "format" in body["data"]["caller_id"]
    assert "enum" in body["data"]["fax_timezone"]
    assert "format" in body["data"]["custom_smtp_email_address"]
    assert "format" in body["data"]["smtp_permission_list.1"]
    assert "smtp_permission_list.0" not in body["data"]


async def test_custom_domain_unique_ignoring_case(
    api: ApiClient, service: Service, http: aiohttp.ClientSession
) -> None:
    first = await create(api, {"name": "a", "custom_smtp_email_address": "Fax.Example.COM"})
    assert first["custom_smtp_email_address"] == "fax.example.com"

    _, other_key = await service.store.create_account("other")
    other = ApiClient(http, service.http_url)
    await other.authenticate(other_key)
    status, body = await other.request(
        "PUT",
        other.account_path("/faxboxes"),
        {"data": {"name": "b", "custom_smtp_email_address": "fax.EXAMPLE.com"}},
    )

    assert status == 400
    assert body["message"] == "validation error"
    assert "unique" in body["data"]["custom_smtp_email_address"]
    rows = await service.store.fetch_all("SELECT id FROM faxboxes")
    assert len(rows) == 1


async def test_custom_domain_under_default_rejected(api: ApiClient) -> None:
    status, body = await api.request(
        "PUT",
        api.account_path("/faxboxes"),
        {"data": {"name": "a", "custom_smtp_email_address": "abcd1234.fax.localhost"}},
    )

    assert status == 400
    assert "format" in body["data"]["custom_smtp_email_address"]


async def test_private_fields_ignored(api: ApiClient) -> None:
    created = await create(
        api, {"name": "a", "pvt_account_id": "evil", "id": "f" * 32, "_rev": "1"}
    )

    assert created["id"] != "f" * 32
    assert "pvt_account_id" not in created
    assert "_rev" not in created


async def test_bad_json_bodies(api: ApiClient, service: Service) -> None:
    path = api.account_path("/faxboxes")
    for raw in (b"{not json", b"", b"[]", b'{"name": "no envelope"}', b'{"data": "text"}',
                b"\xff\xfe"):
        status, body = await api.request(
            "PUT", path, data=raw, headers={"Content-Type": "application/json"}
        )
        assert status == 400, raw
        assert body["message"] == "invalid request", raw

    assert await service.store.fetch_all("SELECT id FROM faxboxes") == []


async def test_wrong_verb_answers_405(api: ApiClient) -> None:
    status, body = await api.request("DELETE", api.account_path("/faxboxes"))

    assert status == 405
    assert body["status"] == "error"
    assert "PUT" in body["data"]["allowed"]


async def test_pagination_during_inserts(api: ApiClient) -> None:
    existing = {str((await create(api, {"name": f"box {i}"}))["id"]) for i in range(25)}

    seen: list[str] = []
    start_key: str | None = None
    pages = 0
    while True:
        query = "?page_size=10" + (f"&start_key={start_key}" if start_key else "")
        status, body = await api.request("GET", api.account_path("/faxboxes" + query))
        assert status == 200
        assert body["page_size"] == len(body["data"])
        seen += [row["id"] for row in body["data"]]
        pages += 1
        # Rows added between pages must neither repeat nor push rows out.
        await asyncio.gather(*(create(api, {"name": f"late {pages}.{i}"}) for i in range(4)))
        start_key = body.get("next_start_key")
        if start_key is None:
            break

    assert pages == 3
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)


async def test_pagination_ascending_and_unpaginated(api: ApiClient) -> None:
    ids = [str((await create(api, {"name": f"box {i}"}))["id"]) for i in range(5)]

    status, body = await api.request("GET", api.account_path("/faxboxes?ascending=true"))
    assert status == 200
    assert [row["id"] for row in body["data"]] == ids

    status, body = await api.request(
        "GET", api.account_path("/faxboxes?paginate=false&page_size=2")
    )
    assert [row["id"] for row in body["data"]] == list(reversed(ids))
    assert "next_start_key" not in body


async def test_pagination_bad_parameters(api: ApiClient) -> None:
    for query, field in (
        ("?page_size=0", "page_size"),
        ("?page_size=ten", "page_size"),
        ("?start_key=garbage", "start_key"),
    ):
        status, body = await api.request("GET", api.account_path("/faxboxes" + query))
        assert status == 400, query
        assert field in body["data"], query

"""End-to-end tests of the outgoing faxes API over real HTTP against a running service."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from faxgate.service import Service
from tests.conftest import ApiClient, client_for, make_config, wait_for
from tests.outgoing_support import (
    StandInDialer,
    document_server,
    make_pdf,
    pdf_pages,
)

TO = "+12125550123"
FROM = "+12125550100"

Factory = Callable[..., Coroutine[Any, Any, Service]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Factory]:
    services: list[Service] = []

    async def factory(dialer: StandInDialer | None = None, **sections: dict[str, Any]) -> Service:
        settings: dict[str, dict[str, Any]] = {
            "fetch": {"allow_networks": ["127.0.0.1/32"]},
            "worker": {"poll_interval": 0.05, "retry_delay": 0.1, "busy_retry_delay": 0.1},
        }
        for section, values in sections.items():
            settings.setdefault(section, {}).update(values)
        config = make_config(tmp_path / f"data{len(services)}", **settings)
        # The service builds the real document pipeline and, without a
        # stand-in dialer, the engine's loopback trunk from config.loopback.rules.
        service = Service(config, dialer=dialer)
        await service.start()
        services.append(service)
        return service

    yield factory
    for service in services:
        await service.stop()


async def finished(client: ApiClient, job_id: str, within: float = 20.0) -> dict[str, Any]:
    async def outbox_entry() -> dict[str, Any] | None:
        status, body = await client.request("GET", client.account_path(f"/faxes/outbox/{job_id}"))
        return body["data"] if status == 200 else None

    result: dict[str, Any] = await wait_for(outbox_entry, within=within)
    return result


async def attachment(client: ApiClient, outbox_id: str, fmt: str = "") -> tuple[int, bytes, str]:
    query = f"?format={fmt}" if fmt else ""
    path = client.account_path(f"/faxes/outbox/{outbox_id}/attachment{query}")
    async with client.session.get(
        client.base_url + path, headers={"X-Auth-Token": client.token or ""}
    ) as response:
        return response.status, await response.read(), response.headers.get(
            "Content-Disposition", ""
        )


def job(**fields: Any) -> dict[str, Any]:
    return {"data": {"to_number": TO, "from_number": FROM, **fields}}


async def test_url_get_reaches_outbox(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    async with document_server() as server:
        server.documents["/doc.pdf"] = make_pdf(3)
        document = {"url": server.url("/doc.pdf"), "referer": "https://app.example/"}
        status, body = await client.request(
            "PUT", client.account_path("/faxes"), job(document=document)
        )
        assert status == 201, body
        assert body["data"]["status"] == "attaching_files"
        fax = await finished(client, body["data"]["id"])

    assert fax["status"] == "completed"
    assert fax["tx_result"]["success"] is True
    assert fax["tx_result"]["pages_sent"] == 3
    assert fax["pages"] == 3
    assert fax["attempts"] == 1
    assert fax["id"].endswith("-" + body["data"]["id"])
    assert isinstance(fax["delivered"], int)
    assert server.requests[0].method == "GET"
    assert server.requests[0].headers["Referer"] == "https://app.example/"
    code, data, disposition = await attachment(client, fax["id"])
    assert code == 200
    assert pdf_pages(data) == 3
    assert f'filename="fax-{fax["id"]}.pdf"' in disposition


async def test_url_post_sends_content(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    async with document_server() as server:
        server.documents["/render"] = make_pdf(2)
        document = {
            "url": server.url("/render"),
            "method": "POST",
            "content": "invoice=42",
            "content_type": "application/x-www-form-urlencoded",
            "host": "docs.example.com",
            "referer": "https://app.example/invoices",
        }
        _status, body = await client.request(
            "PUT", client.account_path("/faxes/outgoing"), job(document=document)
        )
        fax = await finished(client, body["data"]["id"])

    request = server.requests[0]
    assert request.method == "POST"
    assert request.body == b"invoice=42"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Host"] == "docs.example.com"
    assert request.headers["Referer"] == "https://app.example/invoices"
    assert fax["tx_result"]["pages_sent"] == 2


async def test_multipart_two_documents_in_order(
    start: Factory, http: aiohttp.ClientSession
) -> None:
    client = await client_for(await start(), http)
    with aiohttp.MultipartWriter("mixed") as writer:
        writer.append_json(job())
        first = writer.append(make_pdf(2), {"Content-Type": "application/pdf"})
        first.set_content_disposition("attachment", filename="first.pdf")
        writer.append(make_pdf(3), {"Content-Type": "application/pdf"})
        status, body = await client.request("PUT", client.account_path("/faxes"), data=writer)
    assert status == 201, body
    assert body["data"]["status"] == "pending"

    fax = await finished(client, body["data"]["id"])
    assert fax["tx_result"]["pages_sent"] == 5
    code, data, _ = await attachment(client, fax["id"])
    assert code == 200
    assert pdf_pages(data) == 5
    code, original, disposition = await attachment(client, fax["id"], "original")
    assert code == 200
    assert original[:2] == b"PK"
    assert "originals.zip" in disposition


async def test_form_data_upload(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    form = aiohttp.FormData()
    form.add_field("data", json.dumps(job()), content_type="application/json")
    form.add_field("file", make_pdf(1), filename="a.pdf", content_type="application/pdf")
    status, body = await client.request("PUT", client.account_path("/faxes"), data=form)
    assert status == 201, body
    fax = await finished(client, body["data"]["id"])
    assert fax["tx_result"]["pages_sent"] == 1


async def test_raw_pdf_body(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    path = client.account_path(f"/faxes?to_number=212-555-0123&from_number={FROM}&retries=2")
    status, body = await client.request(
        "PUT", path, data=make_pdf(4), headers={"Content-Type": "application/pdf"}
    )
    assert status == 201, body
    assert body["data"]["to_number"] == TO
    assert body["data"]["retries"] == 2
    fax = await finished(client, body["data"]["id"])
    assert fax["tx_result"]["pages_sent"] == 4
    code, data, _ = await attachment(client, fax["id"])
    assert code == 200
    assert pdf_pages(data) == 4
    code, original, _ = await attachment(client, fax["id"], "original")
    assert code == 200
    assert original == make_pdf(4)
    _code, tiff, disposition = await attachment(client, fax["id"], "tiff")
    assert tiff[:4] == b"II*\x00"
    assert disposition.endswith('.tif"')


async def test_raw_jpeg_body(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    photo = io.BytesIO()
    Image.new("L", (600, 800), 200).save(photo, format="JPEG")
    status, body = await client.request(
        "PUT",
        client.account_path(f"/faxes?to_number={TO}&from_number={FROM}"),
        data=photo.getvalue(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert status == 201, body
    fax = await finished(client, body["data"]["id"])
    assert fax["tx_result"]["pages_sent"] == 1


async def test_outgoing_shows_live_progress(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(StandInDialer(page_seconds=0.4)), http)
    _status, body = await client.request(
        "PUT",
        client.account_path(f"/faxes?to_number={TO}&from_number={FROM}"),
        data=make_pdf(3),
        headers={"Content-Type": "application/pdf"},
    )
    job_id = body["data"]["id"]

    async def sending_text() -> str | None:
        _code, detail = await client.request(
            "GET", client.account_path(f"/faxes/outgoing/{job_id}")
        )
        text = detail["data"].get("progress", "") if _code == 200 else ""
        return text if text.startswith("sending page 2") else None

    assert await wait_for(sending_text) == "sending page 2 of 3"
    _code, rows = await client.request("GET", client.account_path("/faxes/outgoing"))
    assert [row["id"] for row in rows["data"]] == [job_id]
    assert rows["data"][0]["status"] == "processing"
    await finished(client, job_id)
    _code, rows = await client.request("GET", client.account_path("/faxes/outgoing"))
    assert rows["data"] == []


async def test_bad_inputs_rejected(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    path = client.account_path("/faxes")
    async with document_server() as server:
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"data": {"from_number": FROM, "document": {"url": server.url("/x")}}},
             "to_number", "required"),
            (job(to_number="12345", document={"url": server.url("/x")}), "to_number", "format"),
            (job(retries=9, document={"url": server.url("/x")}), "retries", "maximum"),
            (job(document={"url": "file:///etc/passwd"}), "document.url", "pattern"),
            (job(), "document.url", "required"),
        ]
        for body, field, rule in cases:
            status, answer = await client.request("PUT", path, body)
            assert status == 400, (body, answer)
            assert rule in answer["data"][field], answer
        assert server.requests == []

    _code, rows = await client.request("GET", client.account_path("/faxes/outgoing"))
    assert rows["data"] == []


async def test_loopback_url_refused_without_allow_list(
    start: Factory, http: aiohttp.ClientSession
) -> None:
    client = await client_for(await start(fetch={"allow_networks": []}), http)
    async with document_server() as server:
        server.documents["/doc.pdf"] = make_pdf(1)
        status, body = await client.request(
            "PUT", client.account_path("/faxes"), job(document={"url": server.url("/doc.pdf")})
        )
        assert status == 400
        assert "address_not_allowed" in body["data"]["document.url"]

        by_name = f"http://localhost:{server.port}/doc.pdf"
        status, body = await client.request(
            "PUT", client.account_path("/faxes"), job(retries=1, document={"url": by_name})
        )
        assert status == 201
        fax = await finished(client, body["data"]["id"])
        assert server.requests == []

    assert fax["status"] == "failed"
    assert "loopback" in fax["tx_result"]["error_message"]


async def test_unfetchable_urls_fail_with_reason(
    start: Factory, http: aiohttp.ClientSession
) -> None:
    client = await client_for(await start(), http)
    async with document_server() as server:
        missing = server.url("/missing.pdf")
    async with document_server() as server:
        unreachable = missing  # the first server is gone, so its port refuses connections
        cases = {server.url("/missing.pdf"): "HTTP 404", unreachable: "Cannot connect"}
        for url, reason in cases.items():
            _status, body = await client.request(
                "PUT", client.account_path("/faxes"), job(retries=2, document={"url": url})
            )
            fax = await finished(client, body["data"]["id"])
            assert fax["status"] == "failed"
            assert fax["attempts"] == 2
            assert reason in fax["tx_result"]["error_message"]
            assert fax["tx_result"]["success"] is False
            code, _data, _ = await attachment(client, fax["id"])
            assert code == 404


async def test_oversized_upload_rejected(start: Factory, http: aiohttp.ClientSession) -> None:
    service = await start()
    client = await client_for(service, http)
    limit = service.config.http.max_upload_bytes
    big = b"%PDF-1.4\n" + b"0" * limit
    path = client.account_path(f"/faxes?to_number={TO}&from_number={FROM}")
    status, _body = await client.request(
        "PUT", path, data=io.BytesIO(big), headers={"Content-Type": "application/pdf"}
    )
    assert status == 413

    with aiohttp.MultipartWriter("mixed") as writer:
        writer.append_json(job())
        writer.append(io.BytesIO(big), {"Content-Type": "application/pdf"})
        status, _body = await client.request("PUT", client.account_path("/faxes"), data=writer)
    assert status == 413
    assert not (service.config.data_dir / "faxes").exists()


async def test_multipart_without_json_rejected(
    start: Factory, http: aiohttp.ClientSession
) -> None:
    client = await client_for(await start(), http)
    with aiohttp.MultipartWriter("mixed") as writer:
        writer.append(make_pdf(1), {"Content-Type": "application/pdf"})
        status, body = await client.request("PUT", client.account_path("/faxes"), data=writer)
    assert status == 400
    assert body["message"] == "invalid request"


async def test_malformed_multipart_rejected(
    start: Factory, http: aiohttp.ClientSession
) -> None:
    client = await client_for(await start(), http)
    body = b"--b1\r\n\xf3\xa8 no header end--b1--\r\n"
    headers = {"Content-Type": "multipart/mixed; boundary=b1"}
    status, answer = await client.request(
        "PUT", client.account_path("/faxes"), data=body, headers=headers
    )
    assert status == 400
    assert answer["message"] == "invalid request"
    assert "malformed" in answer["data"]["message"]


async def test_corrupt_pdf_rejected(start: Factory, http: aiohttp.ClientSession) -> None:
    service = await start()
    client = await client_for(service, http)
    corrupt = make_pdf(2)[:200]
    path = client.account_path(f"/faxes?to_number={TO}&from_number={FROM}")
    status, body = await client.request(
        "PUT", path, data=corrupt, headers={"Content-Type": "application/pdf"}
    )
    assert status == 400, body
    assert "document" in body["data"]
    assert not (service.config.data_dir / "faxes").exists()
    _code, rows = await client.request("GET", client.account_path("/faxes/outgoing"))
    assert rows["data"] == []


async def test_text_labelled_pdf_rejected(start: Factory, http: aiohttp.ClientSession) -> None:
    service = await start()
    client = await client_for(service, http)
    path = client.account_path(f"/faxes?to_number={TO}&from_number={FROM}")
    status, body = await client.request(
        "PUT", path, data=b"hello world", headers={"Content-Type": "application/pdf"}
    )
    assert status == 400, body
    error = body["data"]["document"]["type_mismatch"]
    assert "labelled as a PDF file, but its content is plain text" in error["message"]
    _code, rows = await client.request("GET", client.account_path("/faxes/outgoing"))
    assert rows["data"] == []


async def test_resubmit_and_delete(start: Factory, http: aiohttp.ClientSession) -> None:
    service = await start()
    client = await client_for(service, http)
    path = client.account_path(f"/faxes?to_number={TO}&from_number={FROM}")
    _status, body = await client.request(
        "PUT", path, data=make_pdf(2), headers={"Content-Type": "application/pdf"}
    )
    fax = await finished(client, body["data"]["id"])
    outbox = client.account_path(f"/faxes/outbox/{fax['id']}")

    status, answer = await client.request("PUT", outbox, {"action": "forward", "data": {}})
    assert status == 400
    assert "resubmit" in answer["data"]["action"]["enum"]["message"]

    status, answer = await client.request(
        "PUT", outbox, {"action": "resubmit", "data": {"to_name": "Accounts"}}
    )
    assert status == 201, answer
    copy = answer["data"]
    assert copy["id"] != body["data"]["id"]
    assert copy["to_name"] == "Accounts"
    assert copy["attempts"] == 0
    again = await finished(client, copy["id"])
    assert again["tx_result"]["pages_sent"] == 2

    status, answer = await client.request("DELETE", outbox + "/attachment")
    assert status == 200
    code, _data, _ = await attachment(client, fax["id"])
    assert code == 404
    status, answer = await client.request("GET", outbox)
    assert status == 200
    assert not (service.config.data_dir / "faxes" / body["data"]["id"]).exists()

    status, answer = await client.request("PUT", outbox, {"action": "resubmit", "data": {}})
    assert status == 400
    assert "required" in answer["data"]["document.url"]

    status, _answer = await client.request("DELETE", outbox)
    assert status == 200
    status, _answer = await client.request("GET", outbox)
    assert status == 404
    bare = client.account_path(f"/faxes/outbox/{again['id'].split('-', 1)[1]}")
    status, _answer = await client.request("GET", bare)
    assert status == 200


async def test_faxbox_fills_defaults(start: Factory, http: aiohttp.ClientSession) -> None:
    client = await client_for(await start(), http)
    status, box = await client.request(
        "PUT",
        client.account_path("/faxboxes"),
        {"data": {"name": "Sales", "caller_id": FROM, "caller_name": "Sales dept",
                  "retries": 2, "fax_region": "DE", "fax_identity": "+49 30 1234"}},
    )
    assert status == 201, box
    faxbox_id = box["data"]["id"]
    nested = client.account_path(f"/faxboxes/{faxbox_id}/faxes")
    status, body = await client.request(
        "PUT",
        f"{nested}/outgoing?to_number=030 12345678",
        data=make_pdf(1),
        headers={"Content-Type": "application/pdf"},
    )
    assert status == 201, body
    created = body["data"]
    assert created["to_number"] == "+493012345678"
    assert created["from_number"] == FROM
    assert created["from_name"] == "Sales dept"
    assert created["retries"] == 2
    assert created["faxbox_id"] == faxbox_id

    fax = await finished(client, created["id"])
    _code, rows = await client.request("GET", f"{nested}/outbox")
    assert [row["id"] for row in rows["data"]] == [fax["id"]]
    status, _rows = await client.request(
        "GET", client.account_path(f"/faxboxes/{'0' * 32}/faxes/outbox")
    )
    assert status == 404


async def test_other_account_sees_nothing(start: Factory, http: aiohttp.ClientSession) -> None:
    service = await start()
    owner = await client_for(service, http)
    stranger = await client_for(service, http)
    path = owner.account_path(f"/faxes?to_number={TO}&from_number={FROM}")
    _status, body = await owner.request(
        "PUT", path, data=make_pdf(1), headers={"Content-Type": "application/pdf"}
    )
    fax = await finished(owner, body["data"]["id"])
    stranger_path = stranger.account_path(f"/faxes/outbox/{fax['id']}")
    status, _answer = await stranger.request("GET", stranger_path)
    assert status == 404


async def test_waiting_job_shows_retry_time(start: Factory, http: aiohttp.ClientSession) -> None:
    busy = {"rules": [{"pattern": TO, "behaviour": "busy"}]}
    service = await start(worker={"busy_retry_delay": 60.0}, loopback=busy)
    client = await client_for(service, http)
    path = client.account_path(f"/faxes?to_number={TO}&from_number={FROM}&retries=2")
    _status, body = await client.request(
        "PUT", path, data=make_pdf(1), headers={"Content-Type": "application/pdf"}
    )
    detail_path = client.account_path(f"/faxes/outgoing/{body['data']['id']}")

    async def waiting() -> dict[str, Any] | None:
        _code, detail = await client.request("GET", detail_path)
        found: dict[str, Any] = detail["data"]
        return found if "retry_after" in found else None

    job_view = await wait_for(waiting)
    assert job_view["status"] == "pending"
    assert job_view["attempts"] == 1
    assert job_view["tx_result"]["hangup_cause"] == "busy"
    assert job_view["tx_result"]["success"] is False
    assert 59 <= job_view["retry_after"] - job_view["modified"] <= 61


async def test_finished_fax_notifies_sender(start: Factory, http: aiohttp.ClientSession) -> None:
    # Mail is queued only with a smarthost; nothing listens on this port, so
    # delivery is deferred and the queued notification stays visible.
    smarthost = {"smarthost": "127.0.0.1", "port": 9, "security": "none"}
    busy = {"rules": [{"pattern": TO, "behaviour": "busy"}]}
    service = await start(notify=smarthost, loopback=busy)
    client = await client_for(service, http)
    fields = {"retries": 2, "notifications": {"email": {"send_to": "ops@example.com"}}}
    with aiohttp.MultipartWriter("mixed") as writer:
        writer.append_json(job(**fields))
        writer.append(make_pdf(1), {"Content-Type": "application/pdf"})
        _status, body = await client.request("PUT", client.account_path("/faxes"), data=writer)

    fax = await finished(client, body["data"]["id"])

    async def queued() -> list[Any]:
        return await service.store.list_notifications(fax_id=fax["id"])

    notifications = await wait_for(queued)
    assert [item.recipient for item in notifications] == ["ops@example.com"]
    assert notifications[0].event == "outbound_failed"
    assert fax["attempts"] == 2

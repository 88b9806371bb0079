"""Inbound faxes through the loopback trunk into a faxbox's inbox, read over HTTP."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pypdf
import pytest
from PIL import Image

from faxgate.documents import DocumentRenderer, RenderLimits
from faxgate.fax.result import FaxResult
from faxgate.inbound import InboundReceiver
from faxgate.service import Service
from faxgate.trunks.base import FaxIdentity
from faxgate.trunks.loopback import LoopbackTrunk
from tests.conftest import ApiClient, wait_for
from tests.fax_documents import make_fax_tiff

FAXBOX_NUMBER = "+12125550142"
CALLER = "+13125550199"


class Receiving:
    """The real receive path: loopback trunk, inbound receiver and renderer."""

    def __init__(self, service: Service, renderer: DocumentRenderer) -> None:
        self.received: list[dict[str, Any]] = []
        self.receiver = InboundReceiver(service.context, renderer, self._on_received)
        self.trunk = LoopbackTrunk(service.config.data_dir, rules=[], channels=2)
        self.trunk.set_inbound_handler(self.receiver)

    async def _on_received(self, account_id: str, faxbox: dict[str, Any], doc: dict[str, Any],
                           pdf: Path | None, tiff: Path | None) -> None:
        self.received.append(doc)

    async def send(self, tiff: Path, destination: str = FAXBOX_NUMBER) -> FaxResult:
        identity = FaxIdentity(station_id=CALLER, header_text="inbound test", caller_id=CALLER)
        return await self.trunk.send(tiff, identity, destination)


@pytest.fixture
async def renderer() -> AsyncIterator[DocumentRenderer]:
    renderer = DocumentRenderer(RenderLimits(), workers=1)
    try:
        yield renderer
    finally:
        await renderer.close()


@pytest.fixture
async def receiving(service: Service, renderer: DocumentRenderer) -> AsyncIterator[Receiving]:
    path = Receiving(service, renderer)
    await path.receiver.start()
    try:
        yield path
    finally:
        await path.trunk.close()


async def make_faxbox(api: ApiClient, **fields: Any) -> dict[str, Any]:
    status, body = await api.request(
        "PUT",
        api.account_path("/faxboxes"),
        {"data": {"name": "Reception", "caller_id": FAXBOX_NUMBER, **fields}},
    )
    assert status == 201, body
    faxbox: dict[str, Any] = body["data"]
    return faxbox


async def test_received_fax_in_inbox(
    api: ApiClient, receiving: Receiving, tmp_path: Path
) -> None:
    faxbox = await make_faxbox(api)
    tiff = make_fax_tiff(tmp_path / "three.tif", pages=3, resolution="fine")

    result = await receiving.send(tiff)

    assert result.success, result.error_message
    status, body = await api.request("GET", api.account_path("/faxes/inbox"))
    assert status == 200
    assert len(body["data"]) == 1
    row = body["data"][0]
    assert row["faxbox_id"] == faxbox["id"]
    assert row["from"] == CALLER
    assert row["to"] == FAXBOX_NUMBER
    assert row["pages"] == 3

    status, body = await api.request("GET", api.account_path(f"/faxes/inbox/{row['id']}"))
    assert status == 200
    fax = body["data"]
    assert fax["status"] == "received"
    assert fax["rx_result"]["success"] is True
    assert fax["rx_result"]["pages_sent"] == 3
    assert fax["rx_result"]["fax_speed"] == 14400
    assert fax["remote_station_id"] == CALLER
    assert len(receiving.received) == 1

    status, _ = await api.request("GET", api.account_path("/faxes/incoming"))
    assert status == 200


async def test_inbox_pdf_page_sizes(
    api: ApiClient, receiving: Receiving, tmp_path: Path, http: Any
) -> None:
    await make_faxbox(api)
    tiff = make_fax_tiff(tmp_path / "two.tif", pages=2, resolution="standard")
    assert (await receiving.send(tiff)).success

    _, body = await api.request("GET", api.account_path("/faxes/inbox"))
    fax_id = body["data"][0]["id"]
    async with http.get(
        api.base_url + api.account_path(f"/faxes/inbox/{fax_id}/attachment"),
        headers={"X-Auth-Token": api.token},
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/pdf"
        assert f"fax-{fax_id}.pdf" in response.headers["Content-Disposition"]
        pdf = pypdf.PdfReader(io.BytesIO(await response.read()))

    assert len(pdf.pages) == 2
    for page in pdf.pages:
        width_in = float(page.mediabox.width) / 72
        height_in = float(page.mediabox.height) / 72
        # 1728 dots at 204 dpi wide; the test pages are A4 length.
        assert width_in == pytest.approx(1728 / 204, abs=0.05)
        assert height_in == pytest.approx(11.69, abs=0.3)

    async with http.get(
        api.base_url + api.account_path(f"/faxes/inbox/{fax_id}/attachment?format=tiff"),
        headers={"X-Auth-Token": api.token},
    ) as response:
        assert response.status == 200
        image = Image.open(io.BytesIO(await response.read()))
        assert image.n_frames == 2
        assert image.size[0] == 1728


async def test_incoming_shows_progress(
    api: ApiClient, receiving: Receiving, tmp_path: Path
) -> None:
    await make_faxbox(api)
    tiff = make_fax_tiff(tmp_path / "ten.tif", pages=10, resolution="standard")
    call = asyncio.create_task(receiving.send(tiff))

    seen: list[int] = []

    async def progress_rising() -> bool:
        status, body = await api.request("GET", api.account_path("/faxes/incoming"))
        assert status == 200
        for row in body["data"]:
            status, detail = await api.request(
                "GET", api.account_path(f"/faxes/incoming/{row['id']}")
            )
            if status == 200:
                pages = detail["data"]["progress"].get("pages_received", 0)
                if not seen or pages != seen[-1]:
                    seen.append(pages)
        return len(seen) >= 3 or call.done()

    await wait_for(progress_rising, within=120, interval=0.005)
    result = await call

    assert result.success
    assert seen == sorted(seen)
    assert len(set(seen)) >= 2
    status, body = await api.request("GET", api.account_path("/faxes/incoming"))
    assert status == 200
    assert body["data"] == []


def failed_result() -> FaxResult:
    return FaxResult(
        success=False, result_code=48, result_text="The call dropped prematurely",
        error_message="The call dropped prematurely", pages_sent=0, pages_total=0,
        time_elapsed=0.1, call_duration=12.0, fax_speed=0, fax_error_correction=False,
        fax_receiver_id="", fax_bad_rows=0, ecm_retries=0, resolution="", encoding="",
        hangup_cause="line_error", remote_station_id=CALLER,
    )


async def test_failed_reception_dropped_by_default(
    api: ApiClient, receiving: Receiving
) -> None:
    await make_faxbox(api)
    sink = await receiving.receiver.offer(FAXBOX_NUMBER, CALLER)
    assert sink is not None
    status, body = await api.request("GET", api.account_path("/faxes/incoming"))
    assert status == 200
    assert len(body["data"]) == 1

    await sink.on_complete(failed_result())

    _, body = await api.request("GET", api.account_path("/faxes/inbox"))
    assert body["data"] == []
    _, body = await api.request("GET", api.account_path("/faxes/incoming"))
    assert body["data"] == []
    assert not sink.tiff_path.parent.exists()


async def test_failed_reception_kept_on_request(
    api: ApiClient, receiving: Receiving
) -> None:
    await make_faxbox(api, keep_failed_receptions=True)
    sink = await receiving.receiver.offer(FAXBOX_NUMBER, CALLER)
    assert sink is not None

    await sink.on_complete(failed_result())

    _, body = await api.request("GET", api.account_path("/faxes/inbox"))
    assert len(body["data"]) == 1
    status, detail = await api.request(
        "GET", api.account_path(f"/faxes/inbox/{body['data'][0]['id']}")
    )
    assert status == 200
    assert detail["data"]["status"] == "failed"
    assert detail["data"]["error"] == "The call dropped prematurely"
    assert detail["data"]["rx_result"]["hangup_cause"] == "line_error"


async def test_unknown_number_not_offered(receiving: Receiving) -> None:
    assert await receiving.receiver.offer("+13125550100", CALLER) is None


async def test_other_account_sees_nothing(
    api: ApiClient, service: Service, receiving: Receiving, tmp_path: Path, http: Any
) -> None:
    await make_faxbox(api)
    assert (await receiving.send(make_fax_tiff(tmp_path / "one.tif", pages=1))).success
    _, body = await api.request("GET", api.account_path("/faxes/inbox"))
    fax_id = body["data"][0]["id"]

    _, other_key = await service.store.create_account("other")
    other = ApiClient(http, service.http_url)
    await other.authenticate(other_key)

    status, body = await other.request("GET", other.account_path("/faxes/inbox"))
    assert status == 200
    assert body["data"] == []
    status, _ = await other.request("GET", other.account_path(f"/faxes/inbox/{fax_id}"))
    assert status == 404
    status, _ = await other.request(
        "GET", other.account_path(f"/faxes/inbox/{fax_id}/attachment")
    )
    assert status == 404
    status, _ = await other.request("DELETE", other.account_path(f"/faxes/inbox/{fax_id}"))
    assert status == 404
    status, _ = await api.request("GET", api.account_path(f"/faxes/inbox/{fax_id}"))
    assert status == 200


async def test_delete_attachment_keeps_record(
    api: ApiClient, receiving: Receiving, tmp_path: Path
) -> None:
    await make_faxbox(api)
    assert (await receiving.send(make_fax_tiff(tmp_path / "one.tif", pages=1))).success
    _, body = await api.request("GET", api.account_path("/faxes/inbox"))
    fax_id = body["data"][0]["id"]

    status, _ = await api.request("DELETE", api.account_path(f"/faxes/inbox/{fax_id}/attachment"))
    assert status == 200
    status, body = await api.request(
        "GET", api.account_path(f"/faxes/inbox/{fax_id}/attachment")
    )
    assert status == 400
    status, body = await api.request("GET", api.account_path(f"/faxes/inbox/{fax_id}"))
    assert status == 200
    assert body["data"]["attachments_deleted"] is True

    status, _ = await api.request("DELETE", api.account_path(f"/faxes/inbox/{fax_id}"))
    assert status == 200
    status, _ = await api.request("GET", api.account_path(f"/faxes/inbox/{fax_id}"))
    assert status == 404

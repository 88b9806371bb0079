"""Faxes sent over REST and by mail to a local faxbox's number arrive in its inbox."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pypdf
import pypdfium2
import pytest
from PIL import Image, TiffImagePlugin
from smtp_corpus import make_pdf, pdf_message
from smtp_support import create_faxbox, send_mail, smtplog_rows, wait_for_outbox_completed

from faxgate.adapters import build_pipeline
from faxgate.service import Service
from tests.conftest import ApiClient, make_config, wait_for

FAXBOX_NUMBER = "+12125550142"
SENDER = "alice@example.com"


async def download(api: ApiClient, http: aiohttp.ClientSession, path: str) -> bytes:
    async with http.get(
        api.base_url + api.account_path(path), headers={"X-Auth-Token": api.token or ""}
    ) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def inbox_fax(api: ApiClient, count: int) -> list[dict[str, Any]]:
    async def arrived() -> list[dict[str, Any]] | None:
        status, body = await api.request("GET", api.account_path("/faxes/inbox?ascending=true"))
        assert status == 200
        return body["data"] if len(body["data"]) >= count else None

    rows: list[dict[str, Any]] = await wait_for(arrived, within=120, interval=0.2)
    return rows


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [(float(page.mediabox.width), float(page.mediabox.height)) for page in reader.pages]


async def test_rest_fax_to_local_faxbox(
    api: ApiClient, http: aiohttp.ClientSession
) -> None:
    faxbox = await create_faxbox(api, caller_id=FAXBOX_NUMBER, fax_identity="FRONT DESK")
    status, body = await api.request(
        "PUT",
        api.account_path(f"/faxes?to_number={FAXBOX_NUMBER}&from_number=%2B13125550100"),
        data=make_pdf(3),
        headers={"Content-Type": "application/pdf"},
    )
    assert status in (200, 201), body
    sent = await wait_for_outbox_completed(api, body["data"]["id"])
    assert sent["tx_result"]["pages_sent"] == 3
    assert sent["tx_result"]["fax_receiver_id"] == "FRONT DESK"

    (row,) = await inbox_fax(api, 1)
    assert row["faxbox_id"] == faxbox["id"]
    assert row["pages"] == 3
    assert row["to"] == FAXBOX_NUMBER

    received_pdf = await download(api, http, f"/faxes/inbox/{row['id']}/attachment")
    sent_pdf = await download(api, http, f"/faxes/outbox/{sent['id']}/attachment")
    received_sizes = page_sizes(received_pdf)
    assert len(received_sizes) == 3
    for (width, height), (sent_width, sent_height) in zip(
        received_sizes, page_sizes(sent_pdf), strict=True
    ):
        assert width == pytest.approx(1728 / 204 * 72, abs=1)
        assert width == pytest.approx(sent_width, abs=1)
        assert height == pytest.approx(sent_height, abs=2)


async def test_mailed_fax_to_local_faxbox(
    service: Service, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    faxbox = await create_faxbox(
        api, caller_id=FAXBOX_NUMBER, smtp_permission_list=[SENDER]
    )
    recipient = f"{FAXBOX_NUMBER}@{faxbox['smtp_email_address']}"

    result = await send_mail(service.smtp_port or 0, SENDER, [recipient], pdf_message(pages=2))

    assert result.data_code == 250
    (entry,) = await smtplog_rows(api)
    _, log = await api.request("GET", api.account_path(f"/faxes/smtplog/{entry['id']}"))
    await wait_for_outbox_completed(api, log["data"]["fax_id"])
    (row,) = await inbox_fax(api, 1)
    assert row["pages"] == 2
    reader = pypdf.PdfReader(
        io.BytesIO(await download(api, http, f"/faxes/inbox/{row['id']}/attachment"))
    )
    assert len(reader.pages) == 2


async def test_forward_completes(api: ApiClient, http: aiohttp.ClientSession) -> None:
    await create_faxbox(api, caller_id=FAXBOX_NUMBER)
    status, body = await api.request(
        "PUT",
        api.account_path(f"/faxes?to_number={FAXBOX_NUMBER}&from_number=%2B13125550100"),
        data=make_pdf(2),
        headers={"Content-Type": "application/pdf"},
    )
    assert status in (200, 201), body
    await wait_for_outbox_completed(api, body["data"]["id"])
    (row,) = await inbox_fax(api, 1)

    status, body = await api.request(
        "PUT",
        api.account_path(f"/faxes/inbox/{row['id']}"),
        {"action": "forward", "data": {"to_number": "(312) 555-0177"}},
    )

    assert status == 201, body
    forwarded = await wait_for_outbox_completed(api, body["data"]["id"])
    assert forwarded["to_number"] == "+13125550177"
    assert forwarded["tx_result"]["pages_sent"] == 2
    assert forwarded["forwarded_from"] == row["id"]


async def test_forward_rejects_bad_input(api: ApiClient) -> None:
    await create_faxbox(api, caller_id=FAXBOX_NUMBER)
    status, body = await api.request(
        "PUT",
        api.account_path(f"/faxes?to_number={FAXBOX_NUMBER}&from_number=%2B13125550100"),
        data=make_pdf(1),
        headers={"Content-Type": "application/pdf"},
    )
    await wait_for_outbox_completed(api, body["data"]["id"])
    (row,) = await inbox_fax(api, 1)
    path = api.account_path(f"/faxes/inbox/{row['id']}")

    status, body = await api.request("PUT", path, {"action": "forward", "data": {}})
    assert status == 400
    assert "required" in body["data"]["data.to_number"]

    status, body = await api.request(
        "PUT", path, {"action": "forward", "data": {"to_number": "12"}}
    )
    assert status == 400
    assert "format" in body["data"]["to_number"]

    status, body = await api.request("PUT", path, {"action": "shred", "data": {}})
    assert status == 400
    assert "enum" in body["data"]["action"]


def mixed_tiff(path: Path) -> list[tuple[float, float]]:
    """Write a TIFF with fine, standard, Legal and short pages; return their sizes in inches."""
    pages = [
        (196, 2292),  # fine A4-length: 11.69 in
        (98, 1146),  # standard A4-length
        (196, 2744),  # fine Legal: 14 in
        (98, 300),  # a short standard page: 3.06 in
    ]
    # Writing frame by frame keeps each page's own resolution, which save_all would not.
    with TiffImagePlugin.AppendingTiffWriter(str(path), new=True) as writer:
        for y_dpi, rows in pages:
            image = Image.new("1", (1728, rows), 1)
            # A black bar across the top eighth of the page, to check black stays black.
            image.paste(0, (0, 0, 1728, rows // 8))
            image.save(writer, format="TIFF", compression="group4", dpi=(204, y_dpi))
            writer.newFrame()
    return [(1728 / 204, rows / y_dpi) for y_dpi, rows in pages]


async def test_received_pages_keep_geometry(tmp_path: Path) -> None:
    pipeline = build_pipeline(make_config(tmp_path / "data"))
    try:
        tiff = tmp_path / "mixed.tif"
        expected = mixed_tiff(tiff)
        pdf = tmp_path / "mixed.pdf"
        pages = await pipeline.render_tiff_to_pdf(tiff, pdf)
    finally:
        await pipeline.close()

    assert pages == 4
    sizes = page_sizes(pdf.read_bytes())
    assert len(sizes) == 4
    document = pypdfium2.PdfDocument(pdf)
    try:
        for index, ((width, height), (want_width, want_height)) in enumerate(
            zip(sizes, expected, strict=True)
        ):
            assert width / 72 == pytest.approx(want_width, abs=0.05), index
            assert height / 72 == pytest.approx(want_height, abs=0.1), index
            bitmap = document[index].render(scale=0.5).to_pil().convert("L")
            top = bitmap.getpixel((bitmap.width // 2, 2))
            bottom = bitmap.getpixel((bitmap.width // 2, bitmap.height - 3))
            assert isinstance(top, int)
            assert isinstance(bottom, int)
            assert top < 64, f"page {index} top bar is not black"
            assert bottom > 192, f"page {index} blank area is not white"
    finally:
        document.close()


async def test_forward_action_inside_data(api: ApiClient) -> None:
    await create_faxbox(api, caller_id=FAXBOX_NUMBER)
    status, body = await api.request(
        "PUT",
        api.account_path(f"/faxes?to_number={FAXBOX_NUMBER}&from_number=%2B13125550100"),
        data=make_pdf(1),
        headers={"Content-Type": "application/pdf"},
    )
    assert status in (200, 201), body
    await wait_for_outbox_completed(api, body["data"]["id"])
    (row,) = await inbox_fax(api, 1)

    # Some Kazoo clients send the action inside the data envelope.
    status, body = await api.request(
        "PUT",
        api.account_path(f"/faxes/inbox/{row['id']}"),
        {"data": {"action": "forward", "data": {"to_number": "+13125550177"}}},
    )

    assert status == 201, body
    assert body["data"]["to_number"] == "+13125550177"

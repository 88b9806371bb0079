"""Notifications end to end: the whole service sends faxes and mails and calls back the results.

Each test runs a real Service in this process: the loopback trunk with the
spandsp modem, the document renderer, the worker, the SMTP gateway and the
notifier. An aiosmtpd sink on 127.0.0.1 plays the smarthost, and an aiohttp
server on 127.0.0.1 receives the callbacks. The tests read what a user sees:
the mail in the sink, the callback requests, and the API's fax records.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from pypdf import PdfReader

from faxgate.service import Service
from faxgate.store.notifications import SENT, Notification
from tests.conftest import REPO, ApiClient, make_config, wait_for
from tests.notify_support import (
    CallbackReceiver,
    ReceivedMail,
    SmtpSink,
    expected_signature,
    free_port,
    parts_by_type,
)
from tests.smtp_corpus import make_pdf, pdf_message
from tests.smtp_support import (
    create_faxbox,
    send_mail,
    smtplog_entry,
    smtplog_rows,
    wait_for_outbox,
    wait_for_outbox_completed,
)

NOTIFY_SENDER = "faxgate@fax.example"
TO = "+12125550123"
FROM = "+12125550100"
# The loopback rules below make every number starting with this busy.
BUSY_TO = "+12125550199"
FAXBOX_NUMBER = "+12125550142"
ALICE = "alice@example.com"
OFFICE = "office@example.com"
# Seconds within which a finished fax's notifications must all be delivered.
DELIVERY_WITHIN = 20.0


@dataclass
class Running:
    service: Service
    api: ApiClient
    account_id: str

    @property
    def smtp_port(self) -> int:
        assert self.service.smtp_port is not None
        return self.service.smtp_port


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    server = CallbackReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def start(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Start]:
    """Return a function that starts a whole service mailing through 127.0.0.1:`smarthost_port`."""
    services: list[Service] = []

    async def factory(smarthost_port: int, **sections: dict[str, Any]) -> Running:
        settings: dict[str, dict[str, Any]] = {
            "notify": {
                "smarthost": "127.0.0.1",
                "port": smarthost_port,
                "security": "none",
                "sender": NOTIFY_SENDER,
                "retry_delay": 0.2,
                "retry_delay_max": 1.0,
                "timeout": 5.0,
                "templates_dir": str(REPO / "config" / "templates"),
            },
            "fetch": {"allow_networks": ["127.0.0.0/8"]},
            # Standard resolution halves the modem's work, and no test here needs fine.
            "fax": {"resolution": "standard"},
            "worker": {
                "poll_interval": 0.05,
                "retry_delay": 0.2,
                "busy_retry_delay": 0.2,
                "retry_delay_max": 2.0,
            },
            "loopback": {"rules": [{"pattern": "+1212555019*", "behaviour": "busy"}]},
            "documents": {"workers": 1},
            "log": {"level": "INFO"},
        }
        for section, values in sections.items():
            settings.setdefault(section, {}).update(values)
        config = make_config(tmp_path / f"data{len(services)}", **settings)
        service = Service(config)
        await service.start()
        services.append(service)
        account, api_key = await service.store.create_account("e2e")
        api = ApiClient(http, service.http_url)
        await api.authenticate(api_key)
        return Running(service, api, account["id"])

    yield factory
    for service in services:
        await service.stop()


async def submit_multipart(api: ApiClient, fields: dict[str, Any], pdf: bytes) -> str:
    """Queue a fax with PUT /faxes as a JSON part and a PDF part; return the job id."""
    with aiohttp.MultipartWriter("mixed") as body:
        body.append_json({"data": fields})
        part = body.append(pdf, {"Content-Type": "application/pdf"})
        part.set_content_disposition("attachment", filename="letter.pdf")
        status, answer = await api.request("PUT", api.account_path("/faxes"), data=body)
    assert status == 201, answer
    return str(answer["data"]["id"])


async def submit_raw_pdf(api: ApiClient, faxbox_id: str, pdf: bytes) -> str:
    """Queue a fax for a faxbox with PUT /faxes and the PDF as the whole body."""
    query = f"?to_number={TO}&faxbox_id={faxbox_id}".replace("+", "%2B")
    status, answer = await api.request(
        "PUT", api.account_path("/faxes" + query), data=pdf,
        headers={"Content-Type": "application/pdf"},
    )
    assert status == 201, answer
    return str(answer["data"]["id"])


async def delivered(service: Service, fax_id: str, count: int) -> list[Notification]:
    """Wait until the fax's notifications are all sent; check that there are `count`.

    Once every notification of a finished fax is sent, nothing more for it
    can reach the sink, so the sink's count is final.
    """

    async def all_sent() -> list[Notification] | None:
        rows = await service.store.list_notifications(fax_id=fax_id)
        if len(rows) >= count and all(row.status == SENT for row in rows):
            return rows
        return None

    rows: list[Notification] = await wait_for(all_sent, within=DELIVERY_WITHIN)
    queued = [(row.channel, row.recipient) for row in rows]
    assert len(rows) == count, f"expected {count} notifications of fax {fax_id}, got {queued}"
    return rows


def mails_about(sink: SmtpSink, fax_id: str) -> list[ReceivedMail]:
    return [mail for mail in sink.messages if mail.message["X-Faxgate-Fax-Id"] == fax_id]


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None, "the mail has no text/plain part"
    text = body.get_content()
    assert isinstance(text, str)
    return text


def pdf_pages(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)


def attached_pdf(message: EmailMessage) -> bytes:
    (part,) = parts_by_type(message)["application/pdf"]
    content = part.get_content()
    assert isinstance(content, bytes)
    return content


async def email_fax(running: Running, faxbox: dict[str, Any], sender: str, raw: bytes) -> str:
    """Mail `raw` from `sender` to TO at the faxbox; return the id of the queued job."""
    recipient = f"{TO.lstrip('+')}@{faxbox['smtp_email_address']}"
    result = await send_mail(running.smtp_port, sender, [recipient], raw)
    assert result.refused == {}
    assert result.data_code == 250, result.data_reply
    (row,) = await smtplog_rows(running.api)
    entry = await smtplog_entry(running.api, row["id"])
    assert entry["status"] == "accepted", entry
    return str(entry["fax_id"])


async def test_rest_fax_mails_result(start: Start, sink: SmtpSink) -> None:
    running = await start(sink.port)
    fields = {
        "to_number": TO,
        "from_number": FROM,
        "notifications": {"email": {"send_to": ["Ops@Example.com"]}},
    }

    job_id = await submit_multipart(running.api, fields, make_pdf(2))
    fax = await wait_for_outbox_completed(running.api, job_id, within=60, interval=0.1)
    await delivered(running.service, fax["id"], 1)

    (mail,) = sink.messages
    assert mail.recipients == ["Ops@example.com"]
    assert mail.envelope_sender == NOTIFY_SENDER
    message = mail.message
    assert message["Subject"] == f"Fax to {TO} sent"
    assert message["X-Faxgate-Fax-Id"] == fax["id"]
    body = plain_text(message)
    assert f"Your fax to {TO} was sent." in body
    assert "Pages sent:  2 of 2" in body
    # The loopback far end sends its own number as its station id (CSI).
    assert f"Far end id:  {TO}" in body
    assert "Attempts:    1" in body
    assert "Attached: fax-to-12125550123.pdf" in body
    assert pdf_pages(attached_pdf(message)) == 2
    (png,) = parts_by_type(message)["image/png"]
    preview = Image.open(io.BytesIO(png.get_content()))
    assert preview.format == "PNG"
    cid = png["Content-ID"].strip("<>")
    (html,) = parts_by_type(message)["text/html"]
    assert f'src="cid:{cid}"' in html.get_content()


async def test_busy_fax_mails_once_at_end(start: Start, sink: SmtpSink) -> None:
    # The pause before the second attempt is long enough to look at the
    # waiting job several times.
    running = await start(sink.port, worker={"busy_retry_delay": 3.0})
    fields = {
        "to_number": BUSY_TO,
        "from_number": FROM,
        "retries": 2,
        "notifications": {"email": {"send_to": OFFICE}},
    }
    job_id = await submit_multipart(running.api, fields, make_pdf(1))

    async def waiting_for_retry() -> dict[str, Any] | None:
        status, body = await running.api.request(
            "GET", running.api.account_path(f"/faxes/outgoing/{job_id}")
        )
        if status != 200:
            return None
        job: dict[str, Any] = body["data"]
        # `retry_after` is shown only while no worker has claimed the job.
        waiting = job["status"] == "pending" and "retry_after" in job
        return job if waiting and job["attempts"] == 1 else None

    await wait_for(waiting_for_retry, within=60, interval=0.02)
    # Give a wrongly queued notification time to be delivered.
    await asyncio.sleep(0.5)
    still_waiting = await waiting_for_retry()
    assert still_waiting is not None, "the second attempt started too early to check"
    assert await running.service.store.list_notifications() == []
    assert sink.messages == []

    fax = await wait_for_outbox(running.api, job_id, within=30, interval=0.1)
    assert fax["status"] == "failed"
    assert fax["attempts"] == 2
    await delivered(running.service, fax["id"], 1)
    (mail,) = sink.messages
    assert mail.recipients == [OFFICE]
    message = mail.message
    assert message["Subject"] == f"Fax to {BUSY_TO} failed"
    body = plain_text(message)
    assert f"Your fax to {BUSY_TO} could not be sent." in body
    assert "Reason: The line was busy." in body
    assert "Attempts:    2" in body
    assert "Pages sent:  0 of 1" in body


async def test_inbound_fax_mailed_and_signed(
    start: Start, sink: SmtpSink, receiver: CallbackReceiver
) -> None:
    running = await start(sink.port)
    notifications = {
        "inbound": {
            "email": {"send_to": ["reception@example.com"]},
            "callback": {"url": receiver.url("/inbound"), "method": "post", "type": "json"},
        }
    }
    faxbox = await create_faxbox(
        running.api, name="Reception", caller_id=FAXBOX_NUMBER, notifications=notifications
    )

    fields = {"to_number": FAXBOX_NUMBER, "from_number": FROM}
    job_id = await submit_multipart(running.api, fields, make_pdf(2))
    await wait_for_outbox_completed(running.api, job_id, within=60, interval=0.1)

    status, inbox = await running.api.request("GET", running.api.account_path("/faxes/inbox"))
    assert status == 200
    (entry,) = inbox["data"]
    assert entry["faxbox_id"] == faxbox["id"]
    assert entry["pages"] == 2
    await delivered(running.service, entry["id"], 2)

    (mail,) = sink.messages
    assert mail.recipients == ["reception@example.com"]
    message = mail.message
    assert message["Subject"] == f"Fax received from {FROM}"
    assert message["X-Faxgate-Fax-Id"] == entry["id"]
    body = plain_text(message)
    assert f"You received a fax on {FAXBOX_NUMBER}." in body
    assert f"From:        {FROM}" in body
    # The sending job's station id (TSI) is its from_number.
    assert f"Far end id:  {FROM}" in body
    assert "Pages:       2" in body
    assert pdf_pages(attached_pdf(message)) == 2

    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/inbound"
    secret = await running.service.store.get_callback_secret(running.account_id)
    assert secret is not None
    assert hmac.compare_digest(
        request.headers["X-Faxgate-Signature"], expected_signature(secret, request)
    )
    assert abs(int(request.headers["X-Faxgate-Timestamp"]) - time.time()) < 60
    payload = json.loads(request.body)
    assert payload["event"] == "inbound_received"
    assert payload["account_id"] == running.account_id
    assert payload["faxbox_id"] == faxbox["id"]
    assert payload["fax_id"] == entry["id"]
    assert payload["fax"]["from_number"] == FROM
    assert payload["fax"]["rx_result"]["success"] is True


async def test_unrenderable_mail_notifies_sender(start: Start, sink: SmtpSink) -> None:
    # The gateway checks only that the PDF opens; the page limit is enforced
    # when the worker renders it.
    running = await start(sink.port, documents={"max_pages": 2})
    faxbox = await create_faxbox(running.api, smtp_permission_list=[ALICE])
    raw = pdf_message(ALICE, "<contract-1@example.com>", pages=3, subject="Contract")

    job_id = await email_fax(running, faxbox, ALICE, raw)
    fax = await wait_for_outbox(running.api, job_id, within=60, interval=0.1)
    assert fax["status"] == "failed"
    assert fax["attempts"] == 1
    await delivered(running.service, fax["id"], 1)

    (mail,) = sink.messages
    assert mail.recipients == [ALICE]
    # aiosmtpd reports the null reverse-path of MAIL FROM:<> as "<>".
    assert mail.envelope_sender == "<>"
    message = mail.message
    assert message["Subject"] == f"Your fax to {TO} could not be sent"
    assert message["In-Reply-To"] == "<contract-1@example.com>"
    assert message["Auto-Submitted"] == "auto-replied"
    body = plain_text(message)
    assert f'Your mail "Contract" to {TO} reached the fax gateway' in body
    assert "more than the limit of 2" in body
    assert "nothing was sent" in body


async def test_open_faxbox_sends_no_backscatter(start: Start, sink: SmtpSink) -> None:
    running = await start(sink.port, documents={"max_pages": 2})
    faxbox = await create_faxbox(
        running.api,
        smtp_allow_all_senders=True,
        notifications={"outbound": {"email": {"send_to": [OFFICE]}}},
    )
    forged = "victim@forged.example"
    raw = pdf_message(forged, "<forged-1@forged.example>", pages=3)

    job_id = await email_fax(running, faxbox, forged, raw)
    fax = await wait_for_outbox(running.api, job_id, within=60, interval=0.1)
    assert fax["status"] == "failed"
    # The faxbox's own address still hears of the failure, which shows that
    # the notifications of this fax were queued.
    await delivered(running.service, fax["id"], 1)

    (mail,) = sink.messages
    assert mail.recipients == [OFFICE]
    assert mail.message["Subject"] == f"Fax to {TO} failed"
    assert "more than the limit of 2" in plain_text(mail.message)
    assert not [mail for mail in sink.messages if forged in mail.recipients]


async def test_emailed_fax_mails_sender(start: Start, sink: SmtpSink) -> None:
    running = await start(sink.port)
    faxbox = await create_faxbox(running.api, smtp_permission_list=[ALICE])

    job_id = await email_fax(running, faxbox, ALICE, pdf_message(ALICE, pages=1))
    fax = await wait_for_outbox_completed(running.api, job_id, within=60, interval=0.1)
    await delivered(running.service, fax["id"], 1)

    (mail,) = sink.messages
    assert mail.recipients == [ALICE]
    assert mail.envelope_sender == NOTIFY_SENDER
    message = mail.message
    assert message["Subject"] == f"Fax to {TO} sent"
    assert "Pages sent:  1 of 1" in plain_text(message)
    assert pdf_pages(attached_pdf(message)) == 1


async def test_smarthost_down_then_up(start: Start) -> None:
    port = free_port()
    running = await start(port)
    faxbox = await create_faxbox(
        running.api, notifications={"outbound": {"email": {"send_to": [OFFICE]}}}
    )

    job_ids = [await submit_raw_pdf(running.api, faxbox["id"], make_pdf(1)) for _ in range(3)]
    faxes = [
        await wait_for_outbox_completed(running.api, job_id, within=90, interval=0.1)
        for job_id in job_ids
    ]
    fax_ids = sorted(fax["id"] for fax in faxes)

    async def all_deferred() -> bool:
        rows = await running.service.store.list_notifications()
        return len(rows) == 3 and all(row.attempts >= 1 and row.last_error for row in rows)

    async def mail_check() -> str:
        status, health = await running.api.request("GET", "/health")
        assert status == 200, health
        return str(health["checks"]["notifier"]["mail"])

    await wait_for(all_deferred, within=DELIVERY_WITHIN)
    assert await mail_check() == "deferred"
    sink = SmtpSink()
    await sink.start(port)
    try:
        for fax_id in fax_ids:
            await delivered(running.service, fax_id, 1)

        async def mail_ok() -> bool:
            return await mail_check() == "ok"

        await wait_for(mail_ok, within=5)
        # Another retry period, in which a repeated delivery would arrive.
        await asyncio.sleep(1.0)
    finally:
        await sink.stop()

    assert len(sink.messages) == 3
    assert sorted(mail.message["X-Faxgate-Fax-Id"] for mail in sink.messages) == fax_ids
    for fax_id in fax_ids:
        (mail,) = mails_about(sink, fax_id)
        assert mail.recipients == [OFFICE]
        assert mail.message["Subject"] == f"Fax to {TO} sent"

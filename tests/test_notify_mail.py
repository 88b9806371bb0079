"""Notification mail through a real aiosmtpd smarthost on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from faxgate.notify import Notifier
from faxgate.store.notifications import EMAIL, FAILED, SENT
from tests.conftest import REPO, make_config, start_service, wait_for
from tests.notify_support import (
    SENDER,
    SMTP_PASSWORD,
    SMTP_USER,
    NotifierHarness,
    SmtpSink,
    TlsFiles,
    faxbox,
    faxgate_log_text,
    free_port,
    make_pdf,
    make_tiff,
    make_tls_files,
    outgoing_fax,
    parts_by_type,
    received_fax,
    running_notifier,
)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def harness(tmp_path: Path, sink: SmtpSink) -> AsyncIterator[NotifierHarness]:
    async with running_notifier(tmp_path, smtp_port=sink.port) as running:
        yield running


async def wait_for_mail(sink: SmtpSink, count: int) -> None:
    async def arrived() -> bool:
        return len(sink.messages) >= count

    await wait_for(arrived, within=15)


async def test_success_mail_over_starttls_auth(
    tmp_path: Path, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = SmtpSink(tls_files, starttls=True, auth=True)
    await sink.start()
    notify = {
        "security": "starttls",
        "ca_file": str(tls_files.cert),
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
    }
    pdf = make_pdf(tmp_path / "sent.pdf")
    box = faxbox(outbound={"email": {"send_to": ["Office@Example.com", "sender@example.com"]}})
    fax = outgoing_fax()
    try:
        async with running_notifier(tmp_path, smtp_port=sink.port, notify=notify) as running:
            await running.notifier.fax_finished(running.account_id, box, fax, pdf)
            await wait_for_mail(sink, 2)
    finally:
        await sink.stop()

    assert sorted(mail.recipients[0] for mail in sink.messages) == [
        "Office@example.com",
        "sender@example.com",
    ]
    mail = sink.messages[0]
    assert mail.tls
    assert mail.authenticated
    assert mail.envelope_sender == SENDER
    message = mail.message
    assert message["Subject"] == "Fax to +12125550123 sent"
    assert message["From"] == SENDER
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@fax.example>")
    assert message["Date"]
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    body = text.get_content()
    assert "2024-07-01 14:00:00 CEST" in body
    assert "2 of 2" in body
    assert "1 min 12 s" in body
    assert "+1 212 555 0123" in body
    logged = faxgate_log_text(caplog)
    assert "notify.sent" in logged
    assert SMTP_PASSWORD not in logged


async def test_success_mail_attaches_pdf_and_preview(
    tmp_path: Path, sink: SmtpSink, harness: NotifierHarness
) -> None:
    pdf = make_pdf(tmp_path / "sent.pdf")
    fax = outgoing_fax()
    await harness.notifier.fax_finished(harness.account_id, None, fax, pdf)
    await wait_for_mail(sink, 1)

    parts = parts_by_type(sink.messages[0].message)
    (attachment,) = parts["application/pdf"]
    assert attachment.get_filename() == "fax-to-12125550123.pdf"
    assert attachment.get_content() == pdf.read_bytes()
    (image,) = parts["image/png"]
    cid = image["Content-ID"].strip("<>")
    (html,) = parts["text/html"]
    assert f'src="cid:{cid}"' in html.get_content()
    preview = Image.open(io.BytesIO(image.get_content()))
    assert preview.width == 300
    darkest, _ = preview.convert("L").getextrema()
    assert isinstance(darkest, int)
    assert darkest < 50, "the black rectangle is missing from the preview"
    assert "multipart/related" in parts


async def test_failure_mail_gives_reason(
    tmp_path: Path, sink: SmtpSink, harness: NotifierHarness
) -> None:
    fax = outgoing_fax(
        "failed",
        attempts=3,
        tx_result={
            "success": False,
            "error_message": "no answer from the far end after 3 attempts",
            "hangup_cause": "USER_BUSY",
            "pages_sent": 0,
            "pages_total": 2,
        },
    )
    await harness.notifier.fax_finished(harness.account_id, None, fax, make_pdf(tmp_path / "a.pdf"))
    await wait_for_mail(sink, 1)

    message = sink.messages[0].message
    assert message["Subject"] == "Fax to +12125550123 failed"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    body = text.get_content()
    assert "Reason: The line was busy." in body
    assert "0 of 2" in body
    assert "Attempts:    3" in body
    assert "hangup cause USER_BUSY" in body


async def test_attachments_off_sends_no_document(
    tmp_path: Path, sink: SmtpSink, harness: NotifierHarness
) -> None:
    box = faxbox(outbound={"email": {"attach_document": False}})
    fax = outgoing_fax()
    await harness.notifier.fax_finished(harness.account_id, box, fax, make_pdf(tmp_path / "a.pdf"))
    await wait_for_mail(sink, 1)

    parts = parts_by_type(sink.messages[0].message)
    assert "application/pdf" not in parts
    assert "image/png" not in parts
    text = sink.messages[0].message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Document attachments are turned off" in text.get_content()


async def test_fax_finished_twice_mails_once(
    tmp_path: Path, sink: SmtpSink
) -> None:
    fax = outgoing_fax(notifications={"email": {"send_to": ["a@example.com", "b@example.com"]}})
    pdf = make_pdf(tmp_path / "a.pdf")
    async with running_notifier(tmp_path, smtp_port=sink.port) as running:
        await running.notifier.fax_finished(running.account_id, None, fax, pdf)
        await running.notifier.fax_finished(running.account_id, None, fax, pdf)
        await wait_for_mail(sink, 2)
    # A new notifier on the same store, as after a restart, queues nothing again.
    async with running_notifier(tmp_path, smtp_port=sink.port) as running:
        await running.notifier.fax_finished(running.account_id, None, fax, pdf)
        rows = await running.store.list_notifications(fax_id=fax["id"])
        await asyncio.sleep(0.5)

    assert len(sink.messages) == 2
    assert len(rows) == 2
    assert {row.status for row in rows} == {SENT}
    payloads = list((tmp_path / "data" / "notifications").iterdir())
    assert payloads == []


async def test_retry_status_is_rejected(harness: NotifierHarness) -> None:
    fax = outgoing_fax("pending")

    with pytest.raises(ValueError, match="completed or failed"):
        await harness.notifier.fax_finished(harness.account_id, None, fax, None)

    assert await harness.store.list_notifications(fax_id=fax["id"]) == []


async def test_inbound_mail_attaches_pdf(
    tmp_path: Path, sink: SmtpSink, harness: NotifierHarness
) -> None:
    pdf = make_pdf(tmp_path / "received.pdf", pages=1)
    box = faxbox(inbound={"email": {"send_to": "inbox@example.com"}})
    fax = received_fax()
    await harness.notifier.fax_received(harness.account_id, box, fax, pdf, None)
    await wait_for_mail(sink, 1)

    mail = sink.messages[0]
    assert mail.recipients == ["inbox@example.com"]
    message = mail.message
    assert message["Subject"] == "Fax received from +14155550199"
    parts = parts_by_type(message)
    (attachment,) = parts["application/pdf"]
    assert attachment.get_content() == pdf.read_bytes()
    assert attachment.get_filename() == "fax-from-14155550199.pdf"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "SENDER CO" in text.get_content()
    assert "2024-07-01 14:00:00 CEST" in text.get_content()


async def test_inbound_mail_tiff_format(
    tmp_path: Path, sink: SmtpSink, harness: NotifierHarness
) -> None:
    pdf = make_pdf(tmp_path / "received.pdf", pages=1)
    tiff = make_tiff(tmp_path / "received.tif")
    box = faxbox(
        inbound={"email": {"send_to": "inbox@example.com", "attachment_format": "tiff"}}
    )
    await harness.notifier.fax_received(harness.account_id, box, received_fax(), pdf, tiff)
    await wait_for_mail(sink, 1)

    parts = parts_by_type(sink.messages[0].message)
    assert "application/pdf" not in parts
    (attachment,) = parts["image/tiff"]
    assert attachment.get_content() == tiff.read_bytes()
    (image,) = parts["image/png"]
    preview = Image.open(io.BytesIO(image.get_content()))
    assert preview.width == 300
    # At 204 x 98 dpi each pixel is about twice as tall as wide, so the preview is taller.
    assert preview.height == round(1100 * (204 / 98) * 300 / 1728)


async def test_smtp_failure_notice_to_sender(
    sink: SmtpSink, harness: NotifierHarness
) -> None:
    box = faxbox()
    record = {
        "id": "202407-" + "a" * 32,
        "to_number": "+12125550123",
        "subject": "Invoice 42",
        "message_id": "<original-42@client.example>",
    }
    await harness.notifier.smtp_failure(
        harness.account_id, box, "alice@client.example", record,
        "the attachment invoice.docx is password protected", sender_allowed=True,
    )
    await wait_for_mail(sink, 1)

    mail = sink.messages[0]
    assert mail.recipients == ["alice@client.example"]
    # aiosmtpd reports the null reverse-path of MAIL FROM:<> as "<>".
    assert mail.envelope_sender == "<>"
    message = mail.message
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<original-42@client.example>"
    assert message["Subject"] == "Your fax to +12125550123 could not be sent"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Reason: The attachment invoice.docx is password protected." in text.get_content()
    assert '"Invoice 42"' in text.get_content()


async def test_disallowed_sender_gets_no_notice(
    sink: SmtpSink, harness: NotifierHarness
) -> None:
    box = faxbox()
    forged = {"id": "202407-" + "b" * 32, "to_number": "+12125550123"}
    allowed = {"id": "202407-" + "c" * 32, "to_number": "+12125550123"}
    await harness.notifier.smtp_failure(
        harness.account_id, box, "victim@forged.example", forged, "render failed",
        sender_allowed=False,
    )
    await harness.notifier.smtp_failure(
        harness.account_id, box, "alice@client.example", allowed, "render failed",
        sender_allowed=True,
    )
    await wait_for_mail(sink, 1)
    await asyncio.sleep(0.3)

    assert [mail.recipients for mail in sink.messages] == [["alice@client.example"]]
    assert await harness.store.list_notifications(fax_id=forged["id"]) == []


async def test_smarthost_down_then_up(tmp_path: Path) -> None:
    port = free_port()
    faxes = [outgoing_fax(notifications={"email": {"send_to": f"user{i}@example.com"}})
             for i in range(3)]
    sink = SmtpSink()
    async with running_notifier(tmp_path, smtp_port=port) as running:
        for fax in faxes:
            await running.notifier.fax_finished(running.account_id, None, fax, None)

        async def all_deferred() -> bool:
            rows = await running.store.list_notifications()
            return len(rows) == 3 and all(row.attempts >= 2 for row in rows)

        await wait_for(all_deferred, within=15)
        health = running.notifier.health()
        assert health["mail"] == "deferred"
        assert health["status"] == "ok"

        await sink.start(port)
        try:
            await wait_for_mail(sink, 3)
            # Longer than retry_delay_max, so a second copy would have been sent by now.
            await asyncio.sleep(1.0)
            rows = await running.store.list_notifications()
        finally:
            await sink.stop()

    assert sorted(mail.recipients[0] for mail in sink.messages) == [
        "user0@example.com", "user1@example.com", "user2@example.com",
    ]
    message_ids = [mail.message["Message-ID"] for mail in sink.messages]
    assert len(set(message_ids)) == 3
    assert {row.status for row in rows} == {SENT}
    assert all(row.last_error is None for row in rows)


async def test_refused_recipient_fails_for_good(
    tmp_path: Path, sink: SmtpSink, harness: NotifierHarness
) -> None:
    sink.handler.refuse["nobody@example.com"] = "550 5.1.1 No such user"
    fax = outgoing_fax(
        notifications={"email": {"send_to": ["nobody@example.com", "ok@example.com"]}}
    )
    await harness.notifier.fax_finished(harness.account_id, None, fax, None)
    await wait_for_mail(sink, 1)

    async def refused_recorded() -> bool:
        rows = await harness.store.list_notifications(fax_id=fax["id"], status=FAILED)
        return len(rows) == 1

    await wait_for(refused_recorded, within=10)
    await asyncio.sleep(0.6)
    (row,) = await harness.store.list_notifications(fax_id=fax["id"], status=FAILED)
    assert row.recipient == "nobody@example.com"
    assert row.attempts == 1
    assert row.last_error is not None
    assert "550" in row.last_error
    assert [mail.recipients for mail in sink.messages] == [["ok@example.com"]]
    assert (harness.data_dir / row.payload_path).is_file()


async def test_temporary_refusal_is_retried(
    sink: SmtpSink, harness: NotifierHarness
) -> None:
    sink.handler.refuse_once["later@example.com"] = "451 4.3.0 Try again later"
    fax = outgoing_fax(notifications={"email": {"send_to": "later@example.com"}})
    await harness.notifier.fax_finished(harness.account_id, None, fax, None)
    await wait_for_mail(sink, 1)

    async def sent() -> bool:
        rows = await harness.store.list_notifications(fax_id=fax["id"], status=SENT)
        return len(rows) == 1

    await wait_for(sent, within=10)
    (row,) = await harness.store.list_notifications(fax_id=fax["id"])
    assert row.channel == EMAIL
    assert row.attempts == 2
    assert len(sink.messages) == 1


async def test_implicit_tls_delivers(tmp_path: Path, tls_files: TlsFiles) -> None:
    sink = SmtpSink(tls_files, implicit_tls=True)
    await sink.start()
    notify = {"security": "tls", "ca_file": str(tls_files.cert)}
    try:
        async with running_notifier(tmp_path, smtp_port=sink.port, notify=notify) as running:
            await running.notifier.fax_finished(running.account_id, None, outgoing_fax(), None)
            await wait_for_mail(sink, 1)
    finally:
        await sink.stop()

    assert sink.messages[0].tls


async def test_untrusted_certificate_defers(tmp_path: Path, tls_files: TlsFiles) -> None:
    sink = SmtpSink(tls_files, starttls=True)
    await sink.start()
    fax = outgoing_fax()
    try:
        # No ca_file: the self-signed certificate is not in the system's CA store.
        async with running_notifier(
            tmp_path, smtp_port=sink.port, notify={"security": "starttls"}
        ) as running:
            await running.notifier.fax_finished(running.account_id, None, fax, None)

            async def deferred() -> bool:
                (row,) = await running.store.list_notifications(fax_id=fax["id"])
                return row.attempts >= 1

            await wait_for(deferred, within=10)
            (row,) = await running.store.list_notifications(fax_id=fax["id"])
    finally:
        await sink.stop()

    assert sink.messages == []
    assert row.status == "queued"
    assert row.last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error


async def test_service_starts_notifier(tmp_path: Path, sink: SmtpSink) -> None:
    config = make_config(
        tmp_path / "data",
        notify={"smarthost": "127.0.0.1", "port": sink.port, "security": "none",
                "sender": SENDER, "templates_dir": str(REPO / "config" / "templates")},
    )
    service = await start_service(config)
    try:
        account, _ = await service.store.create_account("service")
        notifier = service.context.components["notifier"]
        assert isinstance(notifier, Notifier)
        await notifier.fax_finished(account["id"], None, outgoing_fax(), None)
        await wait_for_mail(sink, 1)
        async with aiohttp.ClientSession() as http, http.get(service.http_url + "/health") as reply:
            health = await reply.json()
    finally:
        await service.stop()

    assert health["checks"]["notifier"] == {"status": "ok", "mail": "ok"}
    assert sink.messages[0].message["Subject"] == "Fax to +12125550123 sent"


async def test_restart_sends_queued_and_cleans(tmp_path: Path, sink: SmtpSink) -> None:
    fax = outgoing_fax()
    port = free_port()
    async with running_notifier(tmp_path, smtp_port=port) as running:
        await running.notifier.fax_finished(running.account_id, None, fax, None)
        (row,) = await running.store.list_notifications(fax_id=fax["id"])
    payloads = tmp_path / "data" / "notifications"
    # A payload written just before a crash, whose row was never saved.
    (payloads / "0123456789abcdef0123456789abcdef.eml").write_bytes(b"orphan")

    async with running_notifier(tmp_path, smtp_port=sink.port) as running:
        await wait_for_mail(sink, 1)
        await asyncio.sleep(0.3)

    assert len(sink.messages) == 1
    assert sink.messages[0].message["Message-ID"] == row.doc["message_id"]
    assert list(payloads.iterdir()) == []

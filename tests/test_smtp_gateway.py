"""End-to-end tests of the email-to-fax gateway: smtplib (and swaks) against a running service.

Each test sends real SMTP to the service on 127.0.0.1, then reads the queued
job from the store and the smtplog through the REST API.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import pytest
from conftest import ApiClient, make_config, start_service, wait_for
from PIL import Image
from pypdf import PdfReader
from smtp_corpus import (
    CORPUS,
    SENDER,
    CorpusCase,
    password_pdf,
    pdf_message,
    text_labelled_pdf,
    text_only,
    truncated_pdf,
    unsupported_only,
)
from smtp_support import (
    RawSmtp,
    create_faxbox,
    send_mail,
    smtplog_entry,
    smtplog_rows,
    wait_for_outbox_completed,
)

from faxgate.service import Service
from faxgate.smtp.mime import ExtractOptions, extract_documents
from faxgate.store.faxes import ATTACHING_FILES

PERMISSIONS = [
    "alice@example.com",
    "*@partner.example.net",
    "*@*.branch.example.org",
    "josé@exämple.org",
]


@pytest.fixture
async def faxbox(api: ApiClient) -> dict[str, Any]:
    return await create_faxbox(
        api,
        caller_name="Front Desk",
        fax_timezone="America/New_York",
        retries=2,
        smtp_permission_list=PERMISSIONS,
    )


def address(number: str, faxbox: dict[str, Any]) -> str:
    return f"{number}@{faxbox['smtp_email_address']}"


async def entries_for(api: ApiClient) -> list[dict[str, Any]]:
    rows = await smtplog_rows(api)
    return [await smtplog_entry(api, row["id"]) for row in reversed(rows)]


async def job_of(service: Service, entry: dict[str, Any]) -> dict[str, Any]:
    return await service.store.get_fax_row(entry["account_id"], entry["fax_id"])


def pages_of(documents: list[Any]) -> int:
    total = 0
    for document in documents:
        if document.detected_type == "pdf":
            total += len(PdfReader(io.BytesIO(document.data)).pages)
        else:
            total += 1
    return total


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
async def test_corpus_message_queues_job(
    service: Service, api: ApiClient, case: CorpusCase
) -> None:
    faxbox = await create_faxbox(
        api, smtp_permission_list=PERMISSIONS, smtp_fax_text_body=case.fax_text_body
    )
    raw = case.build()

    result = await send_mail(service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], raw)

    assert result.refused == {}
    assert result.data_code == 250, result.data_reply
    (entry,) = await entries_for(api)
    assert entry["status"] == "accepted"
    job = await job_of(service, entry)
    assert job["status"] == ATTACHING_FILES
    assert job["to_number"] == "+12125550123"
    message = await service.store.get_smtp_message(job["message_id"])
    assert message is not None
    stored = await asyncio.to_thread(Path(message.path).read_bytes)
    assert stored == raw
    extraction = extract_documents(stored, ExtractOptions.from_doc(job["doc"]["extract_options"]))
    assert [(d.filename, d.detected_type) for d in extraction.documents] == case.documents
    assert pages_of(extraction.documents) == case.pages
    assert [doc.get("filename") for doc in entry["documents"] if "skipped" not in doc] == [
        name for name, _type in case.documents
    ]
    outbox = await wait_for_outbox_completed(api, entry["fax_id"])
    assert outbox["tx_result"]["success"] is True
    assert outbox["tx_result"]["pages_sent"] == case.pages


async def test_job_fields_from_faxbox(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    raw = pdf_message(subject="Quarterly report")

    result = await send_mail(service.smtp_port or 0, SENDER, [address("212-555-0123", faxbox)], raw)

    assert result.data_code == 250
    (entry,) = await entries_for(api)
    job = await job_of(service, entry)
    doc = job["doc"]
    assert doc["to_number"] == "+12125550123"
    assert doc["from_number"] == "+12125550100"
    assert doc["from_name"] == "Front Desk"
    assert doc["faxbox_id"] == faxbox["id"]
    assert doc["retries"] == 2
    assert doc["fax_timezone"] == "America/New_York"
    assert doc["notifications"] == {"email": {"send_to": [SENDER]}}
    assert doc["source"] == "email"
    assert doc["smtplog_id"] == entry["id"]
    assert doc["subject"] == "Quarterly report"
    assert doc["original_number"] == "212-555-0123"
    assert entry["translated_number"] == "+12125550123"
    assert entry["original_number"] == "212-555-0123"
    assert entry["header_from"] == f"Alice <{SENDER}>"
    assert entry["message_id"] == "<pdf@example.com>"
    assert entry["smtp_code"] == 250
    assert entry["smtp_reply"].startswith("250 2.0.0")
    assert entry["remote_ip"] == "127.0.0.1"
    assert entry["helo"] == "client.example.com"
    assert entry["errors"] == []
    assert entry["documents"][0]["pages"] == 1


async def test_two_recipients_and_unknown_domain(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    recipients = [
        address("2125550123", faxbox),
        address("+1 212 555 0124".replace(" ", ""), faxbox),
        "2125550125@nobody.example.net",
    ]

    result = await send_mail(service.smtp_port or 0, SENDER, recipients, pdf_message())

    assert list(result.refused) == ["2125550125@nobody.example.net"]
    code, reply = result.refused["2125550125@nobody.example.net"]
    assert code == 550
    assert reply.startswith(b"5.1.2")
    assert result.data_code == 250
    entries = await entries_for(api)
    assert [e["translated_number"] for e in entries] == ["+12125550123", "+12125550124"]
    fax_ids = {entry["fax_id"] for entry in entries}
    assert len(fax_ids) == 2
    system = await service.store.list_smtplog_entries(None, limit=10)
    assert [e["to"] for e in system] == ["2125550125@nobody.example.net"]
    assert system[0]["smtp_code"] == 550
    assert system[0]["account_id"] is None


async def test_system_log_cli(service: Service, api: ApiClient, faxbox: dict[str, Any]) -> None:
    unknown = "2125550125@unknown.example.net"
    await send_mail(service.smtp_port or 0, SENDER, [unknown], pdf_message())

    env = {**os.environ, "FAXGATE_STORAGE_DATA_DIR": service.config.storage.data_dir}
    completed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "faxgate.cli", "smtplog", "--system"],
        capture_output=True,
        env=env,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    output = completed.stdout.decode()
    assert unknown in output
    assert "5.1.2" in output


async def test_sender_case_variant_allowed(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    sender = "ALICE@Example.COM"

    result = await send_mail(
        service.smtp_port or 0, sender, [address("2125550123", faxbox)], pdf_message(sender)
    )

    assert result.refused == {}
    assert result.data_code == 250


@pytest.mark.parametrize(
    "sender",
    ["alice@example.com.evil.example.net", "alice@evil-example.com", "xalice@example.com"],
)
async def test_lookalike_sender_refused(
    service: Service, api: ApiClient, faxbox: dict[str, Any], sender: str
) -> None:
    recipient = address("2125550123", faxbox)

    result = await send_mail(service.smtp_port or 0, sender, [recipient], pdf_message(sender))

    code, reply = result.refused[recipient]
    assert code == 550
    assert reply.startswith(b"5.7.1")
    (row,) = await smtplog_rows(api)
    assert row["from"] == sender
    assert "not allowed" in row["error"]


async def test_wildcard_senders_allowed(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    for sender in ("bob@partner.example.net", "carol@east.branch.example.org"):
        result = await send_mail(
            service.smtp_port or 0, sender, [address("2125550123", faxbox)],
            pdf_message(sender, message_id=f"<{sender}>"),
        )
        assert result.data_code == 250, (sender, result)


async def test_smtputf8_sender_allowed(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    sender = "josé@exämple.org"
    raw = pdf_message(sender, header_from=f"José <{sender}>")

    result = await send_mail(
        service.smtp_port or 0, sender, [address("2125550123", faxbox)], raw,
        mail_options=["SMTPUTF8"],
    )

    assert result.refused == {}
    assert result.data_code == 250, result.data_reply
    (entry,) = await entries_for(api)
    assert entry["from"] == sender
    assert entry["header_from"] == f"José <{sender}>"


async def test_quoted_local_part_routes(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    recipient = f'"+1 (212) 555-0123"@{faxbox["smtp_email_address"].upper()}'

    result = await send_mail(service.smtp_port or 0, SENDER, [recipient], pdf_message())

    assert result.refused == {}
    assert result.data_code == 250
    (entry,) = await entries_for(api)
    assert entry["original_number"] == "+1 (212) 555-0123"
    assert entry["translated_number"] == "+12125550123"


async def test_custom_domain_routes(service: Service, api: ApiClient) -> None:
    faxbox = await create_faxbox(
        api, custom_smtp_email_address="Fax.Example.ORG", smtp_permission_list=PERMISSIONS
    )

    result = await send_mail(
        service.smtp_port or 0, SENDER, ["2125550123@FAX.example.org"], pdf_message()
    )

    assert result.data_code == 250
    (entry,) = await entries_for(api)
    assert entry["faxbox_id"] == faxbox["id"]


async def test_invalid_number_refused(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    recipient = address("12345", faxbox)

    result = await send_mail(service.smtp_port or 0, SENDER, [recipient], pdf_message())

    code, reply = result.refused[recipient]
    assert code == 550
    assert reply.startswith(b"5.1.1")
    assert b"12345" in reply
    (row,) = await smtplog_rows(api)
    assert "12345" in row["error"]


async def test_null_sender_refused(service: Service, faxbox: dict[str, Any]) -> None:
    client = await RawSmtp.connect(service.smtp_port or 0)
    try:
        await client.command("EHLO client.example.com")
        reply = await client.command("MAIL FROM:<>")
    finally:
        await client.close()

    assert reply.startswith("550 5.7.1")
    system = await service.store.list_smtplog_entries(None, limit=10)
    assert system[0]["from"] == ""
    assert system[0]["smtp_code"] == 550


# MAIL lines that name no mailbox, and the smtplog "from" each is logged with.
# `swaks --from '""'` sends the quoted empty form MAIL FROM:<"">.
NULL_SENDER_LINES = [
    ("MAIL FROM:<>", ""),
    ("MAIL FROM: <>", ""),
    ("mail from:<>", ""),
    ("MAIL FROM:<> SIZE=123", ""),
    ("MAIL FROM:<> BODY=8BITMIME", ""),
    ("MAIL FROM:< >", ""),
    ('MAIL FROM:<"">', '""'),
    ('MAIL FROM:<"" > SIZE=123', '""'),
    ('MAIL FROM:<""@example.com>', '""@example.com'),
    ('MAIL FROM:""@example.com', "@example.com"),
    ('MAIL FROM:<"\\ "@example.com>', '" "@example.com'),
]


@pytest.fixture
async def open_faxbox(api: ApiClient) -> dict[str, Any]:
    return await create_faxbox(api, smtp_allow_all_senders=True)


def _mail_and_rcpt(port: int, mail_line: str, recipient: str) -> tuple[int, bytes, int]:
    """Send the exact MAIL line, then RCPT, and return the MAIL reply and the RCPT code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        mail_code, mail_reply = client.docmd(mail_line)
        rcpt_code, _ = client.docmd(f"RCPT TO:<{recipient}>")
    return mail_code, mail_reply, rcpt_code


@pytest.mark.parametrize(("line", "logged_from"), NULL_SENDER_LINES)
async def test_null_sender_forms_refused(
    service: Service, api: ApiClient, open_faxbox: dict[str, Any], line: str, logged_from: str
) -> None:
    recipient = address("2125550123", open_faxbox)

    mail_code, mail_reply, rcpt_code = await asyncio.to_thread(
        _mail_and_rcpt, service.smtp_port or 0, line, recipient
    )

    assert mail_code == 550, mail_reply
    assert mail_reply.startswith(b"5.7.1 The null sender <>")
    assert rcpt_code == 503  # no transaction was opened
    (entry,) = await service.store.list_smtplog_entries(None, limit=10)
    assert entry["from"] == logged_from
    assert entry["smtp_code"] == 550
    assert entry["faxbox_id"] is None
    assert await smtplog_rows(api) == []
    assert await service.store.count_faxes_by_status() == {}


async def test_quoted_sender_still_accepted(
    service: Service, api: ApiClient, open_faxbox: dict[str, Any]
) -> None:
    recipient = address("2125550123", open_faxbox)

    mail_code, mail_reply, rcpt_code = await asyncio.to_thread(
        _mail_and_rcpt, service.smtp_port or 0, 'MAIL FROM:<"front desk"@example.com>', recipient
    )

    assert mail_code == 250, mail_reply
    assert rcpt_code == 250


async def test_header_from_mismatch_refused(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    raw = pdf_message(header_from="Mallory <mallory@evil.example.net>")

    result = await send_mail(service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], raw)

    assert result.data_code == 550
    assert result.data_reply.startswith(b"5.7.1")
    assert b"mallory@evil.example.net" in result.data_reply
    (entry,) = await entries_for(api)
    assert entry["status"] == "refused"
    assert entry["fax_id"] is None


async def test_header_from_check_can_be_off(service: Service, api: ApiClient) -> None:
    faxbox = await create_faxbox(
        api, smtp_permission_list=PERMISSIONS, smtp_check_header_from=False
    )
    raw = pdf_message(header_from="Mallory <mallory@evil.example.net>")

    result = await send_mail(service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], raw)

    assert result.data_code == 250


async def test_empty_permission_list_refuses(service: Service, api: ApiClient) -> None:
    closed = await create_faxbox(api, smtp_permission_list=[])
    open_box = await create_faxbox(api, smtp_permission_list=[], smtp_allow_all_senders=True)

    result = await send_mail(
        service.smtp_port or 0,
        SENDER,
        [address("2125550123", closed), address("2125550123", open_box)],
        pdf_message(),
    )

    assert list(result.refused) == [address("2125550123", closed)]
    assert result.data_code == 250


async def test_redelivered_message_id_not_faxed_twice(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    raw = pdf_message(message_id="<same-id@example.com>")
    recipient = address("2125550123", faxbox)

    first = await send_mail(service.smtp_port or 0, SENDER, [recipient], raw)
    second = await send_mail(service.smtp_port or 0, SENDER, [recipient], raw)

    assert first.data_code == 250
    assert second.data_code == 250
    original, duplicate = await entries_for(api)
    assert original["status"] == "accepted"
    assert duplicate["status"] == "duplicate"
    assert duplicate["duplicate_of"] == original["fax_id"]
    assert duplicate["fax_id"] is None
    folder = Path(service.config.storage.data_dir) / "messages"
    assert len(await asyncio.to_thread(lambda: list(folder.glob("*.eml")))) == 1
    status, answer = await api.request(
        "GET", api.account_path(f"/faxes/smtplog/{duplicate['id']}")
    )
    assert status == 200
    assert answer["data"]["smtp_code"] == 250


async def test_same_number_twice_one_fax(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    recipients = [address("2125550123", faxbox), address("+1-212-555-0123", faxbox)]

    result = await send_mail(service.smtp_port or 0, SENDER, recipients, pdf_message())

    assert result.refused == {}
    assert result.data_code == 250
    first, second = await entries_for(api)
    assert first["status"] == "accepted"
    assert second["status"] == "duplicate"
    assert second["duplicate_of"] == first["fax_id"]


async def test_text_refused_without_permission(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    result = await send_mail(
        service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], text_only()
    )

    assert result.data_code == 554
    assert result.data_reply.startswith(b"5.6.1")
    (row,) = await smtplog_rows(api)
    assert "does not fax message text" in row["error"]


@pytest.mark.parametrize(
    ("build", "enhanced", "words"),
    [
        (password_pdf, b"5.6.0", b"locked.pdf is password-protected"),
        # This machine has no LibreOffice, so office files are refused at once.
        (unsupported_only, b"5.6.1", b"numbers.xlsx: office documents cannot be faxed"),
        (text_labelled_pdf, b"5.6.1", b"x.pdf: labelled as a PDF file, but its content is plain"),
        (truncated_pdf, b"5.6.1", b"scan.pdf: the PDF file is truncated"),
    ],
    ids=["password_protected", "unsupported_only", "text_labelled_pdf", "truncated_pdf"],
)
async def test_unfaxable_message_refused(
    service: Service,
    api: ApiClient,
    faxbox: dict[str, Any],
    build: Any,
    enhanced: bytes,
    words: bytes,
) -> None:
    result = await send_mail(
        service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], build()
    )

    assert result.data_code == 554
    assert result.data_reply.startswith(enhanced)
    assert words in result.data_reply
    (entry,) = await entries_for(api)
    assert entry["status"] == "refused"
    assert entry["smtp_code"] == 554


async def test_mislabelled_pdf_logs_content_type(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    result = await send_mail(
        service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], text_labelled_pdf()
    )

    assert result.data_code == 554
    (entry,) = await entries_for(api)
    (document,) = entry["documents"]
    assert document["filename"] == "x.pdf"
    assert document["detected_type"] == "text"
    assert document["skipped_kind"] == "mislabelled"


async def test_damaged_image_failure_names_file(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    photo = io.BytesIO()
    Image.effect_noise((400, 300), 60).save(photo, "JPEG")
    whole = photo.getvalue()
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{SENDER}>"
    message["Subject"] = "two photos"
    message.set_content("Photos attached.")
    message.add_attachment(whole, maintype="image", subtype="jpeg", filename="wibble1.jpg")
    message.add_attachment(
        whole[: len(whole) // 2], maintype="image", subtype="jpeg", filename="wibble2.JPG"
    )

    result = await send_mail(
        service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], message.as_bytes()
    )

    assert result.data_code == 250, result.data_reply
    (entry,) = await entries_for(api)

    async def finished() -> Any:
        status, answer = await api.request(
            "GET", api.account_path(f"/faxes/outbox/{entry['fax_id']}")
        )
        return answer["data"] if status == 200 else None

    outbox = await wait_for(finished, within=60, interval=0.5)
    assert outbox["status"] == "failed"
    reason = outbox["tx_result"]["error_message"]
    assert reason.startswith("wibble2.JPG: "), reason
    assert "damaged" in reason


async def test_unreadable_mime_refused(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    raw = (
        b"From: alice@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed\r\n\r\nno boundary anywhere\r\n"
    )

    result = await send_mail(service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], raw)

    assert result.data_code == 554
    assert result.data_reply.startswith(b"5.6.0")


async def test_size_over_limit_refused_at_mail(tmp_path: Path) -> None:
    service = await start_service(
        make_config(tmp_path / "data", smtp={"max_message_size": 10_000})
    )
    try:
        client = await RawSmtp.connect(service.smtp_port or 0)
        ehlo = await client.command("EHLO client.example.com")
        reply = await client.command("MAIL FROM:<alice@example.com> SIZE=20000")
        await client.close()
    finally:
        await service.stop()

    assert "250-SIZE 10000" in ehlo
    assert "250-PIPELINING" in ehlo
    assert "250-8BITMIME" in ehlo
    assert "250-SMTPUTF8" in ehlo
    assert reply.startswith("552 5.3.4")
    assert "10000" in reply


async def test_smtplog_listing_and_detail(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    other = await create_faxbox(api, smtp_permission_list=PERMISSIONS)
    await send_mail(service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], pdf_message())
    await send_mail(
        service.smtp_port or 0, "eve@evil.example.net", [address("2125550123", other)],
        pdf_message("eve@evil.example.net"),
    )

    rows = await smtplog_rows(api)
    nested = await smtplog_rows(api, f"/faxboxes/{faxbox['id']}/faxes/smtplog")
    other_rows = await smtplog_rows(api, f"/faxboxes/{other['id']}/faxes/smtplog")

    assert len(rows) == 2
    refused, accepted = rows
    assert set(accepted) == {"id", "from", "to", "created"}
    assert set(refused) == {"id", "from", "to", "created", "error"}
    assert accepted["id"][:6].isdigit()
    assert accepted["id"][6] == "-"
    assert accepted["created"] > 63_000_000_000
    assert [row["id"] for row in nested] == [accepted["id"]]
    assert [row["id"] for row in other_rows] == [refused["id"]]
    status, _ = await api.request(
        "GET", api.account_path(f"/faxboxes/{other['id']}/faxes/smtplog/{accepted['id']}")
    )
    assert status == 404
    status, _ = await api.request("GET", api.account_path("/faxes/smtplog/not-an-id"))
    assert status == 404


async def test_smtplog_hidden_from_other_account(
    service: Service, api: ApiClient, faxbox: dict[str, Any], http: Any
) -> None:
    await send_mail(service.smtp_port or 0, SENDER, [address("2125550123", faxbox)], pdf_message())
    (row,) = await smtplog_rows(api)
    _created, other_key = await service.store.create_account("other")
    other = ApiClient(http, service.http_url)
    await other.authenticate(other_key)

    status, _ = await other.request("GET", other.account_path(f"/faxes/smtplog/{row['id']}"))

    assert status == 404
    assert await smtplog_rows(other) == []


def ensure_swaks() -> str:
    """Return the swaks path, installing the Debian package first when it is missing."""
    found = shutil.which("swaks")
    if found:
        return found
    if os.geteuid() != 0:
        raise AssertionError("swaks is missing; install it with: sudo apt-get install -y swaks")
    install = ["apt-get", "install", "-y", "-qq", "swaks"]
    if subprocess.run(install, timeout=300).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
        subprocess.run(install, check=True, timeout=300)
    found = shutil.which("swaks")
    assert found, "apt-get install swaks did not provide a swaks command"
    return found


async def test_swaks_message_queues_job(
    service: Service, api: ApiClient, faxbox: dict[str, Any], tmp_path: Path
) -> None:
    from smtp_corpus import make_pdf

    swaks = ensure_swaks()
    document = tmp_path / "letter.pdf"
    document.write_bytes(make_pdf(2))

    completed = await asyncio.to_thread(
        subprocess.run,
        [
            swaks, "--server", f"127.0.0.1:{service.smtp_port}", "--from", SENDER,
            "--to", address("1-212-555-0123", faxbox), "--helo", "swaks.example.com",
            "--attach-type", "application/pdf", "--attach", f"@{document}",
        ],
        capture_output=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stdout.decode() + completed.stderr.decode()
    (entry,) = await entries_for(api)
    assert entry["status"] == "accepted"
    assert entry["helo"] == "swaks.example.com"
    assert [doc["filename"] for doc in entry["documents"]] == ["letter.pdf"]
    assert entry["documents"][0]["pages"] == 2


async def test_swaks_quoted_empty_sender_refused(
    service: Service, api: ApiClient, open_faxbox: dict[str, Any], tmp_path: Path
) -> None:
    from smtp_corpus import make_pdf

    swaks = ensure_swaks()
    document = tmp_path / "letter.pdf"
    document.write_bytes(make_pdf(1))

    completed = await asyncio.to_thread(
        subprocess.run,
        [
            swaks,
            "--server",
            f"127.0.0.1:{service.smtp_port}",
            "--from",
            '""',
            "--h-From",
            SENDER,
            "--to",
            address("2125550123", open_faxbox),
            "--helo",
            "swaks.example.com",
            "--attach-type",
            "application/pdf",
            "--attach",
            f"@{document}",
        ],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )

    transcript = completed.stdout.decode() + completed.stderr.decode()
    assert ' -> MAIL FROM:<"">' in transcript
    assert "<** 550 5.7.1" in transcript
    assert completed.returncode == 23, transcript  # swaks: error in MAIL transaction
    assert await smtplog_rows(api) == []
    assert await service.store.count_faxes_by_status() == {}


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _login_and_send(
    port: int, cert: Path, username: str, password: str, recipient: str
) -> tuple[int, bytes]:
    import smtplib

    context = ssl.create_default_context(cafile=str(cert))
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        client.starttls(context=context)
        client.ehlo("client.example.com")
        try:
            client.login(username, password)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code, exc.smtp_error
        client.mail("robot@scanner.example.net")
        code, reply = client.rcpt(recipient)
        if code != 250:
            return code, reply
        return client.data(pdf_message("robot@scanner.example.net"))


async def test_starttls_auth_skips_permission_list(tmp_path: Path, http: Any) -> None:
    cert, key = await asyncio.to_thread(make_certificate, tmp_path)
    service = await start_service(
        make_config(tmp_path / "data", smtp={"tls_cert": str(cert), "tls_key": str(key)})
    )
    try:
        _account, api_key = await service.store.create_account("tls")
        api = ApiClient(http, service.http_url)
        await api.authenticate(api_key)
        faxbox = await create_faxbox(
            api, smtp_permission_list=[],
            smtp_auth={"username": "scanner-1", "password": "correct horse battery"},
        )
        recipient = address("2125550123", faxbox)
        port = service.smtp_port or 0

        refused = await send_mail(port, "robot@scanner.example.net", [recipient], pdf_message())
        wrong = await asyncio.to_thread(
            _login_and_send, port, cert, "scanner-1", "wrong password", recipient
        )
        patched, _ = await api.request(
            "PATCH", api.account_path(f"/faxboxes/{faxbox['id']}"),
            {"data": {"caller_name": "Scanner"}},
        )
        accepted = await asyncio.to_thread(
            _login_and_send, port, cert, "scanner-1", "correct horse battery", recipient
        )
        _status, shown = await api.request(
            "GET", api.account_path(f"/faxboxes/{faxbox['id']}")
        )
    finally:
        await service.stop()

    assert refused.refused[recipient][0] == 550
    assert wrong[0] == 535
    assert patched == 200
    assert accepted[0] == 250, accepted
    assert shown["data"]["smtp_auth"] == {"username": "scanner-1"}
    assert not any(key.startswith("pvt_") for key in shown["data"])
    assert "password" not in str(shown["data"])

"""SMTP protocol robustness: end of data, bare LF, long lines, pipelining, limits, shutdown.

These tests speak SMTP line by line over a raw socket, because smtplib
always sends well-formed data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ApiClient, make_config, start_service
from smtp_corpus import SENDER, pdf_message
from smtp_support import RawSmtp, create_faxbox, smtplog_rows

from faxgate.service import Service
from faxgate.smtp.protocol import BARE_LF_NORMALIZE, DataLimits, DataReader

LIMITS = DataLimits(max_size=10_000, max_line_length=998, bare_lf=BARE_LF_NORMALIZE)


async def gateway(tmp_path: Path, **smtp: Any) -> Service:
    return await start_service(make_config(tmp_path / "data", smtp=smtp))


@pytest.fixture
async def faxbox(api: ApiClient) -> dict[str, Any]:
    return await create_faxbox(api, smtp_permission_list=[SENDER], smtp_fax_text_body=True)


@pytest.fixture
async def client(service: Service) -> AsyncIterator[RawSmtp]:
    connection = await RawSmtp.connect(service.smtp_port or 0)
    await connection.command("EHLO client.example.com")
    yield connection
    await connection.close()


async def start_transaction(client: RawSmtp, faxbox: dict[str, Any]) -> None:
    assert (await client.command(f"MAIL FROM:<{SENDER}>")).startswith("250")
    recipient = f"2125550123@{faxbox['smtp_email_address']}"
    assert (await client.command(f"RCPT TO:<{recipient}>")).startswith("250")
    assert (await client.command("DATA")).startswith("354")


def text_message(body: str, subject: str = "note") -> bytes:
    head = f"From: {SENDER}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n\r\n"
    return head.encode() + body.encode()


async def stored_messages(service: Service) -> list[bytes]:
    folder = Path(service.config.storage.data_dir) / "messages"
    return [await asyncio.to_thread(path.read_bytes) for path in sorted(folder.glob("*.eml"))]


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\r\n.\n", b"\n.\r\n"],
    ids=["lf_dot_lf", "crlf_dot_lf", "lf_dot_crlf"],
)
async def test_bare_lf_dot_does_not_end_data(
    service: Service, api: ApiClient, faxbox: dict[str, Any], client: RawSmtp, fake_end: bytes
) -> None:
    await start_transaction(client, faxbox)
    recipient = f"2125550124@{faxbox['smtp_email_address']}"
    smuggled = (
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n"
        "From: alice@example.com\r\n\r\nsmuggled\r\n"
    ).encode()

    await client.send(text_message("first line") + fake_end + smuggled + b".\r\n")
    reply = await client.reply()
    after = await client.command("NOOP")

    assert reply.startswith("250 2.0.0"), reply
    assert after == "250 OK"
    rows = await smtplog_rows(api)
    assert len(rows) == 1
    assert rows[0]["to"] == f"2125550123@{faxbox['smtp_email_address']}"
    (stored,) = await stored_messages(service)
    assert b"RCPT TO:<2125550124@" in stored


async def test_bare_lf_lines_normalized(
    service: Service, faxbox: dict[str, Any], client: RawSmtp
) -> None:
    await start_transaction(client, faxbox)

    await client.send(b"From: alice@example.com\nSubject: lf\n\nline one\nline two\r\n.\r\n")
    reply = await client.reply()

    assert reply.startswith("250 2.0.0"), reply
    (stored,) = await stored_messages(service)
    assert stored == b"From: alice@example.com\r\nSubject: lf\r\n\r\nline one\r\nline two\r\n"


async def test_bare_lf_rejected_when_configured(tmp_path: Path, http: Any) -> None:
    service = await gateway(tmp_path, bare_lf="reject")
    try:
        _account, key = await service.store.create_account("strict")
        api = ApiClient(http, service.http_url)
        await api.authenticate(key)
        faxbox = await create_faxbox(api, smtp_permission_list=[SENDER])
        client = await RawSmtp.connect(service.smtp_port or 0)
        await client.command("EHLO client.example.com")
        await start_transaction(client, faxbox)
        await client.send(b"From: alice@example.com\nSubject: lf\n\nbody\r\n.\r\n")
        reply = await client.reply()
        after = await client.command("RSET")
        await client.close()
        rows = await smtplog_rows(api)
    finally:
        await service.stop()

    assert reply.startswith("500 5.5.2 Bare LF")
    assert after == "250 OK"
    assert "Bare LF" in rows[0]["error"]


async def test_long_line_refused_with_limit(
    service: Service, api: ApiClient, faxbox: dict[str, Any], client: RawSmtp
) -> None:
    await start_transaction(client, faxbox)

    await client.send(text_message("x" * 5000 + "\r\nshort line\r\n") + b".\r\n")
    reply = await client.reply()
    await start_transaction(client, faxbox)
    await client.send(text_message("fine", subject="second") + b"\r\n.\r\n")
    second = await client.reply()

    assert reply.startswith("500 5.5.2"), reply
    assert "998" in reply
    assert second.startswith("250 2.0.0"), second
    accepted_row, refused_row = await smtplog_rows(api)
    assert "998" in refused_row["error"]
    assert "error" not in accepted_row


async def test_line_of_exactly_limit_accepted(
    service: Service, faxbox: dict[str, Any], client: RawSmtp
) -> None:
    await start_transaction(client, faxbox)

    await client.send(text_message("." + "y" * 998 + "\r\n") + b".\r\n")
    reply = await client.reply()

    assert reply.startswith("250 2.0.0"), reply
    (stored,) = await stored_messages(service)
    assert stored.endswith(b"\r\n" + b"y" * 998 + b"\r\n")


async def test_pipelined_messages_on_one_connection(
    service: Service, api: ApiClient, faxbox: dict[str, Any]
) -> None:
    client = await RawSmtp.connect(service.smtp_port or 0)
    ehlo = await client.command("EHLO client.example.com")
    domain = faxbox["smtp_email_address"]
    commands = (
        f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<2125550123@{domain}>\r\n"
        f"RCPT TO:<2125550124@unknown.example.net>\r\nDATA\r\n"
    ).encode()

    await client.send(commands)
    replies = [await client.reply() for _ in range(4)]
    await client.send(text_message("one", subject="one") + b"\r\n.\r\n")
    first = await client.reply()
    await client.send(f"MAIL FROM:<{SENDER}>\r\nRSET\r\nMAIL FROM:<{SENDER}>\r\n".encode())
    reset = [await client.reply() for _ in range(3)]
    await client.send(f"RCPT TO:<2125550125@{domain}>\r\nDATA\r\n".encode())
    more = [await client.reply() for _ in range(2)]
    await client.send(text_message("two", subject="two") + b"\r\n.\r\n")
    second = await client.reply()
    await client.command("QUIT")
    await client.close()

    assert "250-PIPELINING" in ehlo
    assert [reply[:3] for reply in replies] == ["250", "250", "550", "354"]
    assert first.startswith("250 2.0.0")
    assert [reply[:3] for reply in reset] == ["250", "250", "250"]
    assert [reply[:3] for reply in more] == ["250", "354"]
    assert second.startswith("250 2.0.0")
    accepted = [row for row in await smtplog_rows(api) if "error" not in row]
    assert len(accepted) == 2


async def test_data_over_size_refused(tmp_path: Path, http: Any) -> None:
    service = await gateway(tmp_path, max_message_size=5_000)
    try:
        _account, key = await service.store.create_account("small")
        api = ApiClient(http, service.http_url)
        await api.authenticate(key)
        faxbox = await create_faxbox(api, smtp_permission_list=[SENDER])
        client = await RawSmtp.connect(service.smtp_port or 0)
        await client.command("EHLO client.example.com")
        await start_transaction(client, faxbox)
        await client.send(text_message("z" * 80 + "\r\n") * 100 + b".\r\n")
        reply = await client.reply()
        await client.close()
    finally:
        await service.stop()

    assert reply.startswith("552 5.3.4"), reply
    assert "5000" in reply


async def test_recipient_limit_per_message(tmp_path: Path, http: Any) -> None:
    service = await gateway(tmp_path, max_recipients=2)
    try:
        _account, key = await service.store.create_account("few")
        api = ApiClient(http, service.http_url)
        await api.authenticate(key)
        faxbox = await create_faxbox(api, smtp_permission_list=[SENDER])
        client = await RawSmtp.connect(service.smtp_port or 0)
        await client.command("EHLO client.example.com")
        await client.command(f"MAIL FROM:<{SENDER}>")
        replies = [
            await client.command(f"RCPT TO:<212555012{n}@{faxbox['smtp_email_address']}>")
            for n in range(3)
        ]
        await client.close()
    finally:
        await service.stop()

    assert [reply[:3] for reply in replies] == ["250", "250", "452"]
    assert "at most 2" in replies[2]


async def test_session_limit_answers_421(tmp_path: Path) -> None:
    service = await gateway(tmp_path, max_sessions=2)
    try:
        first = await RawSmtp.connect(service.smtp_port or 0)
        second = await RawSmtp.connect(service.smtp_port or 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", service.smtp_port or 0)
        refused = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await first.close()
        await second.close()
    finally:
        await service.stop()

    assert refused.startswith(b"421 4.7.0")


async def test_idle_session_timed_out(tmp_path: Path) -> None:
    service = await gateway(tmp_path, command_timeout=0.3)
    try:
        client = await RawSmtp.connect(service.smtp_port or 0)
        rest = await client.rest()
        await client.close()
    finally:
        await service.stop()

    assert rest.startswith(b"421 4.4.2")


async def test_shutdown_finishes_open_transaction(tmp_path: Path, http: Any) -> None:
    service = await gateway(tmp_path, shutdown_timeout=10.0)
    stopping: asyncio.Task[None] | None = None
    try:
        _account, key = await service.store.create_account("drain")
        api = ApiClient(http, service.http_url)
        await api.authenticate(key)
        faxbox = await create_faxbox(api, smtp_permission_list=[SENDER])
        idle = await RawSmtp.connect(service.smtp_port or 0)
        await idle.command("EHLO idle.example.com")
        busy = await RawSmtp.connect(service.smtp_port or 0)
        await busy.command("EHLO busy.example.com")
        assert (await busy.command(f"MAIL FROM:<{SENDER}>")).startswith("250")
        recipient = f"2125550123@{faxbox['smtp_email_address']}"
        assert (await busy.command(f"RCPT TO:<{recipient}>")).startswith("250")

        stopping = asyncio.create_task(service.stop())
        idle_rest = await idle.rest()
        assert (await busy.command("DATA")).startswith("354")
        await busy.send(pdf_message() + b".\r\n")
        accepted = await busy.reply()
        after = await busy.command("MAIL FROM:<alice@example.com>")
        await idle.close()
        await busy.close()
        await stopping
    finally:
        if stopping is None:
            await service.stop()
        else:
            with contextlib.suppress(Exception):
                await stopping

    assert idle_rest.startswith(b"421 4.3.2")
    assert accepted.startswith("250 2.0.0"), accepted
    assert after.startswith("421 4.3.2")


def test_data_reader_stops_only_at_crlf_dot_crlf() -> None:
    reader = DataReader(LIMITS)

    ends = [reader.feed(chunk) for chunk in (b"a\n", b".\n", b".\r\n", b"b\r\n", b".\r\n")]

    assert ends == [False, False, False, False, True]
    assert reader.problem is None
    assert reader.content() == b"a\r\n.\r\n.\r\nb\r\n"


def test_data_reader_long_line_split_at_crlf() -> None:
    reader = DataReader(LIMITS)

    # The stream reader may cut an over-long line between its CR and its LF.
    pieces = [b"x" * 1001, b"x" * 50 + b"\r", b"\n", b".\r\n"]
    ends = [reader.feed(piece) for piece in pieces]

    assert ends == [False, False, False, True]
    assert reader.problem is not None
    assert "998" in reader.problem


def test_data_reader_dot_after_long_line_is_content() -> None:
    reader = DataReader(LIMITS)

    ends = [reader.feed(piece) for piece in (b"x" * 1001, b".\r\n", b"y\r\n", b".\r\n")]

    assert ends == [False, False, False, True]


def test_data_reader_unstuffs_dots() -> None:
    reader = DataReader(LIMITS)

    for chunk in (b"..leading\r\n", b"...\r\n", b".\r\n"):
        reader.feed(chunk)

    assert reader.content() == b".leading\r\n..\r\n"

"""Clients and helpers for the SMTP gateway tests: smtplib in a thread, a raw SMTP client.

The gateway runs in the test's own event loop, so the blocking smtplib calls
run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.conftest import ApiClient, wait_for

# Seconds the raw client waits for a reply line.
REPLY_TIMEOUT = 10.0


@dataclass
class SendResult:
    """What the server replied: refused recipients by address, and the DATA reply."""

    refused: dict[str, tuple[int, bytes]]
    data_code: int | None
    data_reply: bytes


def _send_blocking(
    port: int,
    sender: str,
    recipients: Sequence[str],
    raw: bytes,
    mail_options: Sequence[str],
) -> SendResult:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        code, reply = client.mail(sender, list(mail_options))
        if code != 250:
            return SendResult({}, code, reply)
        refused: dict[str, tuple[int, bytes]] = {}
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            if code != 250:
                refused[recipient] = (code, reply)
        if len(refused) == len(recipients):
            client.rset()
            return SendResult(refused, None, b"")
        code, reply = client.data(raw)
        return SendResult(refused, code, reply)


async def send_mail(
    port: int,
    sender: str,
    recipients: Sequence[str],
    raw: bytes,
    mail_options: Sequence[str] = (),
) -> SendResult:
    """Send one message over a new connection and return every reply that was not 250."""
    return await asyncio.to_thread(_send_blocking, port, sender, recipients, raw, mail_options)


class RawSmtp:
    """A line-level SMTP client for protocol tests that smtplib would not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawSmtp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        greeting = await client.reply()
        assert greeting.startswith("220"), greeting
        return client

    async def reply(self) -> str:
        """Read one (possibly multi-line) reply; return its lines joined by newlines."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), REPLY_TIMEOUT)
            if not line:
                raise ConnectionError("the server closed the connection")
            text = line.decode("utf-8").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    async def command(self, line: str) -> str:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def rest(self) -> bytes:
        """Read until the server closes the connection; return what it sent."""
        return await asyncio.wait_for(self.reader.read(), REPLY_TIMEOUT)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def create_faxbox(api: ApiClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Front desk", "caller_id": "+12125550100", **fields}
    status, answer = await api.request("PUT", api.account_path("/faxboxes"), {"data": body})
    assert status == 201, answer
    faxbox: dict[str, Any] = answer["data"]
    return faxbox


async def smtplog_rows(api: ApiClient, suffix: str = "/faxes/smtplog") -> list[dict[str, Any]]:
    status, answer = await api.request("GET", api.account_path(suffix + "?paginate=false"))
    assert status == 200, answer
    rows: list[dict[str, Any]] = answer["data"]
    return rows


async def smtplog_entry(api: ApiClient, entry_id: str) -> dict[str, Any]:
    status, answer = await api.request("GET", api.account_path(f"/faxes/smtplog/{entry_id}"))
    assert status == 200, answer
    entry: dict[str, Any] = answer["data"]
    return entry


async def wait_for_outbox(
    api: ApiClient, fax_id: str, within: float = 120.0, interval: float = 0.5
) -> Any:
    """Wait until GET /faxes/outbox/{id} shows the fax completed or failed; return its document."""

    async def finished() -> Any:
        status, answer = await api.request("GET", api.account_path(f"/faxes/outbox/{fax_id}"))
        if status == 200 and answer["data"].get("status") in ("completed", "failed"):
            return answer["data"]
        return None

    return await wait_for(finished, within=within, interval=interval)


async def wait_for_outbox_completed(
    api: ApiClient, fax_id: str, within: float = 120.0, interval: float = 0.5
) -> Any:
    """Wait until GET /faxes/outbox/{id} shows the fax completed; return its document."""
    doc = await wait_for_outbox(api, fax_id, within, interval)
    assert doc["status"] == "completed", doc
    return doc

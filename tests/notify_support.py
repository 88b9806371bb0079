"""Test parts for the notifier: an SMTP sink, a callback receiver, fax records and documents."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import ContentStream

from faxgate.clock import SystemClock, to_gregorian
from faxgate.context import ServiceContext
from faxgate.ids import new_id
from faxgate.logs import TextFormatter
from faxgate.notify import AddressGuard, Notifier
from faxgate.store import Store
from tests.conftest import make_config

SMTP_USER = "relay-user"
SMTP_PASSWORD = "relay-password-7f3a"
SENDER = "faxgate@fax.example"
# 2024-07-01 12:00:00 UTC, 14:00:00 CEST in Europe/Berlin.
FINISHED_UNIX = 1719835200


@dataclass
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_tls_files(folder: Path) -> TlsFiles:
    """Create a self-signed certificate for 127.0.0.1 with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return TlsFiles(cert, key)


@dataclass
class ReceivedMail:
    envelope_sender: str
    recipients: list[str]
    content: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SinkHandler:
    """aiosmtpd handler that keeps every message and can refuse chosen recipients."""

    messages: list[ReceivedMail] = field(default_factory=list)
    # Recipient -> reply, every time.
    refuse: dict[str, str] = field(default_factory=dict)
    # Recipient -> reply, only for the next RCPT of that recipient.
    refuse_once: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        if address in self.refuse_once:
            return self.refuse_once.pop(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(
            ReceivedMail(
                envelope_sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                content=content,
                tls=_uses_tls(server, session),
                authenticated=bool(session.authenticated),
            )
        )
        return "250 OK queued"


def _uses_tls(server: SMTP, session: Session) -> bool:
    # aiosmtpd sets session.ssl after STARTTLS only; implicit TLS shows on the transport.
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None
    )


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    assert isinstance(auth_data, LoginPassword)
    login_ok = auth_data.login == SMTP_USER.encode()
    return AuthResult(success=login_ok and auth_data.password == SMTP_PASSWORD.encode())


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that plays the smarthost."""

    def __init__(
        self,
        tls: TlsFiles | None = None,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: bool = False,
    ) -> None:
        self.handler = SinkHandler()
        self._tls = tls
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._auth = auth
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def messages(self) -> list[ReceivedMail]:
        return self.handler.messages

    def _protocol(self) -> SMTP:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {"hostname": "sink.localhost", "loop": loop}
        if self._starttls:
            assert self._tls is not None
            options.update(tls_context=self._tls.server_context(), require_starttls=True)
        if self._auth:
            options.update(auth_required=True, auth_require_tls=True,
                           authenticator=_authenticate)
        return SMTP(self.handler, **options)

    async def start(self, port: int = 0) -> int:
        context = None
        if self._implicit_tls:
            assert self._tls is not None
            context = self._tls.server_context()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", port, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@dataclass
class CallbackRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    """A real HTTP server on 127.0.0.1 that records callback requests."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[CallbackRequest] = []
        # HTTP statuses of the next responses, in order. After them every response is 200.
        self.statuses = list(statuses or [])
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            CallbackRequest(request.method, request.path_qs, dict(request.headers), body)
        )
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self.port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def expected_signature(secret: str, request: CallbackRequest) -> str:
    """Return the X-Faxgate-Signature value that a receiver computes as the README shows."""
    timestamp = request.headers["X-Faxgate-Timestamp"]
    signed = timestamp.encode() + b"." + request.body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class NotifierHarness:
    notifier: Notifier
    store: Store
    context: ServiceContext
    account_id: str

    @property
    def data_dir(self) -> Path:
        return self.context.config.data_dir


@asynccontextmanager
async def running_notifier(
    tmp_path: Path,
    *,
    smtp_port: int | None = None,
    notify: dict[str, Any] | None = None,
    allow_networks: list[str] | None = None,
    guard: AddressGuard | None = None,
) -> AsyncIterator[NotifierHarness]:
    """Start a notifier on a real store in tmp_path; mail goes to 127.0.0.1:smtp_port."""
    settings: dict[str, Any] = {
        "smarthost": "127.0.0.1" if smtp_port is not None else "",
        "port": smtp_port or 25,
        "security": "none",
        "sender": SENDER,
        "retry_delay": 0.1,
        "retry_delay_max": 0.4,
        "timeout": 5.0,
        **(notify or {}),
    }
    networks = ["127.0.0.0/8"] if allow_networks is None else allow_networks
    config = make_config(tmp_path / "data", notify=settings, fetch={"allow_networks": networks})
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.data_dir / "faxgate.sqlite3")
    await store.open()
    context = ServiceContext(config=config, store=store, clock=SystemClock())
    notifier = Notifier(context, address_guard=guard)
    account, _ = await store.create_account("notify test")
    await notifier.start()
    try:
        yield NotifierHarness(notifier, store, context, account["id"])
    finally:
        await notifier.stop()
        await store.close()


def make_pdf(path: Path, pages: int = 2) -> Path:
    """Write a PDF of US Letter pages, each with a black rectangle, and return its path."""
    writer = PdfWriter()
    for _ in range(pages):
        page = writer.add_blank_page(width=612, height=792)
        content = ContentStream(None, writer)
        content.set_data(b"0 g 72 72 468 648 re f")
        page.replace_contents(content)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def make_tiff(path: Path) -> Path:
    """Write a one-page fax TIFF (Group 4, 204 x 98 dpi) with a black band."""
    image = Image.new("1", (1728, 1100), 1)
    image.paste(0, (100, 100, 1600, 500))
    image.save(path, format="TIFF", compression="group4", dpi=(204, 98))
    return path


def outgoing_fax(status: str = "completed", **overrides: Any) -> dict[str, Any]:
    """Return a finished job record as the worker hands it over."""
    fax: dict[str, Any] = {
        "id": new_id(),
        "status": status,
        "to_number": "+12125550123",
        "from_number": "+12125550100",
        "from_name": "Acme Billing",
        "attempts": 1,
        "retries": 3,
        "source": "email",
        "created": to_gregorian(FINISHED_UNIX - 120),
        "delivered": to_gregorian(FINISHED_UNIX),
        "notifications": {"email": {"send_to": ["sender@example.com"]}},
        "tx_result": {
            "success": status == "completed",
            "error_message": "",
            "pages_sent": 2,
            "pages_total": 2,
            "time_elapsed": 65,
            "call_duration": 72,
            "fax_speed": 14400,
            "fax_receiver_id": "+1 212 555 0123",
        },
    }
    fax.update(overrides)
    return fax


def received_fax(**overrides: Any) -> dict[str, Any]:
    """Return a received fax record as the inbound layer hands it over."""
    fax: dict[str, Any] = {
        "id": new_id(),
        "status": "received",
        "from_number": "+14155550199",
        "to_number": "+12125550100",
        "created": to_gregorian(FINISHED_UNIX),
        "rx_result": {
            "success": True,
            "pages_received": 1,
            "time_elapsed": 40,
            "fax_speed": 9600,
            "remote_station_id": "SENDER CO",
        },
    }
    fax.update(overrides)
    return fax


def faxbox(**notifications: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "name": "Billing",
        "caller_id": "+12125550100",
        "fax_timezone": "Europe/Berlin",
        "notifications": notifications,
    }


def faxgate_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Return faxgate's captured log lines as the service writes them, context included."""
    formatter = TextFormatter()
    return "\n".join(
        formatter.format(record)
        for record in caplog.records
        if record.name.startswith("faxgate")
    )


def parts_by_type(message: EmailMessage) -> dict[str, list[EmailMessage]]:
    found: dict[str, list[EmailMessage]] = {}
    for part in message.walk():
        assert isinstance(part, EmailMessage)
        found.setdefault(part.get_content_type(), []).append(part)
    return found

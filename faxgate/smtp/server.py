"""The SMTP gateway component: the listener, its sessions and a bounded shutdown."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from faxgate.context import ServiceContext
from faxgate.logs import EventLogger
from faxgate.smtp import replies
from faxgate.smtp.handler import GatewayHandler
from faxgate.smtp.protocol import DataLimits, Drain, GatewaySMTP

log = EventLogger("faxgate.smtp")

MESSAGES_DIR = "messages"


class _RefusedSession(asyncio.Protocol):
    """A connection over the session limit: it gets one 421 line and is closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(replies.TOO_MANY_SESSIONS.encode("ascii") + b"\r\n")
        transport.close()


class SmtpGateway:
    """Receives mail for faxboxes on one listening socket in the service's event loop."""

    name = "smtp"

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.config = ctx.config.smtp
        # Jobs store the message path, so it is absolute whatever the working folder.
        self.handler = GatewayHandler(ctx, ctx.config.data_dir.resolve() / MESSAGES_DIR)
        self.limits = DataLimits(
            max_size=self.config.max_message_size,
            max_line_length=self.config.max_line_length,
            bare_lf=self.config.bare_lf,
        )
        self.port: int | None = None
        self._drain = Drain()
        self._sessions: set[GatewaySMTP] = set()
        self._server: asyncio.Server | None = None
        self._tls = _tls_context(self.config.tls_cert, self.config.tls_key)

    async def start(self) -> None:
        (self.ctx.config.data_dir / MESSAGES_DIR).mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_session, self.config.host, self.config.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("smtp.listening", host=self.config.host, port=self.port,
                 starttls=self._tls is not None, require_tls=self.config.require_tls)

    def _new_session(self) -> asyncio.Protocol:
        if self._drain.draining or len(self._sessions) >= self.config.max_sessions:
            log.warning("smtp.session_refused", sessions=len(self._sessions),
                        draining=self._drain.draining)
            return _RefusedSession()
        session = GatewaySMTP(
            self.handler,
            limits=self.limits,
            drain=self._drain,
            on_close=self._sessions.discard,
            data_size_limit=self.config.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.config.hostname,
            ident=replies.SERVICE_IDENT,
            tls_context=self._tls,
            require_starttls=self.config.require_tls,
            timeout=self.config.command_timeout,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(session)
        return session

    async def stop(self) -> None:
        """Stop accepting; let open transactions finish within the bound; 421 the rest."""
        self._drain.draining = True
        if self._server is None:
            return
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        while self._sessions and loop.time() < deadline:
            for session in list(self._sessions):
                if not session.busy and not session.in_transaction:
                    session.close_idle_for_shutdown()
            await asyncio.sleep(0.05)
        for session in list(self._sessions):
            session.abort_for_shutdown()
        if self.handler.pending_writes:
            await asyncio.wait(self.handler.pending_writes, timeout=self.config.shutdown_timeout)
        await self._server.wait_closed()
        self._server = None
        log.info("smtp.stopped")

    def health(self) -> dict[str, Any]:
        serving = self._server is not None and self._server.is_serving()
        return {"status": "ok" if serving else "failing", "sessions": len(self._sessions)}


def _tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context

"""The SMTP protocol: aiosmtpd's SMTP with faxgate's DATA reader, limits and shutdown.

aiosmtpd (1.4) drives the commands. This subclass replaces its DATA reading,
so that the end of the message, bare LF line endings and over-long lines
follow the rules of `DataReader`. It also sends 421 to idle sessions and to
commands that arrive while the service shuts down.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiosmtpd.smtp import SMTP, Envelope

from faxgate.smtp import replies
from faxgate.smtp.routing import Route

# Bare LF handling: "normalize" turns each bare LF into CRLF, "reject"
# replies to the message with a 5xx reply.
BARE_LF_NORMALIZE = "normalize"
BARE_LF_REJECT = "reject"

# Commands that may continue a mail transaction while the service drains.
_TRANSACTION_COMMANDS = frozenset({"RCPT", "DATA", "NOOP"})
# RFC 5321 allows no space inside "<>" and aiosmtpd replies 553 to "< >".
# The gateway reads "< >" (spaces or tabs inside) as the null reverse-path.
_BLANK_REVERSE_PATH = re.compile(r"^(\s*FROM:\s*<)\s+>", re.IGNORECASE)
_SIZE_PARAMETER = re.compile(r"\bSIZE=(\d+)", re.IGNORECASE)


class GatewayEnvelope(Envelope):
    """aiosmtpd's envelope plus the routes of accepted recipients and a DATA problem."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []
        # The 5xx reply for a message that was read but cannot be accepted
        # (too big, over-long line, bare LF), or None.
        self.data_problem: str | None = None


@dataclass(frozen=True)
class DataLimits:
    max_size: int
    max_line_length: int
    bare_lf: str


class DataReader:
    """Reads DATA lines (each ending in LF) until the end-of-data line.

    Only CRLF "." CRLF ends the data (RFC 5321 section 4.1.1.4). A "."
    line ends it only when the line before it ended in CRLF. So a bare LF
    before or after the dot never ends a message, and nothing that follows
    it can be read as a new command. Lines lose one leading dot
    (section 4.5.2). The first problem found is kept and the rest of the
    data is read and dropped, so that the reply follows the end of the data.
    """

    def __init__(self, limits: DataLimits) -> None:
        self.limits = limits
        self.problem: str | None = None
        self.size = 0
        self._lines: list[bytes] = []
        self._after_crlf = True  # the DATA command line ended in CRLF
        self._in_long_line = False
        self._pending_cr = False

    def feed(self, chunk: bytes) -> bool:
        """Take one line read up to LF, or a piece of an over-long line; return True at the end."""
        if not self._in_long_line and self._after_crlf and chunk == b".\r\n":
            return True
        self.size += len(chunk)
        if self.size > self.limits.max_size:
            self._fail(replies.reply(replies.MESSAGE_TOO_BIG, limit=self.limits.max_size), True)

        if self._in_long_line or not chunk.endswith(b"\n"):
            # A piece of a line longer than the stream reader's limit. The CR
            # of its CRLF may end one piece and the LF start the next.
            ends_line = chunk.endswith(b"\n")
            self._after_crlf = chunk.endswith(b"\r\n") or (chunk == b"\n" and self._pending_cr)
            self._pending_cr = chunk.endswith(b"\r")
            self._in_long_line = not ends_line
            self._fail(replies.reply(replies.LINE_TOO_LONG, limit=self.limits.max_line_length))
            return False

        self._after_crlf = chunk.endswith(b"\r\n")
        if not self._after_crlf and self.limits.bare_lf == BARE_LF_REJECT:
            self._fail(replies.BARE_LF)
        line = chunk[:-2] if self._after_crlf else chunk[:-1]
        if line.startswith(b".") and line != b".":
            line = line[1:]
        if len(line) > self.limits.max_line_length:
            self._fail(replies.reply(replies.LINE_TOO_LONG, limit=self.limits.max_line_length))
        if self.problem is None:
            self._lines.append(line + b"\r\n")
        return False

    def content(self) -> bytes:
        return b"".join(self._lines)

    def _fail(self, reply: str, overrides: bool = False) -> None:
        if self.problem is None or (overrides and self.problem != reply):
            self.problem = reply
        self._lines.clear()


class Drain:
    """Shared shutdown state: once draining, sessions finish their transaction and get 421."""

    def __init__(self) -> None:
        self.draining = False


class GatewaySMTP(SMTP):
    """One SMTP session of the gateway."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: DataLimits,
        drain: Drain,
        on_close: Callable[[GatewaySMTP], None],
        **options: Any,
    ) -> None:
        # aiosmtpd sizes its stream reader from line_length_limit in
        # __init__; a line may carry one stuffed dot and CRLF beyond the limit.
        self.line_length_limit = limits.max_line_length + 3
        super().__init__(handler, **options)
        self.limits = limits
        self.drain = drain
        self.busy = False
        self._closing = False
        self._on_close = on_close
        self._smtp_methods = {
            name: self._guard(name, method) for name, method in self._smtp_methods.items()
        }

    def _create_envelope(self) -> GatewayEnvelope:
        return GatewayEnvelope()

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None

    def _guard(
        self, command: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        async def guarded(arg: str | None) -> None:
            if self.drain.draining and not (
                self.in_transaction and command in _TRANSACTION_COMMANDS
            ):
                self.close_idle_for_shutdown()
                return
            self.busy = True
            try:
                await method(arg)
            finally:
                self.busy = False

        return guarded

    def close_idle_for_shutdown(self) -> None:
        """Send 421 and close the connection (RFC 5321 section 3.8), once."""
        transport = self._stream_transport()
        if transport is None or self._closing:
            return
        self._closing = True
        transport.write(replies.SHUTTING_DOWN.encode("ascii") + b"\r\n")
        transport.close()

    def abort_for_shutdown(self) -> None:
        """Send 421 and drop the connection without waiting for buffered output."""
        transport = self._stream_transport()
        if transport is None:
            return
        if not self._closing:
            transport.write(replies.SHUTTING_DOWN.encode("ascii") + b"\r\n")
        self._closing = True
        transport.abort()

    def _stream_transport(self) -> asyncio.Transport | None:
        # aiosmtpd types its transport as BaseTransport; a TCP or TLS
        # connection's transport also writes and aborts.
        return cast(asyncio.Transport | None, self.transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._on_close(self)

    def _timeout_cb(self) -> None:
        transport = self._stream_transport()
        if transport is not None:
            line = replies.reply(replies.IDLE_TIMEOUT, seconds=int(self._timeout_duration))
            transport.write(line.encode("ascii") + b"\r\n")
        super()._timeout_cb()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd 1.4

    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg is not None and self.session is not None and self.session.host_name:
            # The handler's MAIL hook rejects the null sender. Rewriting
            # "< >" to "<>" lets that one check see it.
            arg = _BLANK_REVERSE_PATH.sub(r"\1>", arg, count=1)
            size = _SIZE_PARAMETER.search(arg)
            if size and int(size.group(1)) > self.limits.max_size:
                await self.push(replies.reply(replies.MESSAGE_TOO_BIG, limit=self.limits.max_size))
                return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return

        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = DataReader(self.limits)
        while not reader.feed(await self._read_data_chunk()):
            pass

        envelope = self.envelope
        assert isinstance(envelope, GatewayEnvelope)
        envelope.data_problem = reader.problem
        envelope.original_content = envelope.content = (
            reader.content() if reader.problem is None else b""
        )
        try:
            status = await self._call_handler_hook("DATA")
        finally:
            # A failed handler must not leave the transaction open: the
            # client gets the handler's error reply and starts again.
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd
        await self.push(status)

    async def _read_data_chunk(self) -> bytes:
        try:
            chunk: bytes = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            chunk = await self._reader.read(exc.consumed)
        except asyncio.IncompleteReadError as exc:
            # The client closed the connection inside DATA: nothing to accept.
            self._writer.close()
            raise ConnectionResetError("connection closed during DATA") from exc
        # An idle timeout counts from the last data received, not from DATA.
        self._reset_timeout()
        return chunk

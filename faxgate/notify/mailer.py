"""Mail delivery through the configured smarthost, with aiosmtplib.

One SMTP session carries a batch of messages. A failure of the session
itself (connection refused, timeout, TLS or AUTH failure) defers every
message of the batch. A reply about one message is judged by its code,
following RFC 5321: 4xx means try again later, 5xx means the smarthost
will never take it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiosmtplib

from faxgate.config import NotifyConfig
from faxgate.notify.errors import PermanentDeliveryError, SessionError, TemporaryDeliveryError

SmtpClientFactory = Callable[[], aiosmtplib.SMTP]


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Return a context that verifies the smarthost against `ca_file`, or the system CAs."""
    return ssl.create_default_context(cafile=ca_file or None)


def default_client_factory(config: NotifyConfig, local_hostname: str) -> SmtpClientFactory:
    """Return a factory of clients for the smarthost that `config` names."""

    def create() -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=config.smarthost,
            port=config.port,
            local_hostname=local_hostname,
            timeout=config.timeout,
            use_tls=config.security == "tls",
            # True requires STARTTLS; False keeps "none" from upgrading on its own.
            start_tls=config.security == "starttls",
            tls_context=tls_context(config.ca_file) if config.security != "none" else None,
            username=config.username or None,
            password=config.password or None,
        )

    return create


class MailSession:
    """A connected, authenticated SMTP session."""

    def __init__(self, client: aiosmtplib.SMTP, server: str) -> None:
        self._client = client
        self._server = server

    async def send(self, envelope_sender: str, recipient: str, message: bytes) -> None:
        """Send one message to one recipient.

        Raises PermanentDeliveryError on a 5xx reply, TemporaryDeliveryError
        on a 4xx reply and SessionError when the session broke.
        """
        try:
            await self._client.sendmail(envelope_sender, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            reason = f"the smarthost refused {recipient}: {refused.message}"
            raise _by_code(refused.code, reason) from exc
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"the smarthost rejected the message: {exc.message}"
            raise _by_code(exc.code, reason) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SessionError(f"the session with {self._server} broke: {exc}") from exc
        except ValueError as exc:
            # aiosmtplib rejects addresses that would inject SMTP commands.
            raise PermanentDeliveryError(f"invalid mail address {recipient!r}: {exc}") from exc


def _by_code(code: int, message: str) -> PermanentDeliveryError | TemporaryDeliveryError:
    if 500 <= code < 600:
        return PermanentDeliveryError(f"{message} ({code})")
    return TemporaryDeliveryError(f"{message} ({code})")


class Mailer:
    """Opens SMTP sessions with the smarthost."""

    def __init__(self, config: NotifyConfig, client_factory: SmtpClientFactory) -> None:
        self._config = config
        self._client_factory = client_factory
        self.server = f"{config.smarthost}:{config.port}"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[MailSession]:
        """Connect, start TLS and log in as configured; SessionError if any step fails."""
        client = self._client_factory()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SessionError(f"cannot open a session with {self.server}: {exc}") from exc
        try:
            yield MailSession(client, self.server)
        finally:
            await _quit(client)


async def _quit(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()

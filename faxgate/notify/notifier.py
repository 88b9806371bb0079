"""The notifier component: the API that fax layers call, and the delivery loops.

Each API call queues durable work and returns: a payload file per
notification (the whole mail message, or the callback body) written and
fsynced, then the rows inserted in one transaction. Each notification has a
dedupe key `<fax id>:<event group>:<channel>:<recipient>`, so a call repeated
after a crash queues nothing new. The delivery loops send what is queued.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import aiohttp
from email_validator import EmailNotValidError, validate_email

from faxgate.context import ServiceContext
from faxgate.errors import NotFoundError
from faxgate.files import write_atomic
from faxgate.ids import new_id
from faxgate.logs import EventLogger
from faxgate.notify import facts, preview
from faxgate.notify.callbacks import CallbackSender, encode_body
from faxgate.notify.compose import (
    AUTO_GENERATED,
    AUTO_REPLIED,
    Attachment,
    MailContent,
    build_message,
    new_content_id,
    new_message_id,
)
from faxgate.notify.delivery import (
    CALLBACK_BATCH,
    MAIL_BATCH,
    CallbackDelivery,
    DeliveryLoop,
    MailDelivery,
    Recorder,
)
from faxgate.notify.guard import AddressGuard, GuardedResolver, NetworkAddressGuard
from faxgate.notify.mailer import Mailer, SmtpClientFactory, default_client_factory
from faxgate.notify.templates import (
    INBOUND,
    OUTBOUND_FAILURE,
    OUTBOUND_SUCCESS,
    SMTP_FAILURE,
    Templates,
)
from faxgate.store.notifications import CALLBACK, EMAIL, NewNotification

log = EventLogger("faxgate.notify")

OUTBOUND_COMPLETED = "outbound_completed"
OUTBOUND_FAILED = "outbound_failed"
INBOUND_RECEIVED = "inbound_received"
SMTP_FAILED = "smtp_failure"

PAYLOAD_FOLDER = "notifications"
PREVIEW_WIDTH = preview.PREVIEW_WIDTH
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class _Notice:
    """The notifications requested by one API call."""

    account_id: str
    fax_id: str
    group: str
    event: str
    mail_recipients: list[str]
    callback: Mapping[str, Any] | None
    callback_payload: dict[str, Any]
    envelope_sender: str
    content: MailContent | None = None


@dataclass(frozen=True)
class DocumentFile:
    """A fax document that a notification may attach."""

    path: Path | None
    maintype: str
    subtype: str
    filename: str


def parse_send_to(value: Any) -> list[str]:
    """Return the valid addresses of a `send_to` string or list, without repeats.

    Domains are lower-cased and repeats are found ignoring case. Invalid
    entries are logged and dropped.
    """
    entries: list[Any] = []
    if isinstance(value, str):
        entries = [value]
    elif isinstance(value, list):
        entries = value
    addresses: list[str] = []
    seen: set[str] = set()
    for _, address in getaddresses([entry for entry in entries if isinstance(entry, str)]):
        try:
            checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError as exc:
            log.warning("notify.recipient_invalid", recipient=address, error=str(exc))
            continue
        normalized = f"{checked.local_part}@{checked.ascii_domain.lower()}"
        if normalized.lower() not in seen:
            seen.add(normalized.lower())
            addresses.append(normalized)
    return addresses


def _settings(faxbox: Mapping[str, Any] | None, direction: str) -> dict[str, Any]:
    notifications = (faxbox or {}).get("notifications") or {}
    settings = notifications.get(direction) or {}
    return settings if isinstance(settings, dict) else {}


def _safe_filename(text: str) -> str:
    return _UNSAFE_FILENAME.sub("-", text).strip("-") or "fax"


class Notifier:
    """Queues and delivers fax notifications: mail through the smarthost, and callbacks."""

    name = "notifier"

    def __init__(
        self,
        ctx: ServiceContext,
        address_guard: AddressGuard | None = None,
        smtp_client_factory: SmtpClientFactory | None = None,
    ) -> None:
        self._ctx = ctx
        self._config = ctx.config.notify
        self._store = ctx.store
        self._clock = ctx.clock
        templates_dir = self._config.templates_dir
        self._templates = Templates(Path(templates_dir) if templates_dir else None)
        self._guard = address_guard or NetworkAddressGuard(ctx.config.fetch.allow_networks)
        self._payload_dir = ctx.config.data_dir / PAYLOAD_FOLDER
        self._recorder = Recorder(self._store, self._clock, self._config, ctx.config.data_dir)

        factory = smtp_client_factory
        if factory is None and self._config.smarthost:
            factory = default_client_factory(self._config, ctx.config.smtp.hostname)
        self._mail: MailDelivery | None = None
        self._mail_loop: DeliveryLoop | None = None
        if factory is not None:
            self._mail = MailDelivery(Mailer(self._config, factory), self._recorder)
            self._mail_loop = DeliveryLoop(EMAIL, self._store, self._clock, MAIL_BATCH, self._mail)
        self._http: aiohttp.ClientSession | None = None
        self._callback_loop: DeliveryLoop | None = None

    @property
    def mail_enabled(self) -> bool:
        return self._mail_loop is not None

    # Component protocol

    async def start(self) -> None:
        self._templates.check()
        self._payload_dir.mkdir(parents=True, exist_ok=True)
        await self._remove_orphaned_payloads()
        resolver = GuardedResolver(self._ctx.config.fetch.allow_networks)
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))
        sender = CallbackSender(self._http, self._guard, self._config.timeout)
        self._callback_loop = DeliveryLoop(
            CALLBACK,
            self._store,
            self._clock,
            CALLBACK_BATCH,
            CallbackDelivery(sender, self._recorder, self._store, self._clock),
        )
        self._callback_loop.start()
        if self._mail_loop is not None:
            self._mail_loop.start()
        log.info(
            "notify.started",
            smarthost=self._config.smarthost or None,
            security=self._config.security,
            mail=self.mail_enabled,
        )

    async def stop(self) -> None:
        within = self._ctx.config.http.shutdown_timeout
        for loop in (self._mail_loop, self._callback_loop):
            if loop is not None:
                await loop.stop(within)
        if self._http is not None:
            await self._http.close()
            self._http = None
        log.info("notify.stopped")

    def health(self) -> dict[str, Any]:
        loops = [loop for loop in (self._mail_loop, self._callback_loop) if loop is not None]
        running = bool(loops) and all(loop.running for loop in loops)
        mail = "disabled"
        if self._mail is not None:
            mail = "deferred" if self._mail.last_error else "ok"
        checks: dict[str, Any] = {"status": "ok" if running else "failing", "mail": mail}
        if self._mail is not None and self._mail.last_error:
            checks["mail_error"] = self._mail.last_error
        return checks

    # The API for the fax layers

    async def fax_finished(
        self,
        account_id: str,
        faxbox: dict[str, Any] | None,
        fax: dict[str, Any],
        pdf_path: Path | None,
    ) -> None:
        """Queue the result notifications of an outgoing fax that completed or finally failed.

        Mail goes to the job's `notifications.email.send_to` and the faxbox's
        `notifications.outbound.email.send_to`, each address once; the
        callback to the faxbox's `notifications.outbound.callback`. Raises
        ValueError when the fax's status is not completed or failed, because
        a fax that will be retried gets no notification.
        """
        status = fax.get("status")
        if status not in ("completed", "failed"):
            raise ValueError(
                f"fax {fax.get('id')} has status {status!r}; result notifications are sent"
                " only for completed or failed faxes"
            )
        fax_id = _fax_id(fax)
        faxbox = await self._faxbox_for(account_id, faxbox, fax)
        settings = _settings(faxbox, "outbound")
        email_settings = settings.get("email") or {}
        job_email = (fax.get("notifications") or {}).get("email") or {}
        recipients = parse_send_to(
            parse_send_to(job_email.get("send_to")) + parse_send_to(email_settings.get("send_to"))
        )
        completed = status == "completed"
        event = OUTBOUND_COMPLETED if completed else OUTBOUND_FAILED
        notice = self._notice(account_id, fax_id, "outbound", event, recipients, settings, fax,
                              faxbox)

        async def content() -> MailContent:
            values = facts.outbound_values(account_id, fax, faxbox, self._clock.time())
            attach = email_settings.get("attach_document") is not False
            number = str(fax.get("to_number") or "").lstrip("+")
            files = [DocumentFile(pdf_path, "application", "pdf", f"fax-to-{number}.pdf")]
            template = OUTBOUND_SUCCESS if completed else OUTBOUND_FAILURE
            return await self._content(
                template, values, files, attach, event, fax_id, AUTO_GENERATED
            )

        await self._queue(notice, content)

    async def fax_received(
        self,
        account_id: str,
        faxbox: dict[str, Any],
        fax: dict[str, Any],
        pdf_path: Path | None,
        tiff_path: Path | None,
    ) -> None:
        """Queue the notifications of a received fax.

        Mail goes to the faxbox's `notifications.inbound.email.send_to` with
        the PDF attached, or the TIFF when `attachment_format` is "tiff". When
        the chosen file is missing, the other one is attached. The callback
        goes to `notifications.inbound.callback`.
        """
        fax_id = _fax_id(fax)
        settings = _settings(faxbox, "inbound")
        email_settings = settings.get("email") or {}
        recipients = parse_send_to(email_settings.get("send_to"))
        notice = self._notice(account_id, fax_id, "inbound", INBOUND_RECEIVED, recipients,
                              settings, fax, faxbox)

        async def content() -> MailContent:
            values = facts.inbound_values(account_id, fax, faxbox, self._clock.time())
            attach = email_settings.get("attach_document") is not False
            number = str(fax.get("from_number") or "unknown").lstrip("+")
            pdf = DocumentFile(pdf_path, "application", "pdf", f"fax-from-{number}.pdf")
            tiff = DocumentFile(tiff_path, "image", "tiff", f"fax-from-{number}.tif")
            tiff_first = email_settings.get("attachment_format") == "tiff"
            files = [tiff, pdf] if tiff_first else [pdf, tiff]
            return await self._content(
                INBOUND, values, files, attach, INBOUND_RECEIVED, fax_id, AUTO_GENERATED
            )

        await self._queue(notice, content)

    async def smtp_failure(
        self,
        account_id: str,
        faxbox: dict[str, Any],
        sender: str,
        fax: dict[str, Any],
        reason: str,
        sender_allowed: bool,
    ) -> None:
        """Queue a notice to the sender of accepted mail that could not become a fax.

        Nothing is queued unless `sender_allowed`: the permission list of
        the faxbox admitted the sender. A forged sender address would
        otherwise receive mail it never caused (backscatter). `fax` is the
        job or smtplog record. It needs `id` and may carry `to_number`,
        `subject`, `created` and `message_id` (the mail's Message-ID, which
        the notice names in In-Reply-To). The notice has a null envelope sender, as
        RFC 3834 advises for automatic responses, so that a bounce of it
        cannot start a mail loop.
        """
        fax_id = _fax_id(fax)
        if not sender_allowed:
            log.info(
                "notify.notice_suppressed",
                fax_id=fax_id,
                reason="sender not on the faxbox's permission list and not logged in",
            )
            return
        if not sender.strip():
            log.info("notify.notice_suppressed", fax_id=fax_id, reason="null sender")
            return
        recipients = parse_send_to(sender)
        notice = self._notice(account_id, fax_id, "smtp_failure", SMTP_FAILED, recipients, {},
                              fax, faxbox)
        notice.envelope_sender = ""

        async def content() -> MailContent:
            values = facts.smtp_failure_values(
                account_id, fax, faxbox, sender, reason, self._clock.time()
            )
            mail = await self._content(SMTP_FAILURE, values, [], False, SMTP_FAILED, fax_id,
                                       AUTO_REPLIED)
            message_id = fax.get("message_id")
            if isinstance(message_id, str) and message_id.strip():
                mail.in_reply_to = " ".join(message_id.split())
            return mail

        await self._queue(notice, content)

    # Queueing

    def _notice(
        self,
        account_id: str,
        fax_id: str,
        group: str,
        event: str,
        recipients: list[str],
        settings: Mapping[str, Any],
        fax: Mapping[str, Any],
        faxbox: Mapping[str, Any] | None,
    ) -> _Notice:
        callback = settings.get("callback")
        if not isinstance(callback, Mapping) or not callback.get("url"):
            callback = None
        payload = {
            "event": event,
            "account_id": account_id,
            "faxbox_id": (faxbox or {}).get("id") or fax.get("faxbox_id"),
            "fax_id": fax_id,
            "fax": dict(fax),
        }
        return _Notice(
            account_id=account_id,
            fax_id=fax_id,
            group=group,
            event=event,
            mail_recipients=recipients if self.mail_enabled else [],
            callback=callback,
            callback_payload=payload,
            envelope_sender=self._config.sender,
        )

    async def _queue(
        self, notice: _Notice, build_content: Callable[[], Awaitable[MailContent]]
    ) -> None:
        planned = [
            (f"{notice.fax_id}:{notice.group}:{EMAIL}:{address.lower()}", EMAIL, address)
            for address in notice.mail_recipients
        ]
        if notice.callback is not None:
            url = str(notice.callback["url"])
            planned.append((f"{notice.fax_id}:{notice.group}:{CALLBACK}:{url}", CALLBACK, url))
        existing = await self._store.existing_notification_keys([key for key, _, _ in planned])
        planned = [entry for entry in planned if entry[0] not in existing]
        if not planned:
            log.debug(
                "notify.nothing_to_queue",
                fax_id=notice.fax_id,
                kind=notice.event,
                already_queued=len(existing),
            )
            return
        if any(channel == EMAIL for _, channel, _ in planned):
            notice.content = await build_content()

        items: list[NewNotification] = []
        try:
            for key, channel, recipient in planned:
                items.append(await self._write_payload(notice, key, channel, recipient))
            inserted = set(await self._store.queue_notifications(items))
        except Exception:
            # The transaction rolled back, so no row points to these files. After
            # a cancellation the commit may still have happened, so the files stay
            # and the orphan sweep at the next start removes those no row needs.
            self._remove_payloads(items)
            raise
        self._remove_payloads([item for item in items if item.id not in inserted])
        self._wake(items)
        log.info(
            "notify.queued",
            fax_id=notice.fax_id,
            kind=notice.event,
            mails=sum(1 for item in items if item.channel == EMAIL and item.id in inserted),
            callbacks=sum(1 for item in items if item.channel == CALLBACK and item.id in inserted),
        )

    async def _write_payload(
        self, notice: _Notice, key: str, channel: str, recipient: str
    ) -> NewNotification:
        notification_id = new_id()
        doc: dict[str, Any]
        if channel == EMAIL:
            assert notice.content is not None
            message_id = new_message_id(self._config.sender)
            payload = build_message(
                notice.content,
                sender=self._config.sender,
                recipient=recipient,
                message_id=message_id,
                date=self._clock.time(),
            )
            doc = {"envelope_sender": notice.envelope_sender, "message_id": message_id}
            name = f"{notification_id}.eml"
        else:
            assert notice.callback is not None
            body_type = str(notice.callback.get("type") or "json")
            payload, content_type = encode_body(notice.callback_payload, body_type)
            doc = {"method": str(notice.callback.get("method") or "post"),
                   "content_type": content_type}
            name = f"{notification_id}.body"
        relative = f"{PAYLOAD_FOLDER}/{name}"
        await asyncio.to_thread(write_atomic, self._ctx.config.data_dir / relative, payload)
        return NewNotification(
            id=notification_id,
            dedupe_key=key,
            account_id=notice.account_id,
            fax_id=notice.fax_id,
            event=notice.event,
            channel=channel,
            recipient=recipient,
            payload_path=relative,
            doc=doc,
        )

    async def _remove_orphaned_payloads(self) -> None:
        """Delete payload files that no row needs, left by a crash before the rows were saved."""
        keep = await self._store.notification_payload_paths()
        removed = 0
        for path in self._payload_dir.iterdir():
            if f"{PAYLOAD_FOLDER}/{path.name}" not in keep and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("notify.orphans_removed", files=removed)

    def _remove_payloads(self, items: Sequence[NewNotification]) -> None:
        for item in items:
            (self._ctx.config.data_dir / item.payload_path).unlink(missing_ok=True)

    def _wake(self, items: Sequence[NewNotification]) -> None:
        channels = {item.channel for item in items}
        if EMAIL in channels and self._mail_loop is not None:
            self._mail_loop.wake()
        if CALLBACK in channels and self._callback_loop is not None:
            self._callback_loop.wake()

    # Mail content

    async def _content(
        self,
        template: str,
        values: dict[str, str],
        files: list[DocumentFile],
        attach: bool,
        event: str,
        fax_id: str,
        auto_submitted: str,
    ) -> MailContent:
        """Render `template` with the first readable file of `files` attached and previewed."""
        attachment, png = None, None
        note = "Document attachments are turned off for this faxbox."
        if attach:
            attachment, note, source = await self._first_attachment(files, fax_id)
            if source is not None:
                png = await self._preview(source)
        cid = new_content_id(self._config.sender) if png else None
        values["attachment_note"] = note
        values["first_page_image"] = (
            f'<img src="cid:{cid}" alt="First page of the fax" width="{PREVIEW_WIDTH}">'
            if cid else ""
        )
        return MailContent(
            rendered=self._templates.render(template, values),
            auto_submitted=auto_submitted,
            preview_png=png,
            preview_cid=cid,
            attachment=attachment,
            headers={"X-Faxgate-Fax-Id": fax_id, "X-Faxgate-Event": event},
        )

    async def _first_attachment(
        self, files: list[DocumentFile], fax_id: str
    ) -> tuple[Attachment | None, str, DocumentFile | None]:
        """Return the first readable file as an attachment, the note for the mail, and the file."""
        limit = self._config.max_attachment_bytes
        for document in files:
            if document.path is None:
                continue
            try:
                size = document.path.stat().st_size
                if size > limit:
                    note = (
                        f"The fax document ({size / 1048576:.1f} MiB) is larger than the"
                        f" {limit / 1048576:.1f} MiB attachment limit and is not attached."
                    )
                    return None, note, None
                content = await asyncio.to_thread(document.path.read_bytes)
            except OSError as exc:
                log.warning(
                    "notify.document_unreadable",
                    fax_id=fax_id,
                    path=str(document.path),
                    error=str(exc),
                )
                continue
            name = _safe_filename(document.filename)
            attachment = Attachment(name, content, document.maintype, document.subtype)
            return attachment, f"Attached: {name}", document
        return None, "The fax document is not available.", None

    async def _preview(self, document: DocumentFile) -> bytes | None:
        assert document.path is not None
        if document.subtype == "pdf":
            return await asyncio.to_thread(preview.pdf_first_page_png, document.path)
        return await asyncio.to_thread(preview.tiff_first_page_png, document.path)

    async def _faxbox_for(
        self, account_id: str, faxbox: dict[str, Any] | None, fax: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        if faxbox is not None or not fax.get("faxbox_id"):
            return faxbox
        try:
            return await self._store.get_faxbox(account_id, str(fax["faxbox_id"]))
        except NotFoundError:
            return None


def _fax_id(fax: Mapping[str, Any]) -> str:
    fax_id = fax.get("id")
    if not isinstance(fax_id, str) or not fax_id:
        raise ValueError("the fax record has no id, which notifications are keyed by")
    return fax_id


__all__ = ["DocumentFile", "Notifier", "parse_send_to"]

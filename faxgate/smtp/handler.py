"""The aiosmtpd handler: routing at RCPT, review and queueing at DATA, SMTP AUTH.

Each hook returns the reply line. Every recipient, accepted or refused, gets
an smtplog entry. A recipient refused at RCPT gets it at once. An accepted
recipient gets it after DATA, when its message is accepted or refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from faxgate.clock import to_gregorian
from faxgate.context import ServiceContext
from faxgate.files import write_atomic
from faxgate.ids import month_id, new_id
from faxgate.logs import EventLogger
from faxgate.numbers import InvalidNumberError
from faxgate.smtp import replies
from faxgate.smtp.credentials import PASSWORD_HASH_FIELD, hash_password, verify_password
from faxgate.smtp.protocol import GatewayEnvelope
from faxgate.smtp.review import (
    Review,
    ReviewSettings,
    RouteReview,
    review_message,
    unreviewed,
)
from faxgate.smtp.routing import (
    InvalidRecipientError,
    Route,
    is_null_sender,
    recipient_number,
    sender_permitted,
    split_recipient,
)
from faxgate.store.faxes import ATTACHING_FILES, NewFax
from faxgate.store.smtplog import REFUSED, Delivery, SmtpLogEntry, StoredMessage

log = EventLogger("faxgate.smtp")

DEFAULT_RETRIES = 3
# Verified when a user name is unknown, so that a failed login takes as long
# either way and does not reveal which user names exist.
_DUMMY_HASH = hash_password("faxgate-unknown-user")


@dataclass(frozen=True)
class FaxboxLogin:
    """The faxbox a session authenticated for with SMTP AUTH."""

    account_id: str
    faxbox_id: str
    username: str


class GatewayHandler:
    """aiosmtpd hooks of the gateway; one instance serves every session."""

    def __init__(self, ctx: ServiceContext, messages_dir: Path) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.config = ctx.config.smtp
        self.messages_dir = messages_dir
        self.settings = ReviewSettings(
            min_image_bytes=self.config.min_image_bytes,
            subject_as_cover=self.config.subject_as_cover,
        )
        # Store writes of accepted messages; shutdown waits for them.
        self.pending_writes: set[asyncio.Task[Any]] = set()

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads pipelined commands in order but does not advertise
        # PIPELINING (RFC 2920); insert it before the last line.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        # The check runs on the address aiosmtpd parsed, so that every
        # spelling of the null or an empty sender meets the same policy.
        if is_null_sender(address):
            return await self._reject_null_sender(session, address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def _reject_null_sender(self, session: Session, address: str) -> str:
        sender = "" if address == "<>" else address
        entry = self._entry(session, sender, "", account_id=None, faxbox_id=None)
        await self._log_refusals([(entry, "")], replies.NULL_SENDER)
        log.info("smtp.sender_refused", peer=_peer_ip(session), sender=sender, reason="null_sender")
        return replies.NULL_SENDER

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        transaction = cast(GatewayEnvelope, envelope)
        if len(transaction.rcpt_tos) >= self.config.max_recipients:
            return replies.reply(replies.TOO_MANY_RECIPIENTS, limit=self.config.max_recipients)

        sender = transaction.mail_from or ""
        route = await self._route(session, sender, address)
        if isinstance(route, str):
            return route
        transaction.rcpt_tos.append(address)
        transaction.rcpt_options.extend(rcpt_options)
        transaction.routes.append(route)
        return replies.reply(replies.RECIPIENT_OK, number=route.number)

    async def _route(self, session: Session, sender: str, address: str) -> Route | str:
        """Return the route of an acceptable recipient, or log the refusal and return its reply."""
        try:
            local_part, domain = split_recipient(address)
        except InvalidRecipientError as exc:
            return await self._refuse_recipient(
                session, sender, address, replies.reply(replies.INVALID_NUMBER, reason=exc.message)
            )
        found = await self.store.find_faxbox_by_domain(domain)
        if found is None:
            reply = replies.reply(replies.UNKNOWN_DOMAIN, domain=domain)
            return await self._refuse_recipient(session, sender, address, reply)

        account_id, faxbox = found
        target = {"account_id": account_id, "faxbox_id": faxbox["id"]}
        if not self._sender_ok(session, faxbox, sender):
            reply = replies.reply(replies.SENDER_NOT_ALLOWED, sender=sender)
            return await self._refuse_recipient(session, sender, address, reply, **target)
        try:
            number = recipient_number(local_part, faxbox, self.ctx.config.fax.default_region)
        except InvalidNumberError as exc:
            reply = replies.reply(replies.INVALID_NUMBER, reason=exc.message)
            return await self._refuse_recipient(
                session, sender, address, reply, original_number=local_part, **target
            )
        return Route(address, account_id, faxbox, local_part, number)

    def _sender_ok(self, session: Session, faxbox: dict[str, Any], sender: str) -> bool:
        login = session.auth_data if session.authenticated else None
        if isinstance(login, FaxboxLogin) and login.faxbox_id == faxbox["id"]:
            return True
        return sender_permitted(faxbox, sender)

    async def _refuse_recipient(
        self,
        session: Session,
        sender: str,
        address: str,
        reply: str,
        account_id: str | None = None,
        faxbox_id: str | None = None,
        original_number: str | None = None,
    ) -> str:
        entry = self._entry(session, sender, address, account_id=account_id, faxbox_id=faxbox_id)
        entry["original_number"] = original_number
        await self._log_refusals([(entry, address.lower())], reply)
        log.info(
            "smtp.recipient_refused",
            peer=_peer_ip(session),
            sender=sender,
            recipient=address,
            account_id=account_id,
            faxbox_id=faxbox_id,
            reply=reply,
        )
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transaction = cast(GatewayEnvelope, envelope)
        sender = transaction.mail_from or ""
        if transaction.data_problem is not None:
            await self._refuse_message(session, sender, transaction.routes, None,
                                       transaction.data_problem)
            return transaction.data_problem

        raw = transaction.original_content or b""
        login = session.auth_data if session.authenticated else None
        review = await asyncio.to_thread(
            review_message,
            raw,
            transaction.routes,
            sender,
            login.faxbox_id if isinstance(login, FaxboxLogin) else None,
            self.settings,
        )
        if review.refusal is not None:
            await self._refuse_message(session, sender, transaction.routes, review, review.refusal)
            return review.refusal
        return await self._accept(session, sender, raw, review)

    async def _refuse_message(
        self,
        session: Session,
        sender: str,
        routes: list[Route],
        review: Review | None,
        reply: str,
    ) -> None:
        items = review.routes if review is not None else unreviewed(routes, self.settings)
        entries = []
        for item in items:
            entry = self._route_entry(session, sender, item, review)
            entry["errors"] = [item.error or replies.reply_text(reply)]
            entries.append((entry, item.route.duplicate_key))
        await self._log_refusals(entries, reply)
        log.info("smtp.message_refused", peer=_peer_ip(session), sender=sender,
                 recipients=len(items), reply=reply)

    async def _accept(self, session: Session, sender: str, raw: bytes, review: Review) -> str:
        queue_id = new_id()
        path = self.messages_dir / f"{queue_id}.eml"
        await asyncio.to_thread(write_atomic, path, raw)
        reply = replies.reply(replies.ACCEPTED, queue_id=queue_id)

        now = self.ctx.clock.time()
        message = StoredMessage(queue_id, str(path), len(raw), to_gregorian(now))
        dedupe_id = review.message_id or f"<{queue_id}@faxgate.queue>"
        deliveries = [
            self._delivery(session, sender, item, review, queue_id, dedupe_id, reply)
            for item in review.routes
        ]
        since = to_gregorian(now - self.config.duplicate_window)
        write = asyncio.create_task(
            self.store.accept_smtp_message(message, deliveries, since),
            name=f"smtp-accept-{queue_id}",
        )
        self.pending_writes.add(write)
        write.add_done_callback(self.pending_writes.discard)
        try:
            # The write finishes even when the connection drops meanwhile:
            # a sender that never saw the 250 sends again, and duplicate
            # detection keeps the second delivery from being faxed.
            entries = await asyncio.shield(write)
        except Exception as exc:
            path.unlink(missing_ok=True)
            log.exception("smtp.store_failed", queue_id=queue_id, error=exc)
            return replies.TEMPORARY_FAILURE

        faxes = [entry["fax_id"] for entry in entries if entry.get("fax_id")]
        if not faxes:
            # Every recipient was a duplicate: the store kept no message row,
            # so no job will ever read the file.
            path.unlink(missing_ok=True)
        log.info(
            "smtp.message_accepted",
            peer=_peer_ip(session),
            queue_id=queue_id,
            sender=sender,
            message_id=review.message_id,
            size=len(raw),
            faxes=faxes,
            duplicates=sum(1 for entry in entries if entry.get("duplicate_of")),
        )
        return reply

    def _delivery(
        self,
        session: Session,
        sender: str,
        item: RouteReview,
        review: Review,
        queue_id: str,
        dedupe_id: str,
        reply: str,
    ) -> Delivery:
        route = item.route
        entry = self._route_entry(session, sender, item, review)
        entry.update(smtp_code=replies.reply_code(reply), smtp_reply=reply, queue_id=queue_id)
        faxbox = route.faxbox
        retries = faxbox.get("retries")
        job_doc: dict[str, Any] = {
            "from_name": faxbox.get("caller_name", ""),
            "notifications": {"email": {"send_to": [sender]}},
            "source": "email",
            "sender": sender,
            # A session that logged in for this faxbox vouches for its sender.
            "sender_authenticated": _authenticated_for(session, route.faxbox_id),
            "smtplog_id": entry["id"],
            "subject": review.subject,
            "original_number": route.original_number,
            "extract_options": item.options.to_doc(),
        }
        if faxbox.get("fax_timezone"):
            job_doc["fax_timezone"] = faxbox["fax_timezone"]
        job = NewFax(
            account_id=route.account_id,
            to_number=route.number,
            from_number=faxbox.get("caller_id") or "",
            retries=retries if isinstance(retries, int) else DEFAULT_RETRIES,
            doc=job_doc,
            faxbox_id=route.faxbox_id,
            status=ATTACHING_FILES,
            message_id=queue_id,
        )
        return Delivery(job, SmtpLogEntry(entry, route.duplicate_key, dedupe_id))

    def _route_entry(
        self, session: Session, sender: str, item: RouteReview, review: Review | None
    ) -> dict[str, Any]:
        route = item.route
        entry = self._entry(
            session, sender, route.address, account_id=route.account_id, faxbox_id=route.faxbox_id
        )
        entry.update(
            original_number=route.original_number,
            translated_number=route.number,
            documents=item.documents,
        )
        if review is not None:
            entry.update(
                header_from=review.header_from,
                subject=review.subject,
                message_id=review.message_id,
            )
        return entry

    def _entry(
        self,
        session: Session,
        sender: str,
        recipient: str,
        *,
        account_id: str | None,
        faxbox_id: str | None,
    ) -> dict[str, Any]:
        now = self.ctx.clock.time()
        login = session.auth_data if session.authenticated else None
        return {
            "id": month_id(now, new_id()),
            "created": to_gregorian(now),
            "from": sender,
            "to": recipient,
            "header_from": None,
            "subject": None,
            "message_id": None,
            "account_id": account_id,
            "faxbox_id": faxbox_id,
            "original_number": None,
            "translated_number": None,
            "fax_id": None,
            "documents": [],
            "errors": [],
            "smtp_code": None,
            "smtp_reply": None,
            "remote_ip": _peer_ip(session),
            "helo": session.host_name,
            "authenticated_as": login.username if isinstance(login, FaxboxLogin) else None,
            "status": None,
        }

    async def _log_refusals(self, entries: list[tuple[dict[str, Any], str]], reply: str) -> None:
        records = []
        for doc, recipient in entries:
            doc.update(status=REFUSED, smtp_code=replies.reply_code(reply), smtp_reply=reply)
            if not doc["errors"]:
                doc["errors"] = [replies.reply_text(reply)]
            records.append(SmtpLogEntry(doc, recipient))
        await self.store.add_smtplog_entries(records)

    async def handle_exception(self, error: Exception) -> str:
        log.exception("smtp.command_failed", error=error)
        return replies.TEMPORARY_FAILURE

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = await _auth_value(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        # RFC 4616: authorization id, NUL, user name, NUL, password.
        fields = blob.split(b"\x00")
        if len(fields) != 3:
            await server.push("501 5.5.2 Cannot split the AUTH PLAIN value")
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, fields[1], fields[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        username = await _auth_value(server, args, server.AuthLoginUsernameChallenge)
        if username is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._authenticate(server, username, password)

    async def _authenticate(self, server: SMTP, username: bytes, password: bytes) -> AuthResult:
        name = username.decode("utf-8", "replace")
        secret = password.decode("utf-8", "replace")
        candidates = await self.store.find_smtp_logins(name)
        for account_id, faxbox in candidates:
            stored = faxbox.get(PASSWORD_HASH_FIELD)
            if stored and await asyncio.to_thread(verify_password, secret, stored):
                log.info("smtp.authenticated", peer=_peer_ip(server.session), username=name,
                         faxbox_id=faxbox["id"])
                return AuthResult(
                    success=True, auth_data=FaxboxLogin(account_id, faxbox["id"], name)
                )
        if not candidates:
            await asyncio.to_thread(verify_password, secret, _DUMMY_HASH)
        log.warning("smtp.auth_failed", peer=_peer_ip(server.session), username=name)
        return AuthResult(success=False, handled=False)


async def _auth_value(server: SMTP, args: list[str], challenge: str) -> bytes | None:
    """Return the value given with AUTH, or ask for it; None once an error reply was sent."""
    if len(args) == 1:
        answer = await server.challenge_auth(challenge)
        return answer if isinstance(answer, bytes) else None
    try:
        return base64.b64decode(args[1].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        await server.push("501 5.5.2 Cannot decode base64")
        return None


def _peer_ip(session: Session | None) -> str | None:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer) if peer else None


def _authenticated_for(session: Session, faxbox_id: str) -> bool:
    login = session.auth_data if session.authenticated else None
    return isinstance(login, FaxboxLogin) and login.faxbox_id == faxbox_id

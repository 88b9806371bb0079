"""Decide at DATA time whether a message can become a fax for each accepted recipient.

`review_message` is synchronous and CPU-bound (MIME parsing, a cheap PDF
check); the handler runs it in a worker thread.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from faxgate.errors import DocumentError
from faxgate.smtp import replies
from faxgate.smtp.mime import (
    Extraction,
    ExtractOptions,
    UnreadableMessageError,
    extract_from_message,
    header_text,
    parse_message,
    repair_surrogates,
)
from faxgate.smtp.routing import Route, same_address, sender_permitted
from faxgate.smtp.sniff import inspect_document


@dataclass
class RouteReview:
    """The verdict for one recipient: a refusal reply or None, and the documents found."""

    route: Route
    options: ExtractOptions
    refusal: str | None = None
    error: str | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Review:
    """Findings about a message before the reply to DATA: headers and per-recipient verdicts."""

    header_from: str | None
    subject: str | None
    message_id: str | None
    routes: list[RouteReview]

    @property
    def refusal(self) -> str | None:
        """The reply for the whole message: the first recipient's refusal, or None."""
        return next((item.refusal for item in self.routes if item.refusal), None)


@dataclass(frozen=True)
class ReviewSettings:
    min_image_bytes: int
    subject_as_cover: bool


def review_message(
    raw: bytes,
    routes: list[Route],
    sender: str,
    authenticated_faxbox_id: str | None,
    settings: ReviewSettings,
) -> Review:
    """Check the message against every recipient's faxbox and find its documents.

    A recipient is refused when the header From is not allowed by its
    faxbox, when the message is unreadable MIME, contains nothing faxable,
    or contains a password-protected PDF. A faxbox that the session authenticated
    for skips the header From check.
    """
    reviews = unreviewed(routes, settings)
    try:
        message = parse_message(raw)
    except UnreadableMessageError as exc:
        for item in reviews:
            _refuse(item, replies.reply(replies.UNREADABLE_MESSAGE, reason=exc.message))
        return Review(None, None, None, reviews)

    review = Review(
        header_text(message, "From"),
        header_text(message, "Subject"),
        header_text(message, "Message-ID"),
        reviews,
    )
    cache: dict[ExtractOptions, tuple[list[dict[str, Any]], str | None]] = {}
    for item in reviews:
        authenticated = item.route.faxbox_id == authenticated_faxbox_id
        refusal = None if authenticated else _header_from_refusal(message, sender, item.route)
        if refusal is not None:
            _refuse(item, refusal)
            continue
        if item.options not in cache:
            cache[item.options] = _documents(message, item.options)
        documents, document_refusal = cache[item.options]
        item.documents = documents
        if document_refusal is not None:
            _refuse(item, document_refusal)
    return review


def unreviewed(routes: list[Route], settings: ReviewSettings) -> list[RouteReview]:
    """Return a verdict-less review item per route, for messages refused before review."""
    return [RouteReview(route, _options(route, settings)) for route in routes]


def _options(route: Route, settings: ReviewSettings) -> ExtractOptions:
    return ExtractOptions(
        min_image_bytes=settings.min_image_bytes,
        fax_text_body=bool(route.faxbox.get("smtp_fax_text_body")),
        subject_as_cover=settings.subject_as_cover,
    )


def _refuse(item: RouteReview, reply: str) -> None:
    item.refusal = reply
    item.error = replies.reply_text(reply)


def _header_from_refusal(message: EmailMessage, sender: str, route: Route) -> str | None:
    """Return the refusal when the header From names an address the faxbox does not allow."""
    if route.faxbox.get("smtp_check_header_from") is False:
        return None
    header = header_text(message, "From")
    if header is None:
        return None
    addresses = [
        repair_surrogates(address)
        for _name, address in email.utils.getaddresses([header])
        if "@" in address
    ]
    if not addresses:
        return replies.HEADER_FROM_INVALID
    for address in addresses:
        if not same_address(address, sender) and not sender_permitted(route.faxbox, address):
            return replies.reply(replies.HEADER_FROM_NOT_ALLOWED, address=address)
    return None


def _documents(
    message: EmailMessage, options: ExtractOptions
) -> tuple[list[dict[str, Any]], str | None]:
    """Extract and check the documents; return their smtplog summary and any refusal."""
    try:
        extraction = extract_from_message(message, options)
    except UnreadableMessageError as exc:
        return [], replies.reply(replies.UNREADABLE_MESSAGE, reason=exc.message)

    summary: list[dict[str, Any]] = []
    refusal = None
    for document in extraction.documents:
        entry: dict[str, Any] = {
            "filename": document.filename,
            "content_type": document.content_type,
            "detected_type": document.detected_type,
            "size": len(document.data),
        }
        try:
            entry["pages"] = inspect_document(
                document.data, document.filename, document.detected_type
            ).pages
        except DocumentError as exc:
            entry["error"] = exc.message
            if refusal is None:
                refusal = _document_refusal(exc, document.filename)
        summary.append(entry)
    for part in extraction.skipped:
        summary.append(
            {
                "filename": part.filename,
                "content_type": part.content_type,
                "skipped": part.reason,
                "skipped_kind": part.kind,
            }
        )
        if part.detected_type is not None:
            summary[-1]["detected_type"] = part.detected_type
    if not extraction.documents:
        refusal = _missing_documents_refusal(extraction, options)
    return summary, refusal


def _document_refusal(exc: DocumentError, filename: str | None) -> str:
    if exc.code == "password_protected":
        return replies.reply(replies.PASSWORD_PROTECTED, filename=filename or "The PDF")
    return replies.reply(replies.NO_DOCUMENT, reason=exc.message)


def _missing_documents_refusal(extraction: Extraction, options: ExtractOptions) -> str:
    if extraction.blocks_text_fallback or (extraction.skipped and not extraction.text_body):
        reasons = "; ".join(
            f"{part.filename or part.content_type}: {part.reason}"
            for part in extraction.skipped[:3]
        )
        return replies.reply(replies.NO_DOCUMENT, reason=reasons)
    if extraction.text_body and not options.fax_text_body:
        return replies.TEXT_NOT_ALLOWED
    return replies.EMPTY_MESSAGE

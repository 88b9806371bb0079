"""SMTP reply lines sent by the gateway, as named templates.

Codes follow RFC 5321 section 4.2; the enhanced status codes after them
follow RFC 3463. Templates with fields are filled by `reply`, which keeps
the line printable ASCII and within the 512-octet reply limit of RFC 5321
section 4.5.3.1.5.
"""

from __future__ import annotations

import re

SERVICE_IDENT = "faxgate ESMTP"

SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK, fax to {number}"
ACCEPTED = "250 2.0.0 Message accepted for faxing, queued as {queue_id}"

NULL_SENDER = (
    "550 5.7.1 The null sender <> or an empty sender address is not accepted: faxes need"
    " a sender address that can receive the fax report"
)
UNKNOWN_DOMAIN = "550 5.1.2 No faxbox receives mail for {domain}"
INVALID_NUMBER = "550 5.1.1 {reason}"
SENDER_NOT_ALLOWED = "550 5.7.1 Sender {sender} is not allowed to send faxes to this faxbox"
HEADER_FROM_NOT_ALLOWED = (
    "550 5.7.1 Header From address {address} is not allowed to send faxes to this faxbox"
)
HEADER_FROM_INVALID = "550 5.7.1 The header From field does not contain a valid address"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients: at most {limit} per message"

MESSAGE_TOO_BIG = "552 5.3.4 Message size exceeds the limit of {limit} bytes"
LINE_TOO_LONG = (
    "500 5.5.2 Line longer than {limit} characters: lines of a message may have at most"
    " {limit} characters plus CRLF (RFC 5321 section 4.5.3.1.6)"
)
BARE_LF = (
    "500 5.5.2 Bare LF line ending in the message: end every line with CRLF"
    " (RFC 5321 section 2.3.8)"
)

UNREADABLE_MESSAGE = "554 5.6.0 The message is not readable MIME: {reason}"
PASSWORD_PROTECTED = "554 5.6.0 {filename} is password-protected: send it without a password"
NO_DOCUMENT = "554 5.6.1 No faxable document in the message: {reason}"
TEXT_NOT_ALLOWED = (
    "554 5.6.1 The message has no attachment and this faxbox does not fax message text:"
    " attach a PDF or TIFF"
)
EMPTY_MESSAGE = "554 5.6.1 The message has no attachment and no text to fax"

TEMPORARY_FAILURE = "451 4.3.0 The message could not be processed: try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TOO_MANY_SESSIONS = "421 4.7.0 Too many connections, try again later"
IDLE_TIMEOUT = "421 4.4.2 No command received in {seconds} seconds, closing the connection"

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_MAX_FIELD = 200
_MAX_LINE = 510  # 512 octets including CRLF


def reply(template: str, **fields: object) -> str:
    """Fill `template`, replacing non-printable and non-ASCII characters in fields with '?'."""
    cleaned = {name: _clean(str(value)) for name, value in fields.items()}
    return template.format(**cleaned)[:_MAX_LINE]


def _clean(text: str) -> str:
    text = _UNPRINTABLE.sub("?", text)
    if len(text) > _MAX_FIELD:
        text = text[: _MAX_FIELD - 3] + "..."
    return text


def reply_code(line: str) -> int:
    """Return the three-digit code at the start of a reply line."""
    return int(line[:3])


def reply_text(line: str) -> str:
    """Return a reply line without its code and enhanced status code."""
    parts = line.split(" ", 2)
    return parts[2] if len(parts) == 3 else line

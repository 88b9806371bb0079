"""Notification mail messages, built with the standard library's email package.

The structure is multipart/mixed: a multipart/alternative with the plain
text and the HTML (the HTML in a multipart/related with the first-page PNG
when there is one), then the fax document as an attachment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from faxgate.notify.templates import RenderedTemplate

# Auto-Submitted values from RFC 3834: "auto-generated" marks mail that
# software sends on an event, "auto-replied" mail sent in reply to a message.
# Automatic responders such as vacation programs reply to neither.
AUTO_GENERATED = "auto-generated"
AUTO_REPLIED = "auto-replied"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


@dataclass
class MailContent:
    """The content shared by every recipient's copy of one notification."""

    rendered: RenderedTemplate
    auto_submitted: str
    preview_png: bytes | None = None
    preview_cid: str | None = None
    attachment: Attachment | None = None
    in_reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def new_content_id(sender: str) -> str:
    """Return a Content-ID for an inline part, without the angle brackets."""
    # Passing the domain keeps make_msgid from looking up this host's name.
    return make_msgid("preview", domain=sender_domain(sender))[1:-1]


def new_message_id(sender: str) -> str:
    return make_msgid("faxgate", domain=sender_domain(sender))


def build_message(
    content: MailContent, *, sender: str, recipient: str, message_id: str, date: float
) -> bytes:
    """Return one recipient's copy of the notification as bytes with CRLF line ends."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = content.rendered.subject
    message["Date"] = format_datetime(datetime.fromtimestamp(date, UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = content.auto_submitted
    if content.in_reply_to:
        message["In-Reply-To"] = content.in_reply_to
        message["References"] = content.in_reply_to
    for name, value in content.headers.items():
        message[name] = value

    message.set_content(content.rendered.text)
    message.add_alternative(content.rendered.html, subtype="html")
    if content.preview_png is not None and content.preview_cid is not None:
        html_part = message.get_body(preferencelist=("html",))
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(
            content.preview_png,
            maintype="image",
            subtype="png",
            cid=f"<{content.preview_cid}>",
            disposition="inline",
            filename="first-page.png",
        )
    if content.attachment is not None:
        attachment = content.attachment
        message.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    return message.as_bytes()

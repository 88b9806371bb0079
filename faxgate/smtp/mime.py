"""Find the faxable documents in a raw mail message.

`extract_documents` is pure and deterministic. The SMTP gateway calls it
before it replies to DATA, to reject a message with nothing to fax. The
worker calls it again on the stored message with the same options to get
the documents it renders.

Parts are collected in MIME order. Nested multiparts, forwarded messages
(message/rfc822), the signed content of multipart/signed and the files
inside Outlook's TNEF winmail.dat are searched. A part's type is decided by
`faxgate.smtp.sniff.detect_type`: content first, then file name, then the
declared type. A part whose name or declared type promises a binary format
(PDF, TIFF, image, ZIP-based office) but whose content is text is skipped as
MISLABELLED (`faxgate.documents.detect.label_mismatch`).
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

from tnefparse import TNEF

from faxgate.documents import DETECTED_CONTENT_TYPES
from faxgate.documents.detect import detect_type as detect_content_type
from faxgate.documents.detect import label_mismatch
from faxgate.errors import FaxgateError
from faxgate.smtp.sniff import HEAD_BYTES, IMAGE_TYPES, detect_type

# Stable codes for SkippedPart.kind: the reason a part was skipped.
LOGO = "logo"
SIGNATURE = "signature"
CONTAINER = "container"
UNSUPPORTED = "unsupported"
EMPTY = "empty"
ENCRYPTED = "encrypted"
UNREADABLE = "unreadable"
MISLABELLED = "mislabelled"
# Skipped parts of these kinds were likely meant as documents, so a message
# that has them is never faxed as its text body alone.
_BLOCKS_TEXT_FALLBACK = frozenset({UNSUPPORTED, EMPTY, ENCRYPTED, UNREADABLE, MISLABELLED})

# Forwarded messages inside forwarded messages, and multiparts inside
# multiparts, are searched this deep.
MAX_DEPTH = 20

_BOUNDARY_DEFECTS = (
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.MultipartInvariantViolationDefect,
)
_CID_REFERENCE = re.compile(r"""cid:([^"'\s<>)]+)""", re.IGNORECASE)
_SIGNATURE_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
_OPAQUE_SMIME_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_FORWARDED_TYPES = frozenset({"message/rfc822", "message/global"})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})


class UnreadableMessageError(FaxgateError):
    """The message is not readable MIME; send it again from a standard mail client."""

    code = "unreadable_message"


@dataclass(frozen=True)
class ExtractOptions:
    """Settings that change what `extract_documents` returns.

    min_image_bytes: images that are not marked as attachments and are
    smaller than this are taken for logos and skipped. fax_text_body: a
    message without a faxable attachment is faxed as its text. subject_as_cover:
    return the subject as a cover note.
    """

    min_image_bytes: int
    fax_text_body: bool
    subject_as_cover: bool

    def to_doc(self) -> dict[str, Any]:
        return {
            "min_image_bytes": self.min_image_bytes,
            "fax_text_body": self.fax_text_body,
            "subject_as_cover": self.subject_as_cover,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ExtractOptions:
        return cls(
            min_image_bytes=int(doc["min_image_bytes"]),
            fax_text_body=bool(doc["fax_text_body"]),
            subject_as_cover=bool(doc["subject_as_cover"]),
        )


@dataclass(frozen=True)
class ExtractedDocument:
    """A faxable part: its decoded bytes and the type decided from its content.

    Text documents hold UTF-8 bytes whatever the charset of the mail part was.
    """

    data: bytes
    filename: str | None
    content_type: str
    detected_type: str


@dataclass(frozen=True)
class SkippedPart:
    """A part that is not faxed, with a sentence saying why and a stable `kind` code.

    `detected_type` is the type its content shows, where that is known and
    differs from its label (MISLABELLED parts).
    """

    filename: str | None
    content_type: str
    reason: str
    kind: str = UNSUPPORTED
    detected_type: str | None = None


@dataclass
class Extraction:
    """The documents of a message in MIME order, the skipped parts and the text body.

    `subject` is the subject to print as a cover note; it is None unless the
    options ask for one.
    """

    documents: list[ExtractedDocument] = field(default_factory=list)
    skipped: list[SkippedPart] = field(default_factory=list)
    text_body: str | None = None
    subject: str | None = None

    @property
    def blocks_text_fallback(self) -> bool:
        """Whether a skipped part looks like a document the sender meant to fax."""
        return any(part.kind in _BLOCKS_TEXT_FALLBACK for part in self.skipped)


def parse_message(raw: bytes) -> EmailMessage:
    """Parse raw message bytes with the standard library's default policy."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except (RecursionError, LookupError, ValueError, email.errors.MessageError) as exc:
        raise UnreadableMessageError(f"the message cannot be parsed: {exc}") from exc
    assert isinstance(message, EmailMessage)
    if not message.keys():
        raise UnreadableMessageError("the message has no header fields")
    return message


def extract_documents(raw: bytes, options: ExtractOptions) -> Extraction:
    """Return the faxable documents of the raw message `raw`.

    Raises UnreadableMessageError when the MIME structure cannot be read.
    """
    return extract_from_message(parse_message(raw), options)


def extract_from_message(message: EmailMessage, options: ExtractOptions) -> Extraction:
    """Return the faxable documents of an already parsed message."""
    try:
        return _extract(message, options)
    except (RecursionError, LookupError, ValueError, email.errors.MessageError) as exc:
        raise UnreadableMessageError(f"the MIME structure cannot be read: {exc}") from exc


def header_text(message: EmailMessage, name: str) -> str | None:
    """Return a header's decoded value without surrounding white space, or None."""
    value = message.get(name)
    if value is None:
        return None
    text = repair_surrogates(str(value)).strip()
    return text or None


def repair_surrogates(text: str) -> str:
    """Decode raw UTF-8 bytes that the parser kept as surrogate escapes (RFC 6532 headers)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _extract(message: EmailMessage, options: ExtractOptions) -> Extraction:
    extraction = Extraction()
    walker = _Walker(options, _html_cid_references(message), extraction)
    walker.walk(message, depth=0)
    extraction.text_body = _body_text(message, depth=0) or None

    if (
        not extraction.documents
        and options.fax_text_body
        and extraction.text_body
        and not extraction.blocks_text_fallback
    ):
        extraction.documents.append(
            ExtractedDocument(extraction.text_body.encode("utf-8"), None, "text/plain", "text")
        )
    if options.subject_as_cover:
        extraction.subject = header_text(message, "Subject")
    return extraction


class _Walker:
    """Collects documents and skipped parts of one message in MIME order."""

    def __init__(self, options: ExtractOptions, cid_references: set[str], out: Extraction):
        self.options = options
        self.cid_references = cid_references
        self.out = out

    def walk(self, part: EmailMessage, depth: int) -> None:
        content_type = part.get_content_type()
        if depth > MAX_DEPTH:
            self._skip(part, f"nested more than {MAX_DEPTH} levels deep", UNREADABLE)
        elif part.get_content_maintype() == "multipart":
            self._walk_multipart(part, depth)
        elif content_type in _FORWARDED_TYPES:
            for inner in _forwarded_messages(part):
                self.walk(inner, depth + 1)
        elif content_type in _SIGNATURE_TYPES:
            self._skip(part, "signature part", SIGNATURE)
        elif content_type in _OPAQUE_SMIME_TYPES:
            self._skip(part, "S/MIME encrypted or opaque-signed part: send it unencrypted",
                       ENCRYPTED)
        elif content_type in _TNEF_TYPES or _filename(part) == "winmail.dat":
            self._unpack_tnef(part)
        elif part.get_content_maintype() == "message":
            self._skip(part, f"{content_type} parts are not faxed", UNSUPPORTED)
        elif not _is_body_text(part):
            self._add_leaf(part)

    def _walk_multipart(self, part: EmailMessage, depth: int) -> None:
        if any(isinstance(defect, _BOUNDARY_DEFECTS) for defect in part.defects):
            raise UnreadableMessageError(
                f"the {part.get_content_type()} part has a missing or broken boundary"
            )
        children = [child for child in part.iter_parts() if isinstance(child, EmailMessage)]
        subtype = part.get_content_subtype()
        if subtype == "encrypted":
            self._skip(part, "encrypted message part: send it unencrypted", ENCRYPTED)
            return
        if subtype == "signed" and children:
            # RFC 1847: the first part is the signed content, the second the signature.
            self.walk(children[0], depth + 1)
            for signature in children[1:]:
                self._skip(signature, "signature part", SIGNATURE)
            return
        for child in children:
            self.walk(child, depth + 1)

    def _add_leaf(self, part: EmailMessage) -> None:
        data = _payload_bytes(part)
        self._classify(
            data,
            _filename(part),
            part.get_content_type(),
            attached=part.get_content_disposition() == "attachment",
            content_id=_content_id(part),
            charset=part.get_content_charset(),
        )

    def _classify(
        self,
        data: bytes,
        filename: str | None,
        declared: str,
        *,
        attached: bool,
        content_id: str | None,
        charset: str | None = None,
    ) -> None:
        if not data:
            self.out.skipped.append(SkippedPart(filename, declared, "empty part", EMPTY))
            return
        head = data[:HEAD_BYTES]
        mismatch = label_mismatch(head, filename, declared)
        if mismatch is not None:
            content = detect_content_type(head, None, None)
            self.out.skipped.append(
                SkippedPart(filename, declared, mismatch, MISLABELLED, detected_type=content)
            )
            return
        detected = detect_type(head, filename, declared)
        if detected is None:
            reason = f"{declared} is not a faxable type: send a PDF, TIFF or image"
            self.out.skipped.append(SkippedPart(filename, declared, reason, UNSUPPORTED))
            return
        if detected in IMAGE_TYPES and detected != "tiff":
            logo = self._logo_reason(len(data), attached, content_id)
            if logo is not None:
                self.out.skipped.append(SkippedPart(filename, declared, logo, LOGO))
                return
        if detected == "text":
            data = decode_text(data, charset).encode("utf-8")
        self.out.documents.append(
            ExtractedDocument(data, filename, DETECTED_CONTENT_TYPES[detected], detected)
        )

    def _logo_reason(self, size: int, attached: bool, content_id: str | None) -> str | None:
        if content_id is not None and content_id in self.cid_references:
            return f"image shown in the HTML body (cid:{content_id})"
        if not attached and size < self.options.min_image_bytes:
            return (
                f"inline image of {size} bytes, under {self.options.min_image_bytes} bytes:"
                " taken for a logo"
            )
        return None

    def _unpack_tnef(self, part: EmailMessage) -> None:
        filename = _filename(part) or "winmail.dat"
        data = _payload_bytes(part)
        try:
            container = TNEF(data, do_checksum=False)
            files = [(_tnef_filename(item), bytes(item.data)) for item in container.attachments]
        except Exception as exc:  # tnefparse raises many exception types on damaged input
            reason = f"Outlook TNEF container could not be unpacked: {exc}"
            self.out.skipped.append(
                SkippedPart(filename, part.get_content_type(), reason, UNREADABLE)
            )
            return
        if not files:
            reason = "Outlook TNEF container without attached files"
            self.out.skipped.append(
                SkippedPart(filename, part.get_content_type(), reason, CONTAINER)
            )
        for name, content in files:
            self._classify(
                content, name, "application/octet-stream", attached=True, content_id=None
            )

    def _skip(self, part: EmailMessage, reason: str, kind: str) -> None:
        self.out.skipped.append(SkippedPart(_filename(part), part.get_content_type(), reason, kind))


def _forwarded_messages(part: EmailMessage) -> Iterator[EmailMessage]:
    if part.is_multipart():
        for inner in part.get_payload():
            if isinstance(inner, EmailMessage):
                yield inner
        return
    # A forwarded message with a base64 or quoted-printable transfer encoding
    # is not a valid message/rfc822 part (RFC 2046 section 5.2.1), but some
    # clients send it: decode it and parse it as a message.
    yield parse_message(_payload_bytes(part))


def _payload_bytes(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _filename(part: EmailMessage) -> str | None:
    """Return the part's file name, decoded from RFC 2231 or RFC 2047, without folders."""
    name = part.get_filename()
    if not name:
        return None
    name = repair_surrogates(str(name))
    base = re.split(r"[\\/]", name)[-1].strip()
    return base or None


def _tnef_filename(item: Any) -> str | None:
    name = item.long_filename()
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    name = str(name).strip("\x00").strip()
    return name or None


def _content_id(part: EmailMessage) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    cid = str(value).strip().strip("<>").strip().lower()
    return cid or None


def _is_body_text(part: EmailMessage) -> bool:
    return (
        part.get_content_type() in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and _filename(part) is None
    )


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode text with its declared charset, falling back to UTF-8, then Windows-1252."""
    candidates = [charset] if charset else []
    candidates += ["utf-8", "cp1252"]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _html_cid_references(message: EmailMessage) -> set[str]:
    references: set[str] = set()
    for part in message.walk():
        if isinstance(part, EmailMessage) and part.get_content_type() == "text/html":
            html = decode_text(_payload_bytes(part), part.get_content_charset())
            for match in _CID_REFERENCE.finditer(html):
                references.add(urllib.parse.unquote(match.group(1)).strip().lower())
    return references


def _body_text(part: EmailMessage, depth: int) -> str:
    """Return the text of the message body: text/plain preferred, else text rendered from HTML."""
    if depth > MAX_DEPTH:
        return ""
    if depth == 0 and part.get_content_type() in _FORWARDED_TYPES:
        # A message that is itself a forwarded message (GroupWise forwards
        # this way): its text is the forwarded message's text.
        texts = [_body_text(inner, depth + 1) for inner in _forwarded_messages(part)]
        return "\n\n".join(text for text in texts if text)
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        children = [child for child in part.iter_parts() if isinstance(child, EmailMessage)]
        subtype = part.get_content_subtype()
        if subtype == "alternative":
            return _best_alternative(children, depth)
        if subtype == "signed":
            children = children[:1]
        if subtype == "encrypted":
            return ""
        texts = [_body_text(child, depth + 1) for child in children]
        return "\n\n".join(text for text in texts if text)
    if not _is_body_text(part):
        return ""
    text = decode_text(_payload_bytes(part), part.get_content_charset())
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return _tidy_text(text)


def _best_alternative(children: list[EmailMessage], depth: int) -> str:
    plain = [child for child in children if child.get_content_type() == "text/plain"]
    for child in plain + [child for child in children if child not in plain]:
        text = _body_text(child, depth + 1)
        if text:
            return text
    return ""


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip()


_BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "dd", "div", "dl", "dt", "footer", "form",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "table", "tr", "ul",
    }
)
_HIDDEN_TAGS = frozenset({"head", "script", "style", "title", "template"})


class _HtmlText(HTMLParser):
    """Renders HTML as plain text: blocks become lines, list items get a dash."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.hidden = 0
        self.preformatted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag == "br":
            self.end_line(keep_empty=True)
        elif tag in _BLOCK_TAGS:
            self.end_line()
            if tag == "li":
                self.current.append("- ")
            if tag == "pre":
                self.preformatted += 1
        elif tag in ("td", "th") and self.current:
            self.current.append("  ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.end_line()
            if tag == "pre":
                self.preformatted = max(0, self.preformatted - 1)
            if tag in ("p", "div", "table", "h1", "h2", "h3", "h4", "h5", "h6"):
                self.lines.append("")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.preformatted:
            pieces = data.split("\n")
            self.current.append(pieces[0])
            for piece in pieces[1:]:
                self.end_line(keep_empty=True)
                self.current.append(piece)
            return
        self.current.append(re.sub(r"\s+", " ", data))

    def end_line(self, keep_empty: bool = False) -> None:
        line = "".join(self.current)
        line = line.rstrip() if self.preformatted else line.strip()
        self.current = []
        if line or keep_empty:
            self.lines.append(line)

    def text(self) -> str:
        self.end_line()
        collapsed: list[str] = []
        for line in self.lines:
            if line == "" and (not collapsed or collapsed[-1] == ""):
                continue
            collapsed.append(line)
        return "\n".join(collapsed).strip()


def html_to_text(html: str) -> str:
    """Render an HTML body as plain text with the standard library's html.parser."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return parser.text()

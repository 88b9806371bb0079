"""Test inputs for the SMTP gateway, built here: PDFs, images, TNEF and mail messages.

Each message builder returns raw bytes with CRLF line endings, shaped the way
a real mail client sends that kind of message.
"""

from __future__ import annotations

import base64
import io
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import (
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
)

SENDER = "alice@example.com"


def make_pdf(pages: int = 1, label: str = "Page") -> bytes:
    """Return a PDF of `pages` letter pages, each showing "<label> <n>" in Helvetica."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for number in range(1, pages + 1):
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 36 Tf 72 700 Td ({label} {number}) Tj ET".encode("ascii"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_encrypted_pdf(user_password: str = "secret") -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(1)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_owner_only_pdf() -> bytes:
    """A PDF with only an owner password (printing restrictions): it opens without one."""
    return make_encrypted_pdf(user_password="")


def make_photo_jpeg(width: int = 480, height: int = 640) -> bytes:
    """A noisy JPEG like a phone photo of a page: far above the logo size limit."""
    rng = random.Random(7)
    pixels = bytes(rng.randrange(256) for _ in range(width * height))
    image = Image.frombytes("L", (width, height), pixels).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def make_logo_png() -> bytes:
    """A small PNG like a signature logo."""
    image = Image.new("RGB", (32, 16), (200, 30, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_tiff() -> bytes:
    image = Image.new("1", (200, 100), 1)
    out = io.BytesIO()
    image.save(out, format="TIFF", compression="group4")
    return out.getvalue()


# TNEF attribute ids: (type << 16) | name, per the MS-OXTNEF specification.
_TNEF_SIGNATURE = 0x223E9F78
_ATT_TNEF_VERSION = (0x0008 << 16) | 0x9006
_ATT_OEM_CODEPAGE = (0x0006 << 16) | 0x9007
_ATT_MESSAGE_CLASS = (0x0007 << 16) | 0x8008
_ATT_ATTACH_REND_DATA = (0x0002 << 16) | 0x9002
_ATT_ATTACH_TITLE = (0x0001 << 16) | 0x8010
_ATT_ATTACH_DATA = (0x0006 << 16) | 0x800F
_LEVEL_MESSAGE = 1
_LEVEL_ATTACHMENT = 2


def _tnef_attribute(level: int, attribute: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attribute, len(data)) + data + struct.pack("<H", checksum)


def make_tnef(files: list[tuple[str, bytes]]) -> bytes:
    """Return a winmail.dat holding `files` as attachments."""
    out = struct.pack("<IH", _TNEF_SIGNATURE, 0x0001)
    out += _tnef_attribute(_LEVEL_MESSAGE, _ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += _tnef_attribute(_LEVEL_MESSAGE, _ATT_OEM_CODEPAGE, struct.pack("<II", 1252, 0))
    out += _tnef_attribute(_LEVEL_MESSAGE, _ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00")
    for name, data in files:
        # attAttachRendData: attachment type 1 (file), position, rendering sizes.
        rendering = struct.pack("<HIhhI", 1, 0xFFFFFFFF, -1, -1, 0)
        out += _tnef_attribute(_LEVEL_ATTACHMENT, _ATT_ATTACH_REND_DATA, rendering)
        out += _tnef_attribute(_LEVEL_ATTACHMENT, _ATT_ATTACH_TITLE, name.encode() + b"\x00")
        out += _tnef_attribute(_LEVEL_ATTACHMENT, _ATT_ATTACH_DATA, data)
    return out


def _headers(subject: str, sender: str, message_id: str | None, extra: str = "") -> str:
    lines = [
        f"From: Alice <{sender}>",
        "To: fax@fax.test",
        f"Subject: {subject}",
        "Date: Mon, 02 Sep 2024 10:00:00 +0000",
        f"Message-ID: {message_id or '<' + subject.replace(' ', '-') + '@example.com>'}",
        "MIME-Version: 1.0",
    ]
    return "\r\n".join(lines) + "\r\n" + extra


def _b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def octet_stream_pdf(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A PDF sent as application/octet-stream with no Content-Disposition and no name."""
    return _crlf(
        _headers("octet stream pdf", sender, message_id,
                 'Content-Type: multipart/mixed; boundary="outer"\n')
        + "\n--outer\nContent-Type: text/plain; charset=us-ascii\n\nPlease fax.\n"
        + "\n--outer\nContent-Type: application/octet-stream\n"
        + "Content-Transfer-Encoding: base64\n\n"
        + _b64(make_pdf(2))
        + "\n--outer--\n"
    )


def inline_pdf_with_parameters(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """An inline PDF with extra Content-Type and Content-Disposition parameters."""
    return _crlf(
        _headers("inline pdf", sender, message_id,
                 'Content-Type: multipart/mixed; boundary="b1"\n')
        + "\n--b1\nContent-Type: application/pdf; name=\"scan.pdf\"; x-mac-type=\"50444620\"\n"
        + 'Content-Disposition: inline; filename="scan.pdf"; size=1234;\n'
        + ' creation-date="Mon, 02 Sep 2024 10:00:00 +0000"\n'
        + "Content-Transfer-Encoding: base64\n\n"
        + _b64(make_pdf(1))
        + "\n--b1--\n"
    )


RFC2231_FILENAME = "Überweisung für Bürgerbüro – März.pdf"


def rfc2231_continued_filename(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A file name split into RFC 2231 continuations with percent-encoded UTF-8."""
    encoded = "".join(f"%{byte:02X}" for byte in RFC2231_FILENAME.encode("utf-8"))
    pieces = [encoded[i : i + 39] for i in range(0, len(encoded), 39)]
    parameters = ";\n".join(
        f" filename*{index}*={'UTF-8' + chr(39) * 2 if index == 0 else ''}{piece}"
        for index, piece in enumerate(pieces)
    )
    return _crlf(
        _headers("rfc2231 name", sender, message_id,
                 'Content-Type: multipart/mixed; boundary="b2"\n')
        + "\n--b2\nContent-Type: application/pdf\n"
        + f"Content-Disposition: attachment;\n{parameters}\n"
        + "Content-Transfer-Encoding: base64\n\n"
        + _b64(make_pdf(1))
        + "\n--b2--\n"
    )


def tnef_pdf(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """Outlook rich text mail: the PDF travels inside winmail.dat."""
    winmail = make_tnef([("invoice.pdf", make_pdf(1))])
    return _crlf(
        _headers("tnef pdf", sender, message_id,
                 'Content-Type: multipart/mixed; boundary="b3"\n')
        + "\n--b3\nContent-Type: text/plain\n\nSee attached.\n"
        + '\n--b3\nContent-Type: application/ms-tnef; name="winmail.dat"\n'
        + 'Content-Disposition: attachment; filename="winmail.dat"\n'
        + "Content-Transfer-Encoding: base64\n\n"
        + _b64(winmail)
        + "\n--b3--\n"
    )


def forwarded_pdf(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A message forwarded as an attachment, with the PDF inside the forwarded one."""
    inner = (
        "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: contract\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="inner"\n'
        "\n--inner\nContent-Type: text/plain\n\nHere is the contract.\n"
        '\n--inner\nContent-Type: application/pdf; name="contract.pdf"\n'
        'Content-Disposition: attachment; filename="contract.pdf"\n'
        "Content-Transfer-Encoding: base64\n\n" + _b64(make_pdf(3)) + "\n--inner--\n"
    )
    return _crlf(
        _headers("forwarded", sender, message_id,
                 'Content-Type: multipart/mixed; boundary="outer4"\n')
        + "\n--outer4\nContent-Type: text/plain\n\nForwarding this.\n"
        + '\n--outer4\nContent-Type: message/rfc822\nContent-Disposition: attachment;'
        + ' filename="contract.eml"\n\n'
        + inner
        + "\n--outer4--\n"
    )


def smime_signed(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """An S/MIME multipart/signed message; the signature is dummy bytes."""
    return _crlf(
        _headers("signed", sender, message_id,
                 'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
                 ' micalg=sha-256; boundary="sig"\n')
        + '\n--sig\nContent-Type: multipart/mixed; boundary="signed-body"\n'
        + "\n--signed-body\nContent-Type: text/plain\n\nSigned fax.\n"
        + '\n--signed-body\nContent-Type: application/pdf; name="signed.pdf"\n'
        + 'Content-Disposition: attachment; filename="signed.pdf"\n'
        + "Content-Transfer-Encoding: base64\n\n" + _b64(make_pdf(1))
        + "\n--signed-body--\n"
        + '\n--sig\nContent-Type: application/pkcs7-signature; name="smime.p7s"\n'
        + 'Content-Disposition: attachment; filename="smime.p7s"\n'
        + "Content-Transfer-Encoding: base64\n\n" + _b64(b"\x30\x82dummy signature" * 20)
        + "\n--sig--\n"
    )


def html_logo_pdf_photo(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """HTML mail with a cid logo, a PDF attachment and an inline phone photo."""
    html = (
        '<html><body><p>Please fax the form.</p><img src="cid:logo123@example.com">'
        "</body></html>"
    )
    return _crlf(
        _headers("html logo pdf photo", sender, message_id,
                 'Content-Type: multipart/mixed; boundary="m"\n')
        + '\n--m\nContent-Type: multipart/related; boundary="r"\n'
        + '\n--r\nContent-Type: multipart/alternative; boundary="a"\n'
        + "\n--a\nContent-Type: text/plain\n\nPlease fax the form.\n"
        + f"\n--a\nContent-Type: text/html; charset=utf-8\n\n{html}\n"
        + "\n--a--\n"
        + '\n--r\nContent-Type: image/png; name="logo.png"\n'
        + "Content-ID: <logo123@example.com>\n"
        + 'Content-Disposition: inline; filename="logo.png"\n'
        + "Content-Transfer-Encoding: base64\n\n" + _b64(make_logo_png() + b"\x00" * 9000)
        + "\n--r--\n"
        + '\n--m\nContent-Type: application/pdf; name="form.pdf"\n'
        + 'Content-Disposition: attachment; filename="form.pdf"\n'
        + "Content-Transfer-Encoding: base64\n\n" + _b64(make_pdf(1))
        + '\n--m\nContent-Type: image/jpeg; name="IMG_0042.jpeg"\n'
        + 'Content-Disposition: inline; filename="IMG_0042.jpeg"\n'
        + "Content-Transfer-Encoding: base64\n\n" + _b64(make_photo_jpeg())
        + "\n--m--\n"
    )


TEXT_BODY = "Hello,\n\nplease call me back at the office.\n\nAlice"


def text_only(sender: str = SENDER, message_id: str | None = None) -> bytes:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "text only"
    message["Message-ID"] = message_id or "<text-only@example.com>"
    message.set_content(TEXT_BODY)
    return message.as_bytes()


def html_only(sender: str = SENDER, message_id: str | None = None) -> bytes:
    html = (
        "<html><head><style>p {color: red}</style></head><body>"
        "<h1>Order</h1><p>Two boxes of&nbsp;paper &amp; toner.</p>"
        "<ul><li>paper</li><li>toner</li></ul></body></html>"
    )
    return _crlf(
        _headers("html only", sender, message_id, "Content-Type: text/html; charset=utf-8\n")
        + "\n" + html + "\n"
    )


def three_attachments(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A PDF, a TIFF and a second PDF, in that order."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "three attachments"
    message["Message-ID"] = message_id or "<three@example.com>"
    message.set_content("Three documents, in order.")
    message.add_attachment(make_pdf(2, "First"), maintype="application", subtype="pdf",
                           filename="1-first.pdf")
    message.add_attachment(make_tiff(), maintype="image", subtype="tiff",
                           filename="2-second.tif")
    message.add_attachment(make_pdf(1, "Third"), maintype="application", subtype="pdf",
                           filename="3-third.pdf")
    return message.as_bytes()


WINDOWS_1252_TEXT = "Grüße aus Köln – bitte faxen: 5 € pro Seite"


def windows_1252_body(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """An 8-bit text body in windows-1252, as old mail clients send it."""
    head = _headers(
        "cp1252", sender, message_id,
        "Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n",
    )
    return _crlf(head + "\n") + WINDOWS_1252_TEXT.encode("cp1252") + b"\r\n"


def password_pdf(sender: str = SENDER, message_id: str | None = None) -> bytes:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "locked"
    message["Message-ID"] = message_id or "<locked@example.com>"
    message.set_content("Locked document attached.")
    message.add_attachment(make_encrypted_pdf(), maintype="application", subtype="pdf",
                           filename="locked.pdf")
    return message.as_bytes()


def truncated_pdf(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A message whose PDF attachment, scan.pdf, lost its last third in transit."""
    document = make_pdf(3)
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "cut short"
    message["Message-ID"] = message_id or "<truncated@example.com>"
    message.set_content("Scan attached.")
    message.add_attachment(document[: len(document) * 2 // 3], maintype="application",
                           subtype="pdf", filename="scan.pdf")
    return message.as_bytes()


def unsupported_only(sender: str = SENDER, message_id: str | None = None) -> bytes:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "spreadsheet"
    message["Message-ID"] = message_id or "<sheet@example.com>"
    message.set_content("Sheet attached.")
    message.add_attachment(b"PK\x03\x04" + b"\x00" * 200, maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           filename="numbers.xlsx")
    return message.as_bytes()


def archive_only(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A message whose only attachment is a ZIP archive, which is not faxable."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "photos"
    message["Message-ID"] = message_id or "<archive@example.com>"
    message.set_content("Archive attached.")
    message.add_attachment(b"PK\x03\x04" + b"\x00" * 200, maintype="application",
                           subtype="zip", filename="photos.zip")
    return message.as_bytes()


def text_labelled_pdf(sender: str = SENDER, message_id: str | None = None) -> bytes:
    """A message whose only attachment, x.pdf declared as a PDF, is 10 bytes of text."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = "not a pdf"
    message["Message-ID"] = message_id or "<mislabelled@example.com>"
    message.set_content("PDF attached.")
    message.add_attachment(b"hello pdf!", maintype="application", subtype="pdf",
                           filename="x.pdf")
    return message.as_bytes()


def pdf_message(sender: str = SENDER, message_id: str | None = None, pages: int = 1,
                subject: str = "fax", header_from: str | None = None) -> bytes:
    """A plain message with one PDF attachment."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = header_from or f"Alice <{sender}>"
    message["To"] = "fax@fax.test"
    message["Subject"] = subject
    message["Message-ID"] = message_id or "<pdf@example.com>"
    message.set_content("Document attached.")
    message.add_attachment(make_pdf(pages), maintype="application", subtype="pdf",
                           filename="document.pdf")
    return message.as_bytes()


@dataclass(frozen=True)
class CorpusCase:
    """A message shape and what the gateway should find in it."""

    name: str
    build: Callable[..., bytes]
    documents: list[tuple[str | None, str]]
    pages: int
    skipped_kinds: list[str] = field(default_factory=list)
    fax_text_body: bool = False


CORPUS = [
    CorpusCase("octet_stream_pdf", octet_stream_pdf, [(None, "pdf")], 2),
    CorpusCase("inline_pdf_parameters", inline_pdf_with_parameters, [("scan.pdf", "pdf")], 1),
    CorpusCase("rfc2231_filename", rfc2231_continued_filename, [(RFC2231_FILENAME, "pdf")], 1),
    CorpusCase("tnef_pdf", tnef_pdf, [("invoice.pdf", "pdf")], 1),
    CorpusCase("forwarded_pdf", forwarded_pdf, [("contract.pdf", "pdf")], 3),
    CorpusCase("smime_signed", smime_signed, [("signed.pdf", "pdf")], 1, ["signature"]),
    CorpusCase(
        "html_logo_pdf_photo",
        html_logo_pdf_photo,
        [("form.pdf", "pdf"), ("IMG_0042.jpeg", "jpeg")],
        2,
        ["logo"],
    ),
    CorpusCase("text_only", text_only, [(None, "text")], 1, fax_text_body=True),
    CorpusCase("html_only", html_only, [(None, "text")], 1, fax_text_body=True),
    CorpusCase(
        "three_attachments",
        three_attachments,
        [("1-first.pdf", "pdf"), ("2-second.tif", "tiff"), ("3-third.pdf", "pdf")],
        4,
    ),
    CorpusCase("windows_1252_body", windows_1252_body, [(None, "text")], 1, fax_text_body=True),
]

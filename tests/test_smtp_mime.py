"""Document extraction from mail messages, and the cheap document checks, without a server."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import pytest
from smtp_corpus import (
    CORPUS,
    TEXT_BODY,
    WINDOWS_1252_TEXT,
    CorpusCase,
    archive_only,
    html_logo_pdf_photo,
    make_encrypted_pdf,
    make_logo_png,
    make_owner_only_pdf,
    make_pdf,
    make_photo_jpeg,
    make_tnef,
    pdf_message,
    text_only,
    three_attachments,
    windows_1252_body,
)

from faxgate.errors import DocumentError
from faxgate.smtp.mime import (
    ExtractOptions,
    UnreadableMessageError,
    extract_documents,
    html_to_text,
)
from faxgate.smtp.sniff import detect_type, inspect_document

OPTIONS = ExtractOptions(min_image_bytes=8192, fax_text_body=False, subject_as_cover=False)


def options(**changes: object) -> ExtractOptions:
    values = {**OPTIONS.to_doc(), **changes}
    return ExtractOptions.from_doc(values)


def message_with(*parts: tuple[bytes, str, str, str | None, str]) -> bytes:
    """Build a message with a text body and (data, maintype, subtype, filename, disposition)."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = "alice@example.com"
    message["Subject"] = "parts"
    message.set_content("Body text.")
    for data, maintype, subtype, filename, disposition in parts:
        message.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=filename, disposition=disposition
        )
    return message.as_bytes()


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_corpus_documents_found(case: CorpusCase) -> None:
    extraction = extract_documents(case.build(), options(fax_text_body=case.fax_text_body))

    assert [(d.filename, d.detected_type) for d in extraction.documents] == case.documents
    assert [part.kind for part in extraction.skipped] == case.skipped_kinds


def test_extraction_is_deterministic() -> None:
    raw = html_logo_pdf_photo()

    first = extract_documents(raw, OPTIONS)
    second = extract_documents(raw, OPTIONS)

    assert first == second


def test_cid_logo_skipped_photo_kept() -> None:
    extraction = extract_documents(html_logo_pdf_photo(), OPTIONS)

    (logo,) = extraction.skipped
    assert logo.filename == "logo.png"
    assert "cid:logo123@example.com" in logo.reason
    assert [d.content_type for d in extraction.documents] == ["application/pdf", "image/jpeg"]


def test_small_inline_image_skipped() -> None:
    logo = make_logo_png()
    raw = message_with(
        (logo, "image", "png", "logo.png", "inline"),
        (logo, "image", "png", "stamp.png", "attachment"),
        (make_pdf(1), "application", "pdf", "a.pdf", "attachment"),
    )

    extraction = extract_documents(raw, OPTIONS)

    assert [d.filename for d in extraction.documents] == ["stamp.png", "a.pdf"]
    (skipped,) = extraction.skipped
    assert skipped.filename == "logo.png"
    assert skipped.kind == "logo"
    assert "8192" in skipped.reason


def test_large_inline_photo_kept() -> None:
    raw = message_with((make_photo_jpeg(), "image", "jpeg", "page.jpg", "inline"))

    extraction = extract_documents(raw, OPTIONS)

    assert [d.detected_type for d in extraction.documents] == ["jpeg"]


def test_content_decides_over_name() -> None:
    raw = message_with(
        (make_pdf(1), "application", "octet-stream", "scan.jpg", "attachment"),
        (make_photo_jpeg(), "application", "pdf", "photo.pdf", "attachment"),
    )

    extraction = extract_documents(raw, OPTIONS)

    assert [(d.filename, d.content_type) for d in extraction.documents] == [
        ("scan.jpg", "application/pdf"),
        ("photo.pdf", "image/jpeg"),
    ]


def test_text_labelled_pdf_skipped() -> None:
    raw = message_with((b"hello pdf!", "application", "pdf", "x.pdf", "attachment"))

    extraction = extract_documents(raw, options(fax_text_body=True))

    assert extraction.documents == []
    (part,) = extraction.skipped
    assert part.filename == "x.pdf"
    assert part.kind == "mislabelled"
    assert part.detected_type == "text"
    assert "labelled as a PDF file, but its content is plain text" in part.reason
    assert extraction.blocks_text_fallback


def test_mislabelled_part_beside_document() -> None:
    raw = message_with(
        (b"hello pdf!", "application", "pdf", "x.pdf", "attachment"),
        (make_pdf(1), "application", "pdf", "real.pdf", "attachment"),
    )

    extraction = extract_documents(raw, OPTIONS)

    assert [d.filename for d in extraction.documents] == ["real.pdf"]
    assert [part.filename for part in extraction.skipped] == ["x.pdf"]


def test_text_attachment_is_document() -> None:
    raw = message_with(("Grüße\n".encode(), "text", "plain", "notes.txt", "attachment"))

    extraction = extract_documents(raw, OPTIONS)

    (document,) = extraction.documents
    assert document.detected_type == "text"
    assert document.data == "Grüße\n".encode()


def test_text_body_only_when_allowed() -> None:
    refused = extract_documents(text_only(), OPTIONS)
    allowed = extract_documents(text_only(), options(fax_text_body=True))

    assert refused.documents == []
    assert refused.text_body == TEXT_BODY
    (document,) = allowed.documents
    assert document.data == TEXT_BODY.encode("utf-8")
    assert document.filename is None


def test_body_not_faxed_beside_attachments() -> None:
    extraction = extract_documents(three_attachments(), options(fax_text_body=True))

    assert "text" not in [d.detected_type for d in extraction.documents]
    assert extraction.text_body == "Three documents, in order."


def test_unsupported_part_blocks_text_fallback() -> None:
    extraction = extract_documents(archive_only(), options(fax_text_body=True))

    assert extraction.documents == []
    assert extraction.blocks_text_fallback
    assert extraction.skipped[0].filename == "photos.zip"


def test_forward_as_whole_message_text() -> None:
    inner = (
        b"From: Dr. Sender <sender@example.net>\r\n"
        b"Subject: Order\r\n"
        b"Content-Type: text/plain; charset=ISO-8859-15\r\n"
        b"\r\n"
        b"Please fax this order today.\r\n"
    )
    raw = (
        b"From: Sender <sender@example.net>\r\n"
        b"Subject: Fwd: Order\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n" + inner
    )

    extraction = extract_documents(raw, options(fax_text_body=True))

    assert [document.detected_type for document in extraction.documents] == ["text"]
    assert extraction.documents[0].data == b"Please fax this order today."


def test_text_attachment_with_nul_kept() -> None:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = "Alice <alice@example.com>"
    message["Subject"] = "notes"
    message.set_content("See the notes.")
    message.add_attachment(b"caf\xff\x00\xc3\xb5 order 42\n", maintype="text",
                           subtype="plain", filename="test.txt")

    extraction = extract_documents(message.as_bytes(), OPTIONS)

    assert [document.filename for document in extraction.documents] == ["test.txt"]
    assert extraction.documents[0].detected_type == "text"


def test_binary_with_text_name_skipped() -> None:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = "Alice <alice@example.com>"
    message["Subject"] = "notes"
    message.set_content("See the notes.")
    message.add_attachment(bytes(range(256)) * 4, maintype="text", subtype="plain",
                           filename="test.txt")

    extraction = extract_documents(message.as_bytes(), OPTIONS)

    assert extraction.documents == []


def test_windows_1252_body_decoded() -> None:
    extraction = extract_documents(windows_1252_body(), options(fax_text_body=True))

    assert extraction.documents[0].data.decode("utf-8") == WINDOWS_1252_TEXT


def test_subject_as_cover_option() -> None:
    raw = pdf_message(subject="=?utf-8?q?R=C3=BCckruf_bitte?=")

    without = extract_documents(raw, OPTIONS)
    with_cover = extract_documents(raw, options(subject_as_cover=True))

    assert without.subject is None
    assert with_cover.subject == "Rückruf bitte"


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nmissing start\r\n",
        b"no headers at all, only a body\r\n",
    ],
    ids=["no_boundary", "boundary_not_found", "no_headers"],
)
def test_unreadable_mime_raises(raw: bytes) -> None:
    with pytest.raises(UnreadableMessageError):
        extract_documents(raw, OPTIONS)


def test_damaged_tnef_skipped() -> None:
    winmail = b"\x00\x11" + make_tnef([("a.pdf", make_pdf(1))])[2:]
    raw = message_with((winmail, "application", "ms-tnef", "winmail.dat", "attachment"))

    extraction = extract_documents(raw, OPTIONS)

    assert extraction.documents == []
    assert extraction.skipped[0].kind == "unreadable"
    assert extraction.blocks_text_fallback


def test_tnef_keeps_file_order() -> None:
    winmail = make_tnef([("b.pdf", make_pdf(2)), ("c.txt", b"plain notes\r\n")])
    raw = message_with(
        (make_pdf(1), "application", "pdf", "a.pdf", "attachment"),
        (winmail, "application", "octet-stream", "winmail.dat", "attachment"),
    )

    extraction = extract_documents(raw, OPTIONS)

    assert [(d.filename, d.detected_type) for d in extraction.documents] == [
        ("a.pdf", "pdf"),
        ("b.pdf", "pdf"),
        ("c.txt", "text"),
    ]


def test_html_rendered_as_text() -> None:
    html = (
        "<html><head><title>t</title><script>var x = 1;</script></head><body>"
        "<p>Hello&nbsp;<b>Bob</b>,</p><div>line<br>break</div>"
        "<ol><li>one</li><li>two</li></ol><pre>  keep\n  spaces</pre></body></html>"
    )

    text = html_to_text(html)

    assert text == "Hello Bob,\n\nline\nbreak\n\n- one\n- two\n  keep\n  spaces"


@pytest.mark.parametrize(
    ("head", "filename", "declared", "expected"),
    [
        (b"%PDF-1.7\n", None, "application/octet-stream", "pdf"),
        (b"\xef\xbb\xbf junk %PDF-1.4", None, None, "pdf"),
        (b"II*\x00rest", "x.bin", None, "tiff"),
        (b"GIF89a...", None, None, "gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", None, None, "webp"),
        (b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00", None, None, "bmp"),
        (b"plain words", "read.txt", "application/octet-stream", "text"),
        (b"plain words", None, "text/plain", "text"),
        (b"\x00\x01binary", "read.txt", "text/plain", None),
        (b"PK\x03\x04", "sheet.xlsx", "application/vnd.ms-excel", "xlsx"),
        (b"PK\x03\x04", "photos.zip", "application/zip", None),
    ],
)
def test_detect_type(
    head: bytes, filename: str | None, declared: str | None, expected: str | None
) -> None:
    assert detect_type(head, filename, declared) == expected


def test_password_pdf_detected() -> None:
    with pytest.raises(DocumentError) as raised:
        inspect_document(make_encrypted_pdf(), "locked.pdf", "pdf")

    assert raised.value.code == "password_protected"


def test_owner_password_pdf_passes() -> None:
    info = inspect_document(make_owner_only_pdf(), "restricted.pdf", "pdf")

    assert info.pages == 1


def test_damaged_pdf_passes_without_pages() -> None:
    # pypdf cannot read it, but the renderer may still repair it.
    info = inspect_document(b"%PDF-1.4\ngarbage\n%%EOF\n", "broken.pdf", "pdf")

    assert info.pages is None


def test_truncated_pdf_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        inspect_document(b"%PDF-1.4\ngarbage", "broken.pdf", "pdf")

    assert caught.value.code == "corrupt"
    assert caught.value.message.startswith("broken.pdf: the PDF file is truncated")

"""Type detection and the cheap SMTP-time checks of the document pipeline."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from faxgate.documents import RenderLimits, detect_type, quick_check
from faxgate.documents.detect import is_truncated_pdf
from faxgate.documents.geometry import pad_to_rows, plan_page
from faxgate.errors import DocumentError
from tests.document_samples import (
    A4,
    encrypted_pdf,
    huge_png,
    minimal_docx,
    pdf_with_pages,
    tiff_bytes,
)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (10, 10), 255).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "filename", "declared", "expected"),
    [
        (b"%PDF-1.7\n", "x.bin", "application/octet-stream", "pdf"),
        (b"junk before\r\n%PDF-1.4", None, None, "pdf"),
        (b"II*\x00\x08\x00\x00\x00", None, None, "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", None, None, "tiff"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "photo.png", "image/png", "jpeg"),
        (b"GIF89a\x01\x00", None, None, "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", None, None, "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "IMG_1.HEIC", None, "heic"),
        (b"Hello,\r\nplease fax this.\r\n", "invoice.pdf", "application/pdf", "text"),
        (b"Gr\xfc\xdfe aus K\xf6ln\n", None, None, "text"),
        (b"<!DOCTYPE html><html><body>x</body></html>", None, "text/plain", "html"),
        (b"<p>Hello</p>", None, "text/html; charset=utf-8", "html"),
        (b"<p>Hello</p>", "mail.htm", None, "html"),
        (b"-----BEGIN PGP SIGNATURE-----\n", "signature.asc", "application/pgp-signature", None),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(64), "tool", None, None),
        (b"{\\rtf1\\ansi hello}", None, None, "rtf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(32), "old.doc", None, "doc"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(32), None, None, None),
    ],
)
def test_detect_type_table(
    head: bytes, filename: str | None, declared: str | None, expected: str | None
) -> None:
    assert detect_type(head, filename, declared) == expected


def test_detect_type_office_zip() -> None:
    assert detect_type(minimal_docx(), None, "application/octet-stream") == "docx"
    assert detect_type(minimal_docx()[:200], "letter.docx", None) == "docx"


def test_detect_type_plain_zip_is_not_document() -> None:
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photos/a.txt", "x")
    assert detect_type(buffer.getvalue(), "photos.zip", "application/zip") is None


def test_quick_check_accepts_documents() -> None:
    assert quick_check(pdf_with_pages([A4]), "a.pdf", "application/pdf") == "pdf"
    assert quick_check(_png(), None, None) == "png"
    assert quick_check("Grüße\n".encode(), None, "text/plain; charset=utf-8") == "text"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(64), "unsupported_type"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "unsupported_type"),
        (b"%!PS-Adobe-3.0\n", "unsupported_type"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "corrupt"),
    ],
)
def test_quick_check_rejects(data: bytes, code: str) -> None:
    with pytest.raises(DocumentError) as caught:
        quick_check(data, None, None)
    assert caught.value.code == code


def test_quick_check_password_protected() -> None:
    with pytest.raises(DocumentError) as caught:
        quick_check(encrypted_pdf("secret"), "locked.pdf", "application/pdf")
    assert caught.value.code == "password_protected"
    assert caught.value.message == "document is password protected"


def test_quick_check_owner_password_only() -> None:
    assert quick_check(encrypted_pdf(""), "restricted.pdf", None) == "pdf"


def test_quick_check_truncated_pdf() -> None:
    data = pdf_with_pages([A4, A4, A4])
    with pytest.raises(DocumentError) as caught:
        quick_check(data[: len(data) * 2 // 3], "cut.pdf", None)
    assert caught.value.code == "corrupt"
    assert "truncated" in caught.value.message
    assert not is_truncated_pdf(data)


def test_quick_check_decompression_bomb() -> None:
    bomb = huge_png()
    assert len(bomb) < 200_000
    with pytest.raises(DocumentError) as caught:
        quick_check(bomb, "tiny.png", "image/png")
    assert caught.value.code == "too_large"
    assert "pixels" in caught.value.message


def test_quick_check_page_limit() -> None:
    with pytest.raises(DocumentError) as caught:
        quick_check(pdf_with_pages([A4] * 3), None, None, RenderLimits(max_pages=2))
    assert caught.value.code == "too_many_pages"


def test_quick_check_tiff_page_limit() -> None:
    pages = [Image.new("1", (100, 100), 1) for _ in range(3)]
    data = tiff_bytes(pages, (200, 200), "group4")
    with pytest.raises(DocumentError) as caught:
        quick_check(data, None, None, RenderLimits(max_pages=2))
    assert caught.value.code == "too_many_pages"


def test_quick_check_office_without_libreoffice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DocumentError) as caught:
        quick_check(minimal_docx(), "letter.docx", None)
    assert caught.value.code == "office_unavailable"
    assert "LibreOffice" in caught.value.message


@pytest.mark.parametrize(
    ("data", "filename", "declared", "words"),
    [
        (b"hello world", None, "application/pdf", "the document is labelled as a PDF file"),
        (b"hello world", "x.pdf", "application/pdf", "x.pdf is labelled as a PDF file"),
        (b"hello world", "x.pdf", "text/plain", "x.pdf is labelled as a PDF file"),
        (b"<html><body>Not found</body></html>", "scan.tif", None, "an HTML page"),
        (b"a note", "photo.JPG", "application/octet-stream", "a JPEG image"),
        (b"a note", "report.dat", "image/png", "a PNG image"),
        (b"a note", "letter.docx", None, "a Word document"),
    ],
)
def test_quick_check_rejects_mislabelled_text(
    data: bytes, filename: str | None, declared: str | None, words: str
) -> None:
    with pytest.raises(DocumentError) as caught:
        quick_check(data, filename, declared)
    assert caught.value.code == "type_mismatch"
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("data", "filename", "declared", "expected"),
    [
        (pdf_with_pages([A4]), "scan.jpg", "application/octet-stream", "pdf"),
        (pdf_with_pages([A4]), "data.dat", None, "pdf"),
        (_png(), "photo.pdf", "application/pdf", "png"),
        (b"plain words", "notes.txt", "application/pdf", "text"),
        (b"a;b;c\r\n1;2;3\r\n", "export.xls", "application/vnd.ms-excel", "text"),
        (b"plain words", None, "application/octet-stream", "text"),
    ],
)
def test_quick_check_label_content_first(
    data: bytes, filename: str | None, declared: str | None, expected: str
) -> None:
    assert quick_check(data, filename, declared) == expected


@pytest.mark.parametrize(
    ("size_in", "ydpi", "rotate", "width_px", "height_px"),
    [
        ((8.27, 11.69), 196, False, 1687, 2291),  # A4 keeps 100 %
        ((8.5, 11), 196, False, 1728, 2149),  # Letter shrinks a little to fit
        ((11, 8.5), 98, True, 1728, 1074),  # landscape turns to portrait
        ((2, 3), 196, False, 408, 588),  # small pages are not enlarged
        ((218 / 200, 84 / 200), 196, False, 222, 82),  # a small landscape label stays
        ((590 / 96, 88 / 96), 98, False, 1254, 90),  # a narrow strip that fits stays
        ((8.4, 5), 196, False, 1714, 980),  # landscape, just narrower than the line
        ((8.6, 5), 196, True, 1020, 1686),  # landscape, just wider than the line
    ],
)
def test_plan_page_geometry(
    size_in: tuple[float, float], ydpi: int, rotate: bool, width_px: int, height_px: int
) -> None:
    plan = plan_page(size_in[0], size_in[1], ydpi, 1000)
    assert plan.rotate is rotate
    assert plan.width_px == width_px
    assert plan.height_px == height_px


def test_plan_page_splits_long_pages() -> None:
    plan = plan_page(3.15, 100, 196, 1000)  # an 80 mm receipt, 2.54 m long
    lengths = [stop - start for start, stop in plan.pieces]
    assert len(plan.pieces) == 3
    assert max(lengths) == 7716  # 1000 mm at 196 lpi
    assert sum(lengths) == plan.height_px


def test_pad_to_rows_white_bottom() -> None:
    ink = Image.new("1", (1728, 10), 1)
    assert pad_to_rows(ink, 0) is ink
    padded = pad_to_rows(ink, 25)
    assert padded.size == (1728, 25)
    assert padded.crop((0, 10, 1728, 25)).getbbox() is None

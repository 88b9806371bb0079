"""Builders of test documents for the document pipeline tests; nothing is read from disk."""

from __future__ import annotations

import ctypes
import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter

A4 = (595.28, 841.89)
LETTER = (612.0, 792.0)
LEGAL = (612.0, 1008.0)
RECEIPT = (80 / 25.4 * 72, 600 / 25.4 * 72)  # 80 mm wide, 600 mm long


def pdf_with_pages(
    sizes: Sequence[tuple[float, float]],
    rotations: Sequence[int] | None = None,
    marker: bool = True,
    text: str | None = None,
) -> bytes:
    """Return a PDF with one page per (width, height) in points.

    Each page gets a 36 pt black square in the top-left corner of its
    MediaBox, so tests can see where the corner went, and optionally a line of
    text in the standard Helvetica font.
    """
    document = pdfium.PdfDocument.new()
    for index, (width, height) in enumerate(sizes):
        page = document.new_page(width, height)
        if marker:
            _add_square(page, 0, height - 36, 36)
        if text:
            _add_text(document, page, text, 72, height - 120, 12)
        page.gen_content()
        if rotations:
            page.set_rotation(rotations[index])
        page.close()
    return _saved(document)


def text_lines_pdf(lines: Sequence[str], size_pt: float = 10) -> bytes:
    """Return an A4 PDF with the lines in Helvetica, 1.25 line spacing."""
    document = pdfium.PdfDocument.new()
    page = document.new_page(*A4)
    y = A4[1] - 72
    for line in lines:
        _add_text(document, page, line, 72, y, size_pt)
        y -= size_pt * 1.25
    page.gen_content()
    page.close()
    return _saved(document)


def encrypted_pdf(user_password: str, owner_password: str = "owner") -> bytes:
    """Return a two-page PDF encrypted with AES-256."""
    reader = PdfReader(io.BytesIO(pdf_with_pages([A4, A4])))
    writer = PdfWriter(clone_from=reader)
    writer.encrypt(user_password, owner_password, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def tiff_bytes(pages: Sequence[Image.Image], dpi: tuple[float, float], compression: str) -> bytes:
    """Return a multi-page TIFF of the images with the given resolution and compression."""
    buffer = io.BytesIO()
    pages[0].save(
        buffer,
        "TIFF",
        save_all=True,
        append_images=list(pages[1:]),
        dpi=dpi,
        compression=compression,
    )
    return buffer.getvalue()


def page_image(width: int, height: int, mode: str = "1") -> Image.Image:
    """Return a white page with a black 40-pixel square in the top-left corner and some bars."""
    image = Image.new(mode, (width, height), 255 if mode != "RGB" else (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 39, 39), fill=0)
    for row in range(200, height - 100, max(60, height // 20)):
        draw.rectangle((width // 10, row, width * 9 // 10, row + 3), fill=0)
    return image


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """Return a valid 1-bit white PNG of the given size; it compresses to a few kilobytes."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row) for _ in range(height)]
    chunks.append(compressor.flush())
    data = b"".join(chunks)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def minimal_docx() -> bytes:
    """Return a small DOCX-shaped ZIP archive (enough for type detection)."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _add_square(page: pdfium.PdfPage, x: float, y: float, size: float) -> None:
    path = pdfium_c.FPDFPageObj_CreateNewRect(x, y, size, size)
    pdfium_c.FPDFPageObj_SetFillColor(path, 0, 0, 0, 255)
    pdfium_c.FPDFPath_SetDrawMode(path, pdfium_c.FPDF_FILLMODE_WINDING, 0)
    pdfium_c.FPDFPage_InsertObject(page, path)


def _add_text(
    document: pdfium.PdfDocument, page: pdfium.PdfPage, text: str, x: float, y: float, size: float
) -> None:
    font = pdfium_c.FPDFText_LoadStandardFont(document, b"Helvetica")
    obj = pdfium_c.FPDFPageObj_CreateTextObj(document, font, size)
    encoded = (text + "\x00").encode("utf-16-le")
    buffer = (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded)
    pdfium_c.FPDFText_SetText(obj, buffer)
    pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
    pdfium_c.FPDFPage_InsertObject(page, obj)


def rules_and_text_pdf(widths_pt: Sequence[float], text_size_pt: float | None) -> bytes:
    """Return an A4 PDF with one 200 pt tall vertical rule per width, 20 pt apart.

    With `text_size_pt`, lines of Helvetica text at that size fill the lower
    half of the page, away from the rules.
    """
    document = pdfium.PdfDocument.new()
    page = document.new_page(*A4)
    for index, width in enumerate(widths_pt):
        rule = pdfium_c.FPDFPageObj_CreateNewRect(72 + 20 * index, 500, width, 200)
        pdfium_c.FPDFPageObj_SetFillColor(rule, 0, 0, 0, 255)
        pdfium_c.FPDFPath_SetDrawMode(rule, pdfium_c.FPDF_FILLMODE_WINDING, 0)
        pdfium_c.FPDFPage_InsertObject(page, rule)
    if text_size_pt:
        for line in range(20):
            _add_text(document, page, "minimum lettering " * 6, 72, 400 - line * 12, text_size_pt)
    page.gen_content()
    page.close()
    return _saved(document)


def tiff_pages(path: Path) -> list[Image.Image]:
    """Return every page of a TIFF file as a greyscale image."""
    pages = []
    with Image.open(path) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            pages.append(image.convert("L"))
    return pages


def _saved(document: pdfium.PdfDocument) -> bytes:
    """Return the document's PDF bytes and close it."""
    buffer = io.BytesIO()
    document.save(buffer)
    document.close()
    return buffer.getvalue()

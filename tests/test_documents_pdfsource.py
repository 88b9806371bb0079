"""How pdfsource classifies a page before rendering it, on pages built here."""

from __future__ import annotations

import ctypes

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from faxgate.documents.pdfsource import prepare_page
from tests.document_samples import A4


def _add_text(
    document: pdfium.PdfDocument,
    page: pdfium.PdfPage,
    size: float,
    scale: float = 1.0,
    invisible: bool = False,
) -> None:
    font = pdfium_c.FPDFText_LoadStandardFont(document, b"Helvetica")
    obj = pdfium_c.FPDFPageObj_CreateTextObj(document, font, size)
    encoded = "Total due\x00".encode("utf-16-le")
    text = (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded)
    pdfium_c.FPDFText_SetText(obj, text)
    if invisible:
        pdfium_c.FPDFTextObj_SetTextRenderMode(obj, pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)
    pdfium_c.FPDFPageObj_Transform(obj, scale, 0, 0, scale, 72, 700)
    pdfium_c.FPDFPage_InsertObject(page, obj)


def test_text_size_includes_matrix() -> None:
    document = pdfium.PdfDocument.new()
    page = document.new_page(*A4)
    _add_text(document, page, 1.0, scale=6.0)
    _add_text(document, page, 11.0)

    content = prepare_page(page)

    assert content.kind == "text"
    assert content.smallest_text_pt is not None
    assert abs(content.smallest_text_pt - 6.0) < 0.01


def test_invisible_text_not_counted() -> None:
    document = pdfium.PdfDocument.new()
    page = document.new_page(*A4)
    _add_text(document, page, 4.0, invisible=True)
    _add_text(document, page, 10.0)

    content = prepare_page(page)

    assert content.smallest_text_pt == 10.0


def test_page_without_text() -> None:
    document = pdfium.PdfDocument.new()
    page = document.new_page(*A4)

    content = prepare_page(page)

    assert content.kind == "text"
    assert content.smallest_text_pt is None

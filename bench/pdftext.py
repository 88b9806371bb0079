"""Test PDFs of known text for the benchmarks, built with pypdfium2."""

from __future__ import annotations

import ctypes
import random
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

A4 = (595.28, 841.89)
MARGIN_PT = 50.0

# Each family is embedded from a TrueType file when it is installed (the same
# glyphs for every renderer), else it falls back to a standard PDF font that
# each renderer substitutes with its own.
FAMILIES = {
    "sans": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "Helvetica"),
    "serif": ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "Times-Roman"),
    "helvetica": (None, "Helvetica"),
    "times": (None, "Times-Roman"),
}

_WORDS = (
    "invoice",
    "account",
    "number",
    "payment",
    "total",
    "amount",
    "due",
    "date",
    "customer",
    "order",
    "reference",
    "shipping",
    "address",
    "street",
    "city",
    "postal",
    "code",
    "phone",
    "fax",
    "email",
    "delivery",
    "quantity",
    "unit",
    "price",
    "tax",
    "discount",
    "balance",
    "terms",
    "conditions",
    "signature",
    "approved",
    "received",
    "pending",
    "urgent",
    "contract",
    "agreement",
    "section",
    "clause",
    "party",
    "notice",
    "period",
    "renewal",
    "schedule",
)
_TOKENS = ("No.", "Ref:", "(A)", "EUR", "12.50", "3/4", "#17", "x-7", "a@b.de", "30%")


@dataclass(frozen=True)
class TextPdf:
    path: Path
    lines: list[str]
    font: str  # the font as the PDF names it


def make_text_pdf(path: Path, family: str, size_pt: float, seed: int, pages: int = 1) -> TextPdf:
    """Write an A4 PDF of pseudo-random invoice-like text and return its lines."""
    rng = random.Random(seed)
    document = pdfium.PdfDocument.new()
    font, font_name = _load_font(document, family)
    line_height = size_pt * 1.25
    per_page = int((A4[1] - 2 * MARGIN_PT) // line_height)
    columns = int((A4[0] - 2 * MARGIN_PT) / (size_pt * 0.55))
    all_lines: list[str] = []
    for _ in range(pages):
        page = document.new_page(*A4)
        lines = [_line(rng, columns) for _ in range(per_page)]
        y = A4[1] - MARGIN_PT - size_pt
        for line in lines:
            _add_line(document, page, font, size_pt, line, y)
            y -= line_height
        page.gen_content()
        page.close()
        all_lines.extend(lines)
    document.save(str(path))
    document.close()
    return TextPdf(path, all_lines, font_name)


def add_rules_page(document: pdfium.PdfDocument, widths_pt: list[float]) -> None:
    """Append a page of table rules of the given stroke widths."""
    page = document.new_page(*A4)
    y = A4[1] - MARGIN_PT
    for width in widths_pt * 20:
        path = pdfium_c.FPDFPageObj_CreateNewPath(MARGIN_PT, y)
        pdfium_c.FPDFPath_LineTo(path, A4[0] - MARGIN_PT, y)
        pdfium_c.FPDFPageObj_SetStrokeWidth(path, width)
        pdfium_c.FPDFPageObj_SetStrokeColor(path, 0, 0, 0, 255)
        pdfium_c.FPDFPath_SetDrawMode(path, pdfium_c.FPDF_FILLMODE_NONE, 1)
        pdfium_c.FPDFPage_InsertObject(page, path)
        y -= 9
    page.gen_content()
    page.close()


def _line(rng: random.Random, columns: int) -> str:
    words: list[str] = []
    while True:
        roll = rng.random()
        if roll < 0.7:
            word = rng.choice(_WORDS)
            word = word.capitalize() if rng.random() < 0.2 else word
        elif roll < 0.85:
            word = str(rng.randint(1, 99999))
        else:
            word = rng.choice(_TOKENS)
        if len(" ".join([*words, word])) > columns:
            return " ".join(words)
        words.append(word)


def _load_font(document: pdfium.PdfDocument, family: str) -> tuple[object, str]:
    truetype, standard = FAMILIES[family]
    if truetype and Path(truetype).is_file():
        data = Path(truetype).read_bytes()
        buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
        font = pdfium_c.FPDFText_LoadFont(
            document, buffer, len(data), pdfium_c.FPDF_FONT_TRUETYPE, 1
        )
        if font:
            return font, f"{Path(truetype).stem} (embedded)"
    font = pdfium_c.FPDFText_LoadStandardFont(document, standard.encode())
    return font, f"{standard} (not embedded)"


def _add_line(
    document: pdfium.PdfDocument,
    page: pdfium.PdfPage,
    font: object,
    size: float,
    text: str,
    y: float,
) -> None:
    obj = pdfium_c.FPDFPageObj_CreateTextObj(document, font, size)
    encoded = (text + "\x00").encode("utf-16-le")
    buffer = (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded)
    pdfium_c.FPDFText_SetText(obj, buffer)
    pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, MARGIN_PT, y)
    pdfium_c.FPDFPage_InsertObject(page, obj)

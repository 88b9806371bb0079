"""Plain text and HTML mail bodies laid out as pages in a monospace font.

The pages are built as a PDF with pdfium, so text goes through the same
renderer, and reaches the same legibility, as PDF attachments.
"""

from __future__ import annotations

import codecs
import ctypes
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from faxgate.errors import DocumentError

from .htmltext import html_to_text

FONT_SIZE_PT = 10.0
LINE_HEIGHT_PT = 12.0
COLUMNS = 80
MARGIN_TOP_PT = 48.0  # leaves room above the text for the header line stamped at send time
MARGIN_BOTTOM_PT = 36.0
TAB_SIZE = 8


@dataclass(frozen=True)
class PaperSize:
    """A portrait page size for laid-out text, in PDF points (1/72 in)."""

    name: str
    width_pt: float
    height_pt: float

    @property
    def lines_per_page(self) -> int:
        return int((self.height_pt - MARGIN_TOP_PT - MARGIN_BOTTOM_PT) // LINE_HEIGHT_PT)


# A4 (210 x 297 mm) fits the 215 mm fax width at 100 %. Letter (8.5 x 11 in)
# is 216 mm wide, so the renderer scales it to 99.7 % (1728 of 1734 pixels).
A4 = PaperSize("a4", 595.28, 841.89)
LETTER = PaperSize("letter", 612.0, 792.0)
PAPER_SIZES: dict[str, PaperSize] = {paper.name: paper for paper in (A4, LETTER)}

# Monospace TrueType fonts tried in order. Without any of them pdfium's
# built-in Courier is used, which covers only the windows-1252 repertoire.
MONOSPACE_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansMono-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationMono-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeMono.ttf",
)
# Charset labels that mail clients use for windows-1252 text (as in the WHATWG
# Encoding Standard, which maps them all to windows-1252).
_WINDOWS_1252_ALIASES = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii"}
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)


def decode_text(data: bytes, content_type: str | None) -> str:
    """Decode text bytes: a byte order mark first, then the declared charset,
    then UTF-8 if the bytes are valid UTF-8, else windows-1252."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")

    declared = _declared_charset(content_type) or _html_meta_charset(data)
    if declared is not None:
        return data.decode(declared, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1252", errors="replace")


def text_to_lines(text: str, lines_per_page: int) -> list[list[str]]:
    """Split text into pages of at most `lines_per_page` lines, each at most COLUMNS wide.

    Tabs expand to every eighth column, a form feed starts a new page, long
    lines wrap at a space where one is near, and other control characters are
    dropped.
    """
    pages: list[list[str]] = []
    for page_text in text.replace("\r\n", "\n").replace("\r", "\n").split("\f"):
        lines: list[str] = []
        for raw_line in page_text.split("\n"):
            line = _printable(raw_line.expandtabs(TAB_SIZE).rstrip())
            lines.extend(_wrap(line))
        while lines and not lines[-1]:
            lines.pop()
        for start in range(0, max(1, len(lines)), lines_per_page):
            pages.append(lines[start : start + lines_per_page])
    while len(pages) > 1 and not any(pages[-1]):
        pages.pop()
    return pages


def layout_text_pdf(
    data: bytes,
    content_type: str | None,
    html: bool,
    target: Path,
    max_pages: int,
    *,
    paper: PaperSize,
) -> int:
    """Lay out text or HTML as a PDF of `paper` pages at `target` and return its page count.

    Raises DocumentError when the text is empty or needs more than `max_pages` pages.
    """
    text = decode_text(data, content_type)
    if html:
        text = html_to_text(text)
    pages = text_to_lines(text, paper.lines_per_page)
    if not any(any(line.strip() for line in page) for page in pages):
        raise DocumentError("the text document is empty", code="empty")
    if len(pages) > max_pages:
        raise DocumentError(
            f"the text makes {len(pages)} pages, more than the limit of {max_pages}",
            code="too_many_pages",
        )

    document = pdfium.PdfDocument.new()
    try:
        font, covers_unicode = _load_font(document)
        for lines in pages:
            _add_page(document, paper, font, lines, covers_unicode)
        document.save(str(target))
    finally:
        document.close()
    return len(pages)


def _add_page(
    document: pdfium.PdfDocument,
    paper: PaperSize,
    font: object,
    lines: list[str],
    covers_unicode: bool,
) -> None:
    page = document.new_page(paper.width_pt, paper.height_pt)
    left = (paper.width_pt - COLUMNS * FONT_SIZE_PT * 0.6) / 2
    baseline = paper.height_pt - MARGIN_TOP_PT - FONT_SIZE_PT
    for line in lines:
        if line.strip():
            text = line if covers_unicode else _to_windows_1252(line)
            obj = pdfium_c.FPDFPageObj_CreateTextObj(document, font, FONT_SIZE_PT)
            encoded = (text + "\x00").encode("utf-16-le")
            buffer = (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded)
            if not pdfium_c.FPDFText_SetText(obj, buffer):
                pdfium_c.FPDFPageObj_Destroy(obj)
                raise DocumentError("the text could not be laid out", code="render_failed")
            pdfium_c.FPDFPageObj_Transform(obj, 1, 0, 0, 1, left, baseline)
            pdfium_c.FPDFPage_InsertObject(page, obj)
        baseline -= LINE_HEIGHT_PT
    page.gen_content()
    page.close()


def _load_font(document: pdfium.PdfDocument) -> tuple[object, bool]:
    for candidate in MONOSPACE_FONTS:
        path = Path(candidate)
        if not path.is_file():
            continue
        data = path.read_bytes()
        buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
        font = pdfium_c.FPDFText_LoadFont(
            document, buffer, len(data), pdfium_c.FPDF_FONT_TRUETYPE, 1
        )
        if font:
            return font, True
    font = pdfium_c.FPDFText_LoadStandardFont(document, b"Courier")
    if not font:
        raise DocumentError("no monospace font is available to lay out text", code="render_failed")
    return font, False


def _wrap(line: str) -> list[str]:
    if len(line) <= COLUMNS:
        return [line]
    indent = len(line) - len(line.lstrip(" "))
    wrapper = textwrap.TextWrapper(
        width=COLUMNS,
        subsequent_indent=" " * min(indent, COLUMNS // 2),
        break_on_hyphens=False,
        replace_whitespace=False,
    )
    return wrapper.wrap(line) or [""]


def _printable(line: str) -> str:
    return "".join(
        character
        for character in line
        if character == " " or unicodedata.category(character)[0] != "C"
    )


def _to_windows_1252(line: str) -> str:
    return line.encode("windows-1252", errors="replace").decode("windows-1252")


def _declared_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    message = Message()
    message["Content-Type"] = content_type
    charset = message.get_content_charset()
    return _codec(charset) if charset else None


def _html_meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return _codec(match.group(1).decode("ascii")) if match else None


def _codec(label: str) -> str | None:
    label = label.strip().lower()
    if label in _WINDOWS_1252_ALIASES:
        return "windows-1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None

"""Open PDFs with pdfium, repair them when possible, and render pages to fax pages.

Text is rendered aliased directly at fax resolution (204 x 98 or 204 x 196
dpi, with different x and y scales in one pass). pdfium's aliased glyphs
keep thin strokes that fall between pixel centres, which anti-aliased glyphs
thresholded afterwards lose at 6 pt. Their stems come out too thin, though,
so pages with small text are rendered a second time with anti-aliased text,
and the pixels that the glyphs partly cover beside each stem are inked
(`bilevel.widen_stems`). `bench/legibility.py` measures the result with OCR
against Ghostscript's tiffg4 device.
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from faxgate.errors import DocumentError

from .bilevel import Content, to_ink
from .detect import PASSWORD_MESSAGE, TRUNCATED_PDF_MESSAGE, is_truncated_pdf
from .faxtiff import encode_g4
from .geometry import PagePlan, left_margin, pad_to_rows, plan_page
from .model import FAX_WIDTH_PX, FAX_XDPI, FaxPage

logger = logging.getLogger(__name__)

SMOOTH_RENDER_FLAGS = pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_GRAYSCALE
RENDER_FLAGS = SMOOTH_RENDER_FLAGS | pdfium_c.FPDF_RENDER_NO_SMOOTHTEXT
# Text darker than this (0.299 R + 0.587 G + 0.114 B, 0-255) is drawn black,
# so that grey and coloured text is not lost to the threshold.
TEXT_DARKEN_BELOW_LUMA = 192
# Image objects covering this share of a page make it a scan.
SCAN_AREA_SHARE = 0.4
# Glyph stems are widened on pages with text smaller than this, in points as
# it lands on the fax page. Larger glyphs have stems two or more pixels wide
# even when aliased: in bench/legibility.py, 10 pt text reads back within
# 0.05 % with or without widening, while 8 pt at standard resolution gains
# 0.03 to 0.07 %.
WIDEN_STEMS_BELOW_PT = 9.0
CORRUPT_MESSAGE = "the PDF file is damaged and could not be repaired"


def open_pdf(path: Path) -> pdfium.PdfDocument:
    """Open a PDF for rendering, repairing it with pypdf when pdfium cannot read it.

    Raises DocumentError with code password_protected, corrupt or empty.
    """
    with path.open("rb") as file:
        file.seek(0, io.SEEK_END)
        size = file.tell()
        file.seek(max(0, size - 2048))
        tail = file.read()
    if is_truncated_pdf(tail):
        raise DocumentError(TRUNCATED_PDF_MESSAGE, code="corrupt")

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentError(PASSWORD_MESSAGE, code="password_protected") from exc
        logger.info("pdfium cannot open %s (%s); trying a pypdf repair", path.name, exc)
        document = _open_repaired(path)

    if len(document) == 0:
        document.close()
        raise DocumentError("the PDF file has no pages", code="empty")
    with warnings.catch_warnings():
        # pdfium warns when XFA forms cannot be loaded; the static page still renders.
        warnings.simplefilter("ignore")
        document.init_forms()
    return document


def plan_pdf_pages(document: pdfium.PdfDocument, ydpi: int, max_length_mm: float) -> list[PagePlan]:
    """Plan every page from its displayed size.

    pdfium reports page sizes with /Rotate applied and renders pages rotated,
    so a /Rotate 90 page needs no extra turn here.
    """
    plans = []
    for index in range(len(document)):
        width_pt, height_pt = document.get_page_size(index)
        plans.append(plan_page(width_pt / 72, height_pt / 72, ydpi, max_length_mm))
    return plans


def render_pdf_pages(
    document: pdfium.PdfDocument,
    plans: list[PagePlan],
    indices: Sequence[int],
    ydpi: int,
    min_rows: int = 0,
) -> list[list[FaxPage]]:
    """Render the source pages at `indices`; returns the fax pages of each, following its plan.

    Fax pages shorter than `min_rows` are padded with white rows at the bottom.
    """
    rendered: list[list[FaxPage]] = []
    for index in indices:
        page = document[index]
        try:
            content = prepare_page(page)
            pieces = []
            for piece in plans[index].pieces:
                ink = _render_piece(page, plans[index], piece, ydpi, content)
                pieces.append(encode_g4(pad_to_rows(ink, min_rows), FAX_XDPI, ydpi))
            rendered.append(pieces)
        finally:
            page.close()
    return rendered


class PageContent(NamedTuple):
    """Summary of a PDF page's objects that decides how it is rendered."""

    kind: Content
    # Font size of the smallest text on the page in points, with the
    # transforms of its text object and forms applied. None without text.
    smallest_text_pt: float | None


def prepare_page(page: pdfium.PdfPage) -> PageContent:
    """Darken grey and coloured text to black and classify the page's content.

    The change is made to the loaded page objects only, not to the file.
    """
    counts = {"text": 0, "other": 0}
    image_area = 0.0
    smallest_text_pt: float | None = None
    for kind, obj, form_scale in _page_objects(page.raw):
        if kind == pdfium_c.FPDF_PAGEOBJ_TEXT:
            counts["text"] += 1
            _darken_text(obj)
            size_pt = _visible_text_size(obj) * form_scale
            if size_pt > 0 and (smallest_text_pt is None or size_pt < smallest_text_pt):
                smallest_text_pt = size_pt
        elif kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            counts["other"] += 1
            image_area += _object_area(obj)
        elif kind != pdfium_c.FPDF_PAGEOBJ_FORM:
            counts["other"] += 1

    width, height = page.get_size()
    if image_area >= SCAN_AREA_SHARE * width * height:
        return PageContent("scan", smallest_text_pt)
    if counts["other"] or _has_annotations(page):
        return PageContent("drawing", smallest_text_pt)
    return PageContent("text", smallest_text_pt)


def _render_piece(
    page: pdfium.PdfPage,
    plan: PagePlan,
    piece: tuple[int, int],
    ydpi: int,
    content: PageContent,
) -> Image.Image:
    grey = _render_grey(page, plan, piece, RENDER_FLAGS)
    smooth_text = None
    # Scanned pages get no second render, because their lettering is part of
    # the scanned image, which both renders draw alike.
    if content.kind != "scan" and content.smallest_text_pt is not None:
        width_pt, height_pt = page.get_size()
        page_scale = plan.width_px / ((height_pt if plan.rotate else width_pt) / 72 * FAX_XDPI)
        if content.smallest_text_pt * page_scale < WIDEN_STEMS_BELOW_PT:
            smooth_text = _render_grey(page, plan, piece, SMOOTH_RENDER_FLAGS)
    return to_ink(grey, ydpi, content.kind, smooth_text)


def _render_grey(
    page: pdfium.PdfPage, plan: PagePlan, piece: tuple[int, int], flags: int
) -> Image.Image:
    start_row, stop_row = piece
    rows = stop_row - start_row
    bitmap = pdfium.PdfBitmap.new_native(FAX_WIDTH_PX, rows, pdfium_c.FPDFBitmap_Gray)
    try:
        bitmap.fill_rect((255, 255, 255, 255), 0, 0, FAX_WIDTH_PX, rows)
        # pdfium maps the page onto the size_x by size_y rectangle, scaling x and
        # y separately, which gives the non-square fax pixels in one pass.
        position = (
            left_margin(plan.width_px),
            -start_row,
            plan.width_px,
            plan.height_px,
            3 if plan.rotate else 0,  # 3: 90 degrees counter-clockwise
            flags,
        )
        pdfium_c.FPDF_RenderPageBitmap(bitmap.raw, page.raw, *position)
        if page.formenv:
            pdfium_c.FPDF_FFLDraw(page.formenv, bitmap.raw, page.raw, *position)
        # copy() detaches the image from the bitmap's buffer, which close() frees.
        return Image.frombuffer(
            "L", (FAX_WIDTH_PX, rows), bitmap.buffer, "raw", "L", bitmap.stride, 1
        ).copy()
    finally:
        bitmap.close()


def _page_objects(
    container: object, level: int = 0, scale: float = 1.0
) -> Iterator[tuple[int, ctypes.c_void_p, float]]:
    """Yield the type, handle and scale of the enclosing forms of each object, forms included."""
    if level == 0:
        count = pdfium_c.FPDFPage_CountObjects(container)
        get = pdfium_c.FPDFPage_GetObject
    else:
        count = pdfium_c.FPDFFormObj_CountObjects(container)
        get = pdfium_c.FPDFFormObj_GetObject
    for index in range(max(0, count)):
        obj = get(container, index)
        if not obj:
            continue
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        yield kind, obj, scale
        if kind == pdfium_c.FPDF_PAGEOBJ_FORM and level < 8:
            yield from _page_objects(obj, level + 1, scale * _matrix_scale(obj))


def _matrix_scale(obj: ctypes.c_void_p) -> float:
    """Return the factor by which an object's matrix scales areas, as a length ratio."""
    matrix = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(obj, matrix):
        return 1.0
    return math.sqrt(abs(matrix.a * matrix.d - matrix.b * matrix.c))


def _visible_text_size(obj: ctypes.c_void_p) -> float:
    """Return a text object's font size in points with its own matrix applied.

    Returns 0 for invisible text, such as the OCR layer over a scanned page,
    because it draws no glyphs to widen.
    """
    if pdfium_c.FPDFTextObj_GetTextRenderMode(obj) == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE:
        return 0.0
    size = ctypes.c_float()
    if not pdfium_c.FPDFTextObj_GetFontSize(obj, size):
        return 0.0
    return size.value * _matrix_scale(obj)


def _darken_text(obj: ctypes.c_void_p) -> None:
    red, green, blue, alpha = (ctypes.c_uint() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetFillColor(obj, red, green, blue, alpha):
        return
    luma = 0.299 * red.value + 0.587 * green.value + 0.114 * blue.value
    if 0 < luma < TEXT_DARKEN_BELOW_LUMA:
        pdfium_c.FPDFPageObj_SetFillColor(obj, 0, 0, 0, alpha.value)


def _object_area(obj: ctypes.c_void_p) -> float:
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
        return 0.0
    return max(0.0, right.value - left.value) * max(0.0, top.value - bottom.value)


def _has_annotations(page: pdfium.PdfPage) -> bool:
    return bool(pdfium_c.FPDFPage_GetAnnotCount(page.raw) > 0)


def _open_repaired(path: Path) -> pdfium.PdfDocument:
    repaired = _rewrite_with_pypdf(path)
    try:
        return pdfium.PdfDocument(repaired)
    except pdfium.PdfiumError as exc:
        raise DocumentError(CORRUPT_MESSAGE, code="corrupt") from exc


def _rewrite_with_pypdf(path: Path) -> bytes:
    from pypdf import PasswordType, PdfReader, PdfWriter

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentError(PASSWORD_MESSAGE, code="password_protected")
        writer = PdfWriter(clone_from=reader)
        output = io.BytesIO()
        writer.write(output)
    except DocumentError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on broken files
        raise DocumentError(CORRUPT_MESSAGE, code="corrupt") from exc
    return output.getvalue()

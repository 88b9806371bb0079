"""Header stamping at send time and received TIFFs to PDF."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import pytest_asyncio
from PIL import Image, ImageChops, ImageDraw

from faxgate.documents import (
    DEFAULT_HEADER_TEMPLATE,
    DocumentInput,
    DocumentRenderer,
    HeaderInfo,
    RenderLimits,
    format_header,
    validate_header_template,
)
from faxgate.errors import ConfigError
from tests.document_samples import A4, page_image, pdf_with_pages, tiff_bytes, tiff_pages

module_loop = pytest.mark.asyncio(loop_scope="module")

HEADER = HeaderInfo(
    station_id="+49 30 1234567",
    sender_name="Müller & Söhne",
    destination="+1 212 5550100",
    timezone="Europe/Berlin",
    when=datetime(2024, 7, 1, 12, 5, tzinfo=UTC),
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def renderer() -> AsyncIterator[DocumentRenderer]:
    pool = DocumentRenderer(RenderLimits(timeout_s=60), workers=1)
    yield pool
    await pool.close()


def test_format_header_local_time() -> None:
    line = format_header(HEADER, DEFAULT_HEADER_TEMPLATE, 2, 5)
    assert line == ("2024-07-01 14:05  Müller & Söhne  +49 30 1234567  -> +1 212 5550100  page 2/5")


def test_format_header_timezone_field() -> None:
    assert format_header(HEADER, "{timezone}", 1, 1) == "CEST"


@pytest.mark.parametrize("template", ["{date} {sender}", "{0}", "{}", "{date"])
def test_header_template_rejected(template: str) -> None:
    with pytest.raises(ConfigError):
        validate_header_template(template)


def test_unknown_timezone_rejected() -> None:
    bad = HeaderInfo("1", "x", "2", "Mars/Olympus", HEADER.when)
    with pytest.raises(ConfigError):
        format_header(bad, DEFAULT_HEADER_TEMPLATE, 1, 1)


@pytest.mark.parametrize("resolution", ["fine", "standard"])
@module_loop
async def test_stamp_header_on_blank_margin(
    renderer: DocumentRenderer, tmp_path: Path, resolution: str
) -> None:
    data = pdf_with_pages([A4, A4], marker=False, text="Body text")
    document = await renderer.render([DocumentInput(data=data)], tmp_path, resolution)
    stamped_path = tmp_path / "stamped.tiff"

    result = await renderer.stamp_header(
        document.tiff_path, stamped_path, HEADER, DEFAULT_HEADER_TEMPLATE
    )

    assert result == stamped_path
    before, after = tiff_pages(document.tiff_path), tiff_pages(stamped_path)
    assert len(after) == 2
    band_rows = 28 if resolution == "fine" else 14
    for original, stamped in zip(before, after, strict=True):
        assert stamped.size == original.size  # drawn into the blank top margin
        band = stamped.crop((0, 0, 1728, band_rows))
        assert ImageChops.invert(band).getbbox() is not None
        below = ImageChops.difference(
            stamped.crop((0, band_rows, 1728, stamped.height)),
            original.crop((0, band_rows, 1728, original.height)),
        )
        assert below.getbbox() is None
    with Image.open(stamped_path) as image:
        assert image.info["dpi"] == (204, 196 if resolution == "fine" else 98)


@module_loop
async def test_stamp_header_page_numbers_differ(renderer: DocumentRenderer, tmp_path: Path) -> None:
    data = pdf_with_pages([A4, A4], marker=False)
    document = await renderer.render([DocumentInput(data=data)], tmp_path)
    stamped_path = tmp_path / "stamped.tiff"
    await renderer.stamp_header(document.tiff_path, stamped_path, HEADER, DEFAULT_HEADER_TEMPLATE)
    first, second = tiff_pages(stamped_path)
    assert ImageChops.difference(first, second).getbbox() is not None


@module_loop
async def test_stamp_header_prepends_when_crowded(
    renderer: DocumentRenderer, tmp_path: Path
) -> None:
    source = page_image(1728, 2200)  # black square at the very top
    data = tiff_bytes([source], (204, 196), "group4")
    document = await renderer.render([DocumentInput(data=data)], tmp_path)
    stamped_path = tmp_path / "stamped.tiff"
    await renderer.stamp_header(document.tiff_path, stamped_path, HEADER, DEFAULT_HEADER_TEMPLATE)
    (stamped,) = tiff_pages(stamped_path)
    assert stamped.height == 2200 + 28
    moved = stamped.crop((0, 28, 1728, stamped.height))
    assert ImageChops.difference(moved, source.convert("L")).getbbox() is None


@module_loop
async def test_received_tiff_to_pdf(renderer: DocumentRenderer, tmp_path: Path) -> None:
    # A received fax: a standard page, a fine Legal page and a short fine page.
    standard = page_image(1728, 1143)
    legal = page_image(1728, 2744)
    short = Image.new("L", (1728, 400), 255)
    ImageDraw.Draw(short).rectangle((100, 100, 300, 200), fill=0)
    tiff_path = tmp_path / "received.tif"
    tiff_path.write_bytes(_mixed_resolution_tiff([standard, legal, short]))

    count = await renderer.render_tiff_to_pdf(tiff_path, tmp_path / "received.pdf")

    assert count == 3
    pdf = pdfium.PdfDocument(tmp_path / "received.pdf")
    sizes = [tuple(round(value, 1) for value in pdf.get_page_size(index)) for index in range(3)]
    assert sizes == [(609.9, 839.8), (609.9, 1008.0), (609.9, 146.9)]
    bitmap = pdf[2].render(scale=204 / 72, grayscale=True).to_pil()
    assert bitmap.getpixel((200, 150)) < 64  # the black box is black
    assert bitmap.getpixel((600, 300)) > 192  # the paper is white
    pdf.close()


def _mixed_resolution_tiff(pages: list[Image.Image]) -> bytes:
    from faxgate.documents.faxtiff import encode_g4, write_fax_tiff

    resolutions = [98, 196, 196]
    fax_pages = []
    for page, ydpi in zip(pages, resolutions, strict=True):
        ink = ImageChops.invert(page.convert("L")).convert("1", dither=Image.Dither.NONE)
        fax_pages.append(encode_g4(ink, 204, ydpi))
    buffer = io.BytesIO()
    write_fax_tiff(buffer, fax_pages)
    return buffer.getvalue()


@module_loop
async def test_foreign_tiff_to_pdf(renderer: DocumentRenderer, tmp_path: Path) -> None:
    # A G3 TIFF as another fax program writes it (not faxgate's own layout).
    source = page_image(1728, 1143)
    tiff_path = tmp_path / "other.tif"
    tiff_path.write_bytes(tiff_bytes([source, source], (204, 98), "group3"))
    count = await renderer.render_tiff_to_pdf(tiff_path, tmp_path / "other.pdf")
    assert count == 2
    pdf = pdfium.PdfDocument(tmp_path / "other.pdf")
    bitmap = pdf[0].render(scale=204 / 72, grayscale=True).to_pil()
    assert bitmap.getpixel((10, 10)) < 64  # the square in the top-left corner
    assert round(pdf.get_page_size(0)[1], 1) == 839.8
    pdf.close()

"""The document renderer end to end: real worker processes, real files."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import pytest_asyncio
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from faxgate.documents import DocumentInput, DocumentRenderer, RenderLimits
from faxgate.errors import DocumentError
from tests.document_samples import (
    A4,
    LEGAL,
    RECEIPT,
    encrypted_pdf,
    huge_png,
    minimal_docx,
    page_image,
    pdf_with_pages,
    rules_and_text_pdf,
    text_lines_pdf,
    tiff_bytes,
    tiff_pages,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = RenderLimits(timeout_s=60, memory_mb=1024, max_pages=50)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def renderer() -> AsyncIterator[DocumentRenderer]:
    pool = DocumentRenderer(LIMITS, workers=2, office_command="")
    await pool.warm_up()
    yield pool
    await pool.close()


def _black_box(page: Image.Image) -> tuple[int, int, int, int] | None:
    return ImageChops.invert(page).getbbox()


async def _render(
    renderer: DocumentRenderer, tmp_path: Path, data: bytes, name: str, resolution: str = "fine"
) -> tuple[list[Image.Image], list[tuple[float, float]]]:
    document = await renderer.render(
        [DocumentInput(data=data, filename=name)], tmp_path, resolution
    )
    pages = tiff_pages(document.tiff_path)
    assert document.pages == len(pages)
    return pages, document.page_sizes_mm


async def test_mixed_pdf_geometry(renderer: DocumentRenderer, tmp_path: Path) -> None:
    letter_landscape = (792.0, 612.0)
    data = pdf_with_pages([A4, letter_landscape, LEGAL, RECEIPT], rotations=[0, 90, 0, 0])
    document = await renderer.render([DocumentInput(data=data, filename="mixed.pdf")], tmp_path)
    pages = tiff_pages(document.tiff_path)

    assert document.pages == 4
    assert [page.size for page in pages] == [(1728, 2292), (1728, 2149), (1728, 2735), (1728, 4630)]
    assert document.page_sizes_mm == [
        (215.2, 297.0),
        (215.2, 278.5),
        (215.2, 354.4),
        (215.2, 600.0),
    ]
    assert document.sources[0].detected_type == "pdf"
    assert document.sources[0].pages == 4
    assert document.resolution == "fine"
    assert document.pdf_path.is_file()


async def test_pdf_page_placement(renderer: DocumentRenderer, tmp_path: Path) -> None:
    letter_landscape = (792.0, 612.0)
    data = pdf_with_pages(
        [A4, letter_landscape, letter_landscape, RECEIPT], rotations=[0, 90, 0, 0]
    )
    pages, _ = await _render(renderer, tmp_path, data, "placement.pdf")

    # A4 at 100 % is 1687 pixels wide, centred: 20 white pixels at the left.
    assert (_black_box(pages[0]) or (0,))[:3] == (20, 0, 123)
    # /Rotate 90 turns the page clockwise: the MediaBox's top-left corner is top-right.
    left, top, right, _ = _black_box(pages[1]) or (0, 0, 0, 0)
    assert right == 1728
    assert top == 0
    assert left > 1600
    # A landscape page is turned counter-clockwise: its top-left corner is bottom-left.
    left, _, _, bottom = _black_box(pages[2]) or (0, 0, 0, 0)
    assert left == 0
    assert bottom == pages[2].height
    # The 80 mm receipt keeps its size, centred.
    assert (_black_box(pages[3]) or (0,))[0] == (1728 - 643) // 2


async def test_standard_resolution_pdf(renderer: DocumentRenderer, tmp_path: Path) -> None:
    pages, sizes = await _render(
        renderer, tmp_path, pdf_with_pages([A4, LEGAL]), "s.pdf", "standard"
    )
    assert [page.size for page in pages] == [(1728, 1146), (1728, 1367)]
    assert sizes[0] == (215.2, 297.0)
    with Image.open(tmp_path / "document.tiff") as image:
        assert image.info["dpi"] == (204, 98)


def _horizontal_runs(page: Image.Image) -> list[tuple[int, int, int]]:
    """Return (x, y, length) of every horizontal run of black pixels."""
    pixels = page.load()
    assert pixels is not None
    runs = []
    for y in range(page.height):
        x = 0
        while x < page.width:
            if pixels[x, y] == 0:
                start = x
                while x < page.width and pixels[x, y] == 0:
                    x += 1
                runs.append((start, y, x - start))
            x += 1
    return runs


@pytest.mark.parametrize("resolution", ["standard", "fine"])
async def test_small_text_stems_not_hairlines(
    renderer: DocumentRenderer, tmp_path: Path, resolution: str
) -> None:
    # Helvetica stems at 6 pt are about 1.5 pixels wide at 204 dpi. Drawn one
    # pixel wide, they make OCR read "e" as "é" and "m" as "rn".
    lines = ["l" * 80] * 4 + ["Illinois lull " * 6]
    pages, _ = await _render(renderer, tmp_path, text_lines_pdf(lines, 6), "t.pdf", resolution)
    runs = _horizontal_runs(pages[0])
    assert len(runs) > 1000
    hairlines = [run for run in runs if run[2] == 1]
    assert hairlines == []


@pytest.mark.parametrize("resolution", ["standard", "fine"])
async def test_rules_unchanged_beside_small_text(
    renderer: DocumentRenderer, tmp_path: Path, resolution: str
) -> None:
    widths = [0.1, 0.25, 0.4, 0.6]
    alone, _ = await _render(
        renderer, tmp_path / "alone", rules_and_text_pdf(widths, None), "r.pdf", resolution
    )
    with_text, _ = await _render(
        renderer, tmp_path / "text", rules_and_text_pdf(widths, 6), "r.pdf", resolution
    )
    ydpi = 98 if resolution == "standard" else 196
    rules_box = (0, round(140 / 72 * ydpi), 1728, round(340 / 72 * ydpi))
    rules = alone[0].crop(rules_box)
    assert _black_box(rules) is not None
    assert ImageChops.difference(rules, with_text[0].crop(rules_box)).getbbox() is None
    text_box = (0, round(445 / 72 * ydpi), 1728, round(700 / 72 * ydpi))
    assert _black_box(with_text[0].crop(text_box)) is not None


async def test_short_page_padded(renderer: DocumentRenderer, tmp_path: Path) -> None:
    data = pdf_with_pages([(A4[0], 3.84)])  # the corner square fills the strip's left end
    pages, sizes = await _render(renderer, tmp_path, data, "strip.pdf")

    (page,) = pages
    assert page.size == (1728, 196)
    assert sizes[0] == (215.2, 25.4)
    _left, top, _right, bottom = _black_box(page) or (0, 0, 0, 0)
    assert top == 0
    assert bottom == round(3.84 / 72 * 196)  # the content keeps its size


async def test_long_page_split(renderer: DocumentRenderer, tmp_path: Path) -> None:
    data = pdf_with_pages([(RECEIPT[0], 1500 / 25.4 * 72)])  # 1.5 m long receipt
    pages, sizes = await _render(renderer, tmp_path, data, "receipt.pdf")
    assert len(pages) == 2
    assert [size[1] for size in sizes] == [999.9, 500.1]  # 7716 rows are 999.9 mm


async def test_tiff_200dpi_lzw(renderer: DocumentRenderer, tmp_path: Path) -> None:
    pages_in = [page_image(1654, 2339, "L") for _ in range(2)]
    data = tiff_bytes(pages_in, (200, 200), "tiff_lzw")
    pages, sizes = await _render(renderer, tmp_path, data, "scan.tif")
    assert [page.size for page in pages] == [(1728, 2292), (1728, 2292)]
    assert sizes[0] == (215.2, 297.0)
    left, top, _, _ = _black_box(pages[0]) or (0, 0, 0, 0)
    assert (left, top) == ((1728 - 1687) // 2, 0)


async def test_small_landscape_tiff_not_turned(renderer: DocumentRenderer, tmp_path: Path) -> None:
    label = Image.new("1", (218, 84), 1)
    ImageDraw.Draw(label).rectangle((0, 0, 39, 19), fill=0)  # marks the top-left corner
    data = tiff_bytes([label], (200, 200), "group4")

    pages, _ = await _render(renderer, tmp_path, data, "label.tif")

    (page,) = pages
    assert page.width == 1728
    assert page.height == 196  # 82 rows of label, padded to the 1 inch minimum
    left, top, right, bottom = _black_box(page) or (0, 0, 0, 0)
    assert (left, top) == ((1728 - 222) // 2, 0)
    assert right - left > bottom - top  # the mark is still wider than tall


async def test_tiff_200dpi_bilevel_keeps_lines(renderer: DocumentRenderer, tmp_path: Path) -> None:
    source = Image.new("1", (1654, 2339), 1)
    draw = ImageDraw.Draw(source)
    for row in range(300, 2300, 101):
        draw.line((200, row, 1400, row), fill=0)  # 1 pixel: 0.13 mm
    pages, _ = await _render(
        renderer, tmp_path, tiff_bytes([source], (200, 200), "group4"), "s.tif"
    )
    column = [pages[0].getpixel((800, row)) for row in range(pages[0].height)]
    runs = sum(1 for row in range(1, len(column)) if column[row] == 0 and column[row - 1] != 0)
    assert runs == 20


async def test_tiff_g3_standard_kept_exactly(renderer: DocumentRenderer, tmp_path: Path) -> None:
    source = page_image(1728, 1143)
    data = tiff_bytes([source, source], (204, 98), "group3")

    standard, _ = await _render(renderer, tmp_path, data, "fax.tif", "standard")
    assert ImageChops.difference(standard[0], source.convert("L")).getbbox() is None

    fine, sizes = await _render(renderer, tmp_path, data, "fax.tif", "fine")
    doubled = source.convert("L").resize((1728, 2286), Image.Resampling.NEAREST)
    assert fine[0].size == (1728, 2286)
    assert ImageChops.difference(fine[0], doubled).getbbox() is None
    assert sizes[1] == (215.2, 296.2)


async def test_tiff_300dpi_g4(renderer: DocumentRenderer, tmp_path: Path) -> None:
    source = page_image(2480, 3508)
    pages, sizes = await _render(
        renderer, tmp_path, tiff_bytes([source], (300, 300), "group4"), "a.tif"
    )
    assert pages[0].size == (1728, 2292)
    assert sizes == [(215.2, 297.0)]
    # The 4 px bars (0.34 mm) survive the reduction to 196 lpi.
    column = [pages[0].getpixel((864, row)) for row in range(100, 2200)]
    assert column.count(0) >= 15 * 2


async def test_phone_photo_of_page(renderer: DocumentRenderer, tmp_path: Path) -> None:
    # A page of text photographed in uneven light, stored sideways with EXIF orientation 6.
    paper = Image.new("L", (3024, 4032), 255)
    draw = ImageDraw.Draw(paper)
    for row in range(400, 3600, 120):
        draw.rectangle((300, row, 2700, row + 14), fill=20)
    light = Image.linear_gradient("L").resize((3024, 4032)).point(lambda value: 255 - value // 3)
    photo = ImageChops.multiply(paper, light).filter(ImageFilter.GaussianBlur(2))
    stored = photo.transpose(Image.Transpose.ROTATE_90)  # the camera held sideways
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.convert("RGB").save(buffer, "JPEG", quality=85, exif=exif, dpi=(72, 72))

    pages, _ = await _render(renderer, tmp_path, buffer.getvalue(), "IMG_0001.JPG")
    page = pages[0]
    assert page.width == 1728
    assert page.height > page.width  # portrait again
    # The paper's darkest corner comes out white and the text lines solid.
    paper_corner = page.crop((100, page.height - 150, 1600, page.height - 20))
    assert paper_corner.histogram()[0] < 0.01 * paper_corner.width * paper_corner.height
    lines = page.crop((400, 200, 1300, page.height - 200))
    black_share = lines.histogram()[0] / (lines.width * lines.height)
    assert 0.05 < black_share < 0.25


async def test_photograph_is_halftoned(renderer: DocumentRenderer, tmp_path: Path) -> None:
    # A stand-in for a photograph: a gradient with soft blotches of mid grey.
    gradient = Image.linear_gradient("L").resize((1200, 900))
    blotches = Image.effect_noise((1200, 900), 60).filter(ImageFilter.GaussianBlur(6))
    photo = ImageChops.add(
        gradient.point(lambda value: value // 2), blotches.point(lambda v: v // 2)
    )
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, "JPEG", dpi=(150, 150))
    pages, _ = await _render(renderer, tmp_path, buffer.getvalue(), "photo.jpg")
    # The 8 x 6 in landscape photo fits the fax width, so it keeps its
    # orientation. Its middle grey is about half black dots.
    page = pages[0]
    assert page.height == 6 * 196
    middle = page.crop((800, page.height // 2 - 50, 900, page.height // 2 + 50))
    share = middle.histogram()[0] / 10000
    assert 0.25 < share < 0.75


async def test_text_charsets_render_alike(renderer: DocumentRenderer, tmp_path: Path) -> None:
    text = "Grüße aus Köln – 20 € für Müller\r\n\tEinrückung\r\n"
    utf8_pages, _ = await _render(renderer, tmp_path / "a", text.encode("utf-8"), "a.txt")
    cp1252_pages, _ = await _render(renderer, tmp_path / "b", text.encode("windows-1252"), "b.txt")
    assert len(utf8_pages) == 1
    assert _black_box(utf8_pages[0]) is not None
    assert ImageChops.difference(utf8_pages[0], cp1252_pages[0]).getbbox() is None


async def test_long_text_paginates(renderer: DocumentRenderer, tmp_path: Path) -> None:
    text = "".join(f"line {number}\n" for number in range(150)) + "\fafter a form feed\n"
    document = await renderer.render(
        [DocumentInput(data=text.encode(), filename="log.txt")], tmp_path
    )
    assert document.pages == 4  # 63 lines per page, then the form feed
    assert document.sources[0].detected_type == "text"


async def test_html_body_as_text(renderer: DocumentRenderer, tmp_path: Path) -> None:
    html = b"<html><head><style>p{}</style></head><body><p>Dear Sir,</p><p>x</p></body></html>"
    document = await renderer.render(
        [DocumentInput(data=html, content_type="text/html; charset=utf-8")], tmp_path
    )
    assert document.pages == 1
    assert document.sources[0].detected_type == "html"


async def test_inputs_concatenate(renderer: DocumentRenderer, tmp_path: Path) -> None:
    inputs = [
        DocumentInput(data=b"cover page\n", filename="body.txt"),
        DocumentInput(data=pdf_with_pages([A4] * 9), filename="contract.pdf"),
        DocumentInput(data=tiff_bytes([page_image(1728, 1143)], (204, 98), "group4")),
    ]
    document = await renderer.render(inputs, tmp_path)
    assert document.pages == 11
    assert [source.pages for source in document.sources] == [1, 9, 1]
    assert [source.detected_type for source in document.sources] == ["text", "pdf", "tiff"]
    with Image.open(document.tiff_path) as image:
        assert getattr(image, "n_frames", 1) == 11
    pdf = pdfium.PdfDocument(document.pdf_path)
    assert len(pdf) == 11
    pdf.close()


async def test_pdf_attachment_matches_tiff(renderer: DocumentRenderer, tmp_path: Path) -> None:
    document = await renderer.render(
        [DocumentInput(data=pdf_with_pages([A4, LEGAL], text="Readable copy"))],
        tmp_path,
        "standard",
    )
    pages = tiff_pages(document.tiff_path)
    pdf = pdfium.PdfDocument(document.pdf_path)
    for index, tiff_page in enumerate(pages):
        width_pt, height_pt = pdf.get_page_size(index)
        assert round(width_pt / 72 * 204) == 1728
        assert round(height_pt / 72 * 98) == tiff_page.height
        bitmap = pdf[index].render(scale=204 / 72, grayscale=True).to_pil()
        rendered = bitmap.resize(tiff_page.size, Image.Resampling.NEAREST)
        expected = _black_box(tiff_page) or (0, 0, 0, 0)
        found = _black_box(rendered) or (0, 0, 0, 0)
        assert all(abs(a - b) <= 1 for a, b in zip(found, expected, strict=True))
    pdf.close()


async def test_owner_password_pdf_opens(renderer: DocumentRenderer, tmp_path: Path) -> None:
    pages, _ = await _render(renderer, tmp_path, encrypted_pdf(""), "restricted.pdf")
    assert len(pages) == 2


async def test_user_password_pdf_rejected(renderer: DocumentRenderer, tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        await _render(renderer, tmp_path, encrypted_pdf("secret"), "locked.pdf")
    assert caught.value.code == "password_protected"
    assert caught.value.message == "document is password protected"
    assert caught.value.details["filename"] == "locked.pdf"
    assert not (tmp_path / "document.tiff").exists()


async def test_truncated_pdf_rejected(renderer: DocumentRenderer, tmp_path: Path) -> None:
    data = pdf_with_pages([A4] * 3, text="cut off")
    with pytest.raises(DocumentError) as caught:
        await _render(renderer, tmp_path, data[: len(data) // 2], "cut.pdf")
    assert caught.value.code == "corrupt"


async def test_broken_xref_repaired(renderer: DocumentRenderer, tmp_path: Path) -> None:
    data = pdf_with_pages([A4, A4])
    start = data.rindex(b"startxref")
    broken = data[:start] + b"startxref\n999999\n%%EOF\n"
    pages, _ = await _render(renderer, tmp_path, broken, "broken.pdf")
    assert len(pages) == 2


async def test_garbage_pdf_rejected(renderer: DocumentRenderer, tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        await _render(
            renderer, tmp_path, b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n", "x.pdf"
        )
    assert caught.value.code in ("corrupt", "empty")


async def test_decompression_bomb_rejected(renderer: DocumentRenderer, tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        await _render(renderer, tmp_path, huge_png(), "bomb.png")
    assert caught.value.code == "too_large"
    assert "20000 x 20000" in caught.value.message


async def test_zero_byte_file_rejected(renderer: DocumentRenderer, tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        await _render(renderer, tmp_path, b"", "empty.pdf")
    assert caught.value.code == "empty"


async def test_page_limit_before_rendering(renderer: DocumentRenderer, tmp_path: Path) -> None:
    inputs = [
        DocumentInput(data=pdf_with_pages([A4] * 30)),
        DocumentInput(data=pdf_with_pages([A4] * 30)),
    ]
    with pytest.raises(DocumentError) as caught:
        await renderer.render(inputs, tmp_path)
    assert caught.value.code == "too_many_pages"
    assert caught.value.details["input_index"] == 1


async def test_office_unavailable(renderer: DocumentRenderer, tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        await _render(renderer, tmp_path, minimal_docx(), "letter.docx")
    assert caught.value.code == "office_unavailable"


async def test_no_work_files_left(renderer: DocumentRenderer, tmp_path: Path) -> None:
    await _render(renderer, tmp_path, b"hello\n", "a.txt")
    names = await asyncio.to_thread(lambda: sorted(path.name for path in tmp_path.iterdir()))
    assert names == ["document.pdf", "document.tiff"]


def _fake_soffice(directory: Path, body: str) -> str:
    script = directory / "soffice"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


async def test_office_conversion_runs_soffice(tmp_path: Path) -> None:
    pdf = tmp_path / "converted.pdf"
    pdf.write_bytes(pdf_with_pages([A4, A4]))
    # A stand-in for LibreOffice: copies a PDF to <outdir>/<input stem>.pdf.
    command = _fake_soffice(
        tmp_path,
        'while [ "$1" != "--outdir" ]; do shift; done\n'
        f'name=$(basename "$3"); cp {pdf} "$2/${{name%.*}}.pdf"\n',
    )
    pool = DocumentRenderer(LIMITS, workers=1, office_command=command)
    try:
        out = tmp_path / "out"
        out.mkdir()
        document = await pool.render([DocumentInput(data=minimal_docx(), filename="l.docx")], out)
    finally:
        await pool.close()
    assert document.pages == 2
    assert document.sources[0].detected_type == "docx"


async def test_office_timeout(tmp_path: Path) -> None:
    command = _fake_soffice(tmp_path, "sleep 30\n")
    pool = DocumentRenderer(RenderLimits(office_timeout_s=0.5), workers=1, office_command=command)
    try:
        with pytest.raises(DocumentError) as caught:
            await pool.render([DocumentInput(data=minimal_docx(), filename="l.docx")], tmp_path)
    finally:
        await pool.close()
    assert caught.value.code == "timeout"


async def test_timeout_replaces_worker(tmp_path: Path) -> None:
    pool = DocumentRenderer(RenderLimits(timeout_s=0.05), workers=1)
    try:
        await pool.warm_up()
        with pytest.raises(DocumentError) as caught:
            await pool.render([DocumentInput(data=pdf_with_pages([A4] * 40))], tmp_path)
        assert caught.value.code == "timeout"
        pool._limits = RenderLimits(timeout_s=60)  # the next job gets a healthy worker
        document = await pool.render([DocumentInput(data=b"after the timeout\n")], tmp_path)
    finally:
        await pool.close()
    assert document.pages == 1


async def test_memory_limit_rejects(tmp_path: Path) -> None:
    image = Image.new("RGB", (9000, 9000), (200, 200, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    pool = DocumentRenderer(RenderLimits(memory_mb=400), workers=1)
    try:
        with pytest.raises(DocumentError) as caught:
            await pool.render([DocumentInput(data=buffer.getvalue(), filename="big.png")], tmp_path)
        document = await pool.render([DocumentInput(data=b"still working\n")], tmp_path)
    finally:
        await pool.close()
    assert caught.value.code == "too_large"
    assert "400 MB" in caught.value.message
    assert document.pages == 1


async def test_text_page_limit(renderer: DocumentRenderer, tmp_path: Path) -> None:
    text = "line\n" * (63 * LIMITS.max_pages + 1)
    with pytest.raises(DocumentError) as caught:
        await _render(renderer, tmp_path, text.encode(), "huge.txt")
    assert caught.value.code == "too_many_pages"


async def test_concurrent_renders_share_pool(renderer: DocumentRenderer, tmp_path: Path) -> None:
    outs = [tmp_path / name for name in ("a", "b", "c")]
    for out in outs:
        await asyncio.to_thread(out.mkdir)
    documents = await asyncio.gather(
        *(
            renderer.render([DocumentInput(data=pdf_with_pages([A4] * (index + 2)))], out)
            for index, out in enumerate(outs)
        )
    )
    assert [document.pages for document in documents] == [2, 3, 4]


async def test_cancelled_render_frees_worker(tmp_path: Path) -> None:
    pool = DocumentRenderer(RenderLimits(timeout_s=60), workers=1)
    try:
        await pool.warm_up()
        task = asyncio.create_task(
            # Long enough (about 4 s of rendering) that the cancel lands mid-render
            # even on an idle machine.
            pool.render([DocumentInput(data=pdf_with_pages([A4] * 150))], tmp_path)
        )
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        document = await pool.render([DocumentInput(data=b"next job\n")], tmp_path)
    finally:
        await pool.close()
    assert document.pages == 1


async def test_killed_worker_is_replaced(tmp_path: Path) -> None:
    pool = DocumentRenderer(RenderLimits(timeout_s=60), workers=1)
    try:
        await pool.warm_up()
        (pid,) = [slot.pid for slot in pool._workers]
        assert pid is not None
        task = asyncio.create_task(
            pool.render([DocumentInput(data=pdf_with_pages([A4] * 150))], tmp_path)
        )
        await asyncio.sleep(0.3)
        assert not task.done()
        os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        with pytest.raises(DocumentError) as caught:
            await task
        document = await pool.render([DocumentInput(data=b"after the crash\n")], tmp_path)
    finally:
        await pool.close()
    assert caught.value.code == "render_failed"
    assert document.pages == 1


async def test_split_pages_keep_order(renderer: DocumentRenderer, tmp_path: Path) -> None:
    heights_pt = [220.0 + 20 * index for index in range(12)]
    data = pdf_with_pages([(200.0, height) for height in heights_pt])
    document = await renderer.render([DocumentInput(data=data)], tmp_path)
    expected = [round(round(height / 72 * 196) / 196 * 25.4, 1) for height in heights_pt]
    assert [size[1] for size in document.page_sizes_mm] == expected

"""Paper size of laid-out text: the documents.paper_size setting and rendered pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import ImageChops

from faxgate.adapters import RendererPipeline
from faxgate.config import load_config, text_paper_size
from faxgate.documents import DocumentInput, DocumentRenderer, RenderLimits
from faxgate.documents.textsource import A4, LETTER, PAPER_SIZES
from faxgate.errors import ConfigError
from tests.document_samples import A4 as A4_PDF_PAGE
from tests.document_samples import pdf_with_pages, tiff_pages

# Tests that use the module-scoped renderers run in the module's event loop.
in_module_loop = pytest.mark.asyncio(loop_scope="module")

LIMITS = RenderLimits(timeout_s=60, max_pages=20)
# Page sizes that the renderer reports at fine resolution (196 lpi). Every fax
# page is 1728 pixels (215.2 mm) wide. A4 fits that width at 100 %, so it keeps
# its 297 mm. Letter is scaled to 1728/1734 of its size, so 11 in becomes 278.5 mm.
A4_FINE_MM = (215.2, 297.0)
LETTER_FINE_MM = (215.2, 278.5)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def renderers() -> AsyncIterator[dict[str, DocumentRenderer]]:
    pools = {
        name: DocumentRenderer(LIMITS, workers=1, office_command="", text_paper=name)
        for name in ("a4", "letter")
    }
    for pool in pools.values():
        await pool.warm_up()
    yield pools
    for pool in pools.values():
        await pool.close()


def _numbered_lines(count: int) -> bytes:
    return "".join(f"line {number}\n" for number in range(1, count + 1)).encode()


@in_module_loop
@pytest.mark.parametrize(("paper", "expected_mm"), [("a4", A4_FINE_MM), ("letter", LETTER_FINE_MM)])
async def test_text_page_size(
    renderers: dict[str, DocumentRenderer],
    tmp_path: Path,
    paper: str,
    expected_mm: tuple[float, float],
) -> None:
    document = await renderers[paper].render(
        [DocumentInput(data=_numbered_lines(3), filename="note.txt")], tmp_path
    )

    assert document.page_sizes_mm == [expected_mm]
    assert document.sources[0].detected_type == "text"


@in_module_loop
async def test_html_letter_page_size(
    renderers: dict[str, DocumentRenderer], tmp_path: Path
) -> None:
    html = b"<html><body><p>Dear customer,</p><p>thank you.</p></body></html>"
    document = await renderers["letter"].render(
        [DocumentInput(data=html, content_type="text/html; charset=utf-8")], tmp_path
    )

    assert document.page_sizes_mm == [LETTER_FINE_MM]


@in_module_loop
async def test_letter_standard_resolution(
    renderers: dict[str, DocumentRenderer], tmp_path: Path
) -> None:
    document = await renderers["letter"].render(
        [DocumentInput(data=_numbered_lines(3), filename="note.txt")], tmp_path, "standard"
    )

    # 11 in at 1728/1734 scale and 98 lpi is 1074 rows.
    (page,) = tiff_pages(document.tiff_path)
    assert page.size == (1728, 1074)
    assert document.page_sizes_mm == [(215.2, 278.4)]


@in_module_loop
@pytest.mark.parametrize(
    ("line_count", "a4_pages", "letter_pages"),
    [
        (LETTER.lines_per_page, 1, 1),
        (LETTER.lines_per_page + 1, 1, 2),
        (A4.lines_per_page, 1, 2),
        (A4.lines_per_page + 1, 2, 2),
        (2 * LETTER.lines_per_page + 1, 2, 3),
    ],
)
async def test_long_text_lines_per_page(
    renderers: dict[str, DocumentRenderer],
    tmp_path: Path,
    line_count: int,
    a4_pages: int,
    letter_pages: int,
) -> None:
    data = _numbered_lines(line_count)

    a4 = await renderers["a4"].render([DocumentInput(data=data)], tmp_path / "a4")
    letter = await renderers["letter"].render([DocumentInput(data=data)], tmp_path / "letter")

    assert a4.pages == a4_pages
    assert a4.page_sizes_mm == [A4_FINE_MM] * a4_pages
    assert letter.pages == letter_pages
    assert letter.page_sizes_mm == [LETTER_FINE_MM] * letter_pages


@in_module_loop
@pytest.mark.parametrize("paper", ["a4", "letter"])
async def test_text_margins_follow_paper(
    renderers: dict[str, DocumentRenderer], tmp_path: Path, paper: str
) -> None:
    # A full page of 80-column lines: the ink must be centred across the
    # page and end above the 36 pt bottom margin, less the font's descent.
    line = "M" * 79 + "g"
    count = PAPER_SIZES[paper].lines_per_page
    data = ((line + "\n") * count).encode()

    document = await renderers[paper].render([DocumentInput(data=data)], tmp_path)

    (page,) = tiff_pages(document.tiff_path)
    box = ImageChops.invert(page).getbbox()
    assert box is not None
    left, _, right, bottom = box
    assert abs(left - (page.width - right)) <= 4
    # A fine fax row is 72/196 pt. The renderer shrank Letter by 1728/1734 to fit
    # the fax width, so there one row covers a little more of the source page.
    points_per_row = 72 / 196 * (1734 / 1728 if paper == "letter" else 1.0)
    white_below_pt = (page.height - bottom) * points_per_row
    assert 30 <= white_below_pt <= 40


@in_module_loop
async def test_pdf_keeps_own_size(renderers: dict[str, DocumentRenderer], tmp_path: Path) -> None:
    document = await renderers["letter"].render(
        [DocumentInput(data=pdf_with_pages([A4_PDF_PAGE]), filename="form.pdf")], tmp_path
    )

    assert document.page_sizes_mm == [A4_FINE_MM]


def test_renderer_rejects_unknown_paper() -> None:
    with pytest.raises(ValueError, match="text_paper"):
        DocumentRenderer(LIMITS, workers=1, office_command="", text_paper="legal")


@pytest.mark.parametrize(
    ("region", "paper_size", "expected"),
    [
        ("US", "auto", "letter"),
        ("CA", "auto", "letter"),
        ("MX", "auto", "letter"),
        ("PH", "auto", "letter"),
        ("DE", "auto", "a4"),
        ("GB", "auto", "a4"),
        ("AU", "auto", "a4"),
        ("us", "auto", "letter"),
        ("US", "a4", "a4"),
        ("DE", "letter", "letter"),
        ("DE", "Letter", "letter"),
        ("US", "A4", "a4"),
    ],
)
def test_paper_size_setting(region: str, paper_size: str, expected: str) -> None:
    config = load_config(
        None,
        environ={"FAXGATE_FAX_DEFAULT_REGION": region, "FAXGATE_DOCUMENTS_PAPER_SIZE": paper_size},
    )

    assert text_paper_size(config) == expected


def test_paper_size_default_auto() -> None:
    config = load_config(None, environ={})

    assert config.documents.paper_size == "auto"
    assert text_paper_size(config) == "letter"


@pytest.mark.parametrize("value", ["legal", "", "A5", "letter "])
def test_invalid_paper_size_env(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"FAXGATE_DOCUMENTS_PAPER_SIZE": value})

    message = str(caught.value)
    assert message.startswith("documents.paper_size:")
    assert "'auto', 'letter' or 'a4'" in message
    assert repr(value) in message


def test_invalid_paper_size_file(tmp_path: Path) -> None:
    path = tmp_path / "faxgate.toml"
    path.write_text('[documents]\npaper_size = "tabloid"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert "documents.paper_size" in str(caught.value)
    assert "'tabloid'" in str(caught.value)


def test_paper_size_not_string(tmp_path: Path) -> None:
    path = tmp_path / "faxgate.toml"
    path.write_text("[documents]\npaper_size = 4\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"documents\.paper_size: expected a string"):
        load_config(path, environ={})


@pytest.mark.parametrize(("region", "expected_mm"), [("US", LETTER_FINE_MM), ("DE", A4_FINE_MM)])
async def test_pipeline_auto_follows_region(
    tmp_path: Path, region: str, expected_mm: tuple[float, float]
) -> None:
    config = load_config(
        None, environ={"FAXGATE_FAX_DEFAULT_REGION": region, "FAXGATE_DOCUMENTS_WORKERS": "1"}
    )
    pipeline = RendererPipeline(config)
    try:
        document = await pipeline.renderer.render(
            [DocumentInput(data=_numbered_lines(3), filename="body.txt")], tmp_path
        )
    finally:
        await pipeline.close()

    assert document.page_sizes_mm == [expected_mm]

"""Text decoding, HTML flattening and text pagination."""

from __future__ import annotations

from pathlib import Path

import pypdf
import pytest

from faxgate.documents.htmltext import html_to_text
from faxgate.documents.textsource import (
    A4,
    COLUMNS,
    LETTER,
    PaperSize,
    decode_text,
    layout_text_pdf,
    text_to_lines,
)


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        ("Grüße €".encode(), None, "Grüße €"),
        ("Grüße €".encode("windows-1252"), None, "Grüße €"),
        ("Grüße €".encode("windows-1252"), "text/plain; charset=iso-8859-1", "Grüße €"),
        ("Привет".encode("koi8-r"), 'text/plain; charset="KOI8-R"', "Привет"),
        ("\ufeffHallo".encode("utf-16-le"), None, "Hallo"),
        ("Größe".encode("utf-8-sig"), "text/plain; charset=windows-1252", "Größe"),
        (b"plain ascii", "text/plain; charset=unknown-charset", "plain ascii"),
        (b'<meta charset="windows-1252"><p>\xe9t\xe9</p>', "text/html", "<p>été</p>"),
    ],
)
def test_decode_text_charsets(data: bytes, content_type: str | None, expected: str) -> None:
    assert decode_text(data, content_type).endswith(expected)


def test_text_lines_wrap_and_tabs() -> None:
    long_line = "word " * 30
    (page,) = text_to_lines(f"a\tb\n{long_line}\n\x07bell", A4.lines_per_page)
    assert page[0] == "a       b"
    assert all(len(line) <= COLUMNS for line in page)
    assert page[-1] == "bell"
    assert len(page) == 4


def test_text_lines_form_feed_pages() -> None:
    lines_per_page = A4.lines_per_page
    pages = text_to_lines("\n".join(["x"] * (lines_per_page + 1)) + "\fnext", lines_per_page)
    assert [len(page) for page in pages] == [lines_per_page, 1, 1]
    assert pages[2] == ["next"]


def test_lines_per_page_by_paper() -> None:
    # The text area is the page height less 48 pt at the top and 36 pt at the
    # bottom, filled with 12 pt lines.
    assert A4.lines_per_page == 63  # 757.89 pt of text area
    assert LETTER.lines_per_page == 59  # 708 pt of text area


@pytest.mark.parametrize("paper", [A4, LETTER], ids=lambda paper: paper.name)
def test_text_pdf_page_geometry(tmp_path: Path, paper: PaperSize) -> None:
    target = tmp_path / "text.pdf"
    lines = [f"line {number}" for number in range(paper.lines_per_page + 1)]

    pages = layout_text_pdf(
        "\n".join(lines).encode(), "text/plain", False, target, max_pages=5, paper=paper
    )

    assert pages == 2
    reader = pypdf.PdfReader(target)
    for page in reader.pages:
        assert float(page.mediabox.width) == pytest.approx(paper.width_pt)
        assert float(page.mediabox.height) == pytest.approx(paper.height_pt)
    first_page_text = reader.pages[0].extract_text()
    assert lines[-2] in first_page_text
    assert lines[-1] not in first_page_text
    assert reader.pages[1].extract_text().strip() == lines[-1]


def test_html_to_text_structure() -> None:
    html = """<html><head><title>t</title><style>p {color: red}</style></head>
    <body><h1>Order   confirmation</h1>
    <p>Dear&nbsp;customer,<br>thank you.</p>
    <ul><li>First</li><li>Second</li></ul>
    <ol><li>One</li><li>Two</li></ol>
    <table><tr><td>Item</td><td>Price</td></tr><tr><td>Pen</td><td>2 &euro;</td></tr></table>
    <p><a href="https://example.com/o/1">your order</a></p>
    <script>alert(1)</script></body></html>"""
    lines = [line for line in html_to_text(html).splitlines() if line]
    assert lines == [
        "Order confirmation",
        "Dear\xa0customer,",
        "thank you.",
        "- First",
        "- Second",
        "1. One",
        "2. Two",
        "Item  |  Price",
        "Pen  |  2 €",
        "your order <https://example.com/o/1>",
    ]


def test_text_after_nul_kept(tmp_path: Path) -> None:
    target = tmp_path / "text.pdf"

    pages = layout_text_pdf(
        b"before\x00after the damage\n", "text/plain", False, target, max_pages=5, paper=A4
    )

    assert pages == 1
    text = pypdf.PdfReader(target).pages[0].extract_text()
    assert "before" in text
    assert "after the damage" in text

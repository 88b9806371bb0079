"""Measure how legible small text is on faxgate's fax pages, against Ghostscript.

Makes A4 PDFs of known text at 10, 8 and 6 pt in several font families. They
are rendered to fax pages at standard (204 x 98 dpi) and fine (204 x 196 dpi)
resolution through faxgate's DocumentRenderer. When `gs` is installed, they
are also rendered through Ghostscript's tiffg4 device at the same geometry
(A4 at 100 %, 1728 pixels wide), and with --naive by a plain anti-aliased
PDFium render thresholded at 50 %. Each page is scaled to square pixels (204 x 204 dpi, bilinear)
and read back with tesseract. The score is the share of the known text's
non-space characters read back: 1 - edit distance / length, so word spacing
that OCR gets wrong does not count.

Usage: python bench/legibility.py [--families sans,serif,helvetica,times] [--jobs 2] [--naive]
Needs the Debian packages tesseract-ocr and, for the comparison, ghostscript.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pdftext import FAMILIES, TextPdf, make_text_pdf

from faxgate.documents import DocumentInput, DocumentRenderer, RenderLimits

SIZES_PT = (10, 8, 6)
RESOLUTIONS = {"standard": 98, "fine": 196}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="font families to test")
    parser.add_argument("--jobs", type=int, default=2, help="OCR processes run in parallel")
    parser.add_argument(
        "--naive",
        action="store_true",
        help="also score a naive render: anti-aliased PDFium output thresholded at 50 %%",
    )
    arguments = parser.parse_args()
    if shutil.which("tesseract") is None:
        sys.exit("tesseract is not installed (Debian package tesseract-ocr); nothing to measure")
    asyncio.run(run(arguments.families.split(","), arguments.jobs, arguments.naive))


async def run(families: list[str], jobs: int, naive: bool) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        documents = {
            (family, size): make_text_pdf(
                work / f"{family}-{size}.pdf",
                family,
                size,
                seed=zlib.crc32(f"{family}-{size}".encode()),
            )
            for family in families
            for size in SIZES_PT
        }
        pages = await _render_faxgate(documents, work)
        if naive:
            pages.update(_render_naive(documents, work))
        if shutil.which("gs"):
            pages.update(_render_ghostscript(documents, work))
        else:
            print("gs is not installed: Ghostscript column left empty")

        with ThreadPoolExecutor(jobs) as pool:
            keys = sorted(pages)
            scores = dict(
                zip(
                    keys,
                    pool.map(lambda key: _score(documents[key[:2]], *pages[key]), keys),
                    strict=True,
                )
            )
    _report(documents, scores, families, naive)


async def _render_faxgate(
    documents: dict[tuple[str, int], TextPdf], work: Path
) -> dict[tuple[str, int, str, str], tuple[Path, int]]:
    renderer = DocumentRenderer(RenderLimits(), workers=1)
    pages = {}
    try:
        for (family, size), document in documents.items():
            for resolution, ydpi in RESOLUTIONS.items():
                out = work / f"faxgate-{family}-{size}-{resolution}"
                out.mkdir()
                rendered = await renderer.render(
                    [DocumentInput(path=document.path)], out, resolution
                )
                pages[(family, size, resolution, "faxgate")] = (rendered.tiff_path, ydpi)
    finally:
        await renderer.close()
    return pages


def _render_naive(
    documents: dict[tuple[str, int], TextPdf], work: Path
) -> dict[tuple[str, int, str, str], tuple[Path, int]]:
    """Render with anti-aliasing at fax resolution and threshold at 50 %, for comparison."""
    pages = {}
    for (family, size), document in documents.items():
        pdf = pdfium.PdfDocument(document.path)
        page = pdf[0]
        width_pt, height_pt = page.get_size()
        for resolution, ydpi in RESOLUTIONS.items():
            width, height = round(width_pt / 72 * 204), round(height_pt / 72 * ydpi)
            bitmap = pdfium.PdfBitmap.new_native(width, height, pdfium_c.FPDFBitmap_Gray)
            bitmap.fill_rect((255, 255, 255, 255), 0, 0, width, height)
            pdfium_c.FPDF_RenderPageBitmap(
                bitmap, page, 0, 0, width, height, 0, pdfium_c.FPDF_GRAYSCALE
            )
            out = work / f"naive-{family}-{size}-{resolution}.tif"
            bitmap.to_pil().convert("1", dither=Image.Dither.NONE).save(out)
            pages[(family, size, resolution, "naive")] = (out, ydpi)
        page.close()
        pdf.close()
    return pages


def _render_ghostscript(
    documents: dict[tuple[str, int], TextPdf], work: Path
) -> dict[tuple[str, int, str, str], tuple[Path, int]]:
    pages = {}
    for (family, size), document in documents.items():
        for resolution, ydpi in RESOLUTIONS.items():
            out = work / f"gs-{family}-{size}-{resolution}.tif"
            subprocess.run(
                ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4",
                 f"-r204x{ydpi}", f"-sOutputFile={out}", str(document.path)],
                check=True,
            )  # fmt: skip
            pages[(family, size, resolution, "gs")] = (out, ydpi)
    return pages


def _score(document: TextPdf, tiff_path: Path, ydpi: int) -> float:
    with Image.open(tiff_path) as image:
        page = image.convert("L")
    square = page.resize((page.width, round(page.height * 204 / ydpi)), Image.Resampling.BILINEAR)
    with tempfile.TemporaryDirectory() as temporary:
        png = Path(temporary) / "page.png"
        square.save(png, dpi=(204, 204))
        result = subprocess.run(
            ["tesseract", str(png), "-", "--psm", "6"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        )
    expected = "".join("".join(document.lines).split())
    read = "".join(result.stdout.split())
    return 1 - edit_distance(expected, read) / len(expected)


def edit_distance(a: str, b: str) -> int:
    """Return the Levenshtein distance of two strings.

    Uses the bit-parallel algorithm of Myers (1999) in Hyyrö's form for edit
    distance, with Python integers as bit vectors as long as `a`: about 0.3 s
    for two 14,000-character pages.
    """
    if not a:
        return len(b)
    full = (1 << len(a)) - 1
    last = 1 << (len(a) - 1)
    positions: dict[str, int] = {}
    for index, character in enumerate(a):
        positions[character] = positions.get(character, 0) | (1 << index)
    plus, minus, distance = full, 0, len(a)
    for character in b:
        equal = positions.get(character, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        horizontal_plus = minus | (~(horizontal | plus) & full)
        horizontal_minus = plus & horizontal
        if horizontal_plus & last:
            distance += 1
        elif horizontal_minus & last:
            distance -= 1
        horizontal_plus = ((horizontal_plus << 1) | 1) & full
        horizontal_minus = (horizontal_minus << 1) & full
        plus = horizontal_minus | (~(vertical | horizontal_plus) & full)
        minus = horizontal_plus & vertical
    return distance


def _report(
    documents: dict[tuple[str, int], TextPdf],
    scores: dict[tuple[str, int, str, str], float],
    families: list[str],
    naive: bool,
) -> None:
    renderers = ["faxgate", "gs"] + (["naive"] if naive else [])
    print("Characters read back by tesseract (share of the known text, spaces ignored)")
    headings = ["faxgate", "gs tiffg4", "faxgate-gs"] + (["naive"] if naive else [])
    print(f"{'font':34} {'size':>5} {'resolution':>10} " + " ".join(f"{h:>10}" for h in headings))
    for resolution in RESOLUTIONS:
        for size in SIZES_PT:
            for family in families:
                found = {name: scores.get((family, size, resolution, name)) for name in renderers}
                cells = [
                    _percent(found["faxgate"]),
                    _percent(found["gs"]),
                    _difference(found["faxgate"], found["gs"]),
                ]
                if naive:
                    cells.append(_percent(found["naive"]))
                print(
                    f"{documents[(family, size)].font:34} {size:>2} pt {resolution:>10} "
                    + " ".join(f"{cell:>10}" for cell in cells)
                )
    print()
    print("All families together (character-weighted):")
    for resolution in RESOLUTIONS:
        for size in SIZES_PT:
            parts = []
            for name in renderers:
                weights = [
                    (scores[key], len("".join(documents[(family, size)].lines)))
                    for family in families
                    if (key := (family, size, resolution, name)) in scores
                ]
                total = sum(weight for _, weight in weights)
                share = sum(s * w for s, w in weights) / total if total else None
                parts.append(f"{name} {_percent(share)}")
            print(f"  {size:>2} pt {resolution:>8}: " + "   ".join(parts))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _difference(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{100 * (a - b):+.2f}"


if __name__ == "__main__":
    main()

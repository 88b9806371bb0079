"""Measure how legible small text is on faxgate's fax pages, against Ghostscript.

Makes A4 PDFs of known text at 10, 8 and 6 pt in several font families,
renders them to fax pages at standard (204 x 98 dpi) and fine (204 x 196 dpi)
resolution through faxgate's DocumentRenderer and, when `gs` is installed,
through Ghostscript's tiffg4 device at the same geometry (A4 at 100 %, 1728
pixels wide). Each page is scaled to square pixels (204 x 204 dpi, bilinear)
and read back with tesseract. The score is the share of the known text's
non-space characters read back: 1 - edit distance / length, so word spacing
that OCR gets wrong does not count.

Usage: python bench/legibility.py [--families sans,serif,helvetica,times] [--jobs 2]
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
    arguments = parser.parse_args()
    if shutil.which("tesseract") is None:
        sys.exit("tesseract is not installed (Debian package tesseract-ocr); nothing to measure")
    asyncio.run(run(arguments.families.split(","), arguments.jobs))


async def run(families: list[str], jobs: int) -> None:
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
    _report(documents, scores, families)


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
) -> None:
    print("Characters read back by tesseract (share of the known text, spaces ignored)")
    columns = ("faxgate", "gs tiffg4", "faxgate-gs")
    print(f"{'font':34} {'size':>5} {'resolution':>10} " + " ".join(f"{c:>10}" for c in columns))
    for resolution in RESOLUTIONS:
        for size in SIZES_PT:
            for family in families:
                faxgate = scores.get((family, size, resolution, "faxgate"))
                ghostscript = scores.get((family, size, resolution, "gs"))
                cells = (
                    _percent(faxgate),
                    _percent(ghostscript),
                    _difference(faxgate, ghostscript),
                )
                print(
                    f"{documents[(family, size)].font:34} {size:>2} pt {resolution:>10} "
                    + " ".join(f"{cell:>10}" for cell in cells)
                )
    print()
    print("All families together (character-weighted):")
    for resolution in RESOLUTIONS:
        for size in SIZES_PT:
            row = []
            for renderer in ("faxgate", "gs"):
                weights = [
                    (scores[key], len("".join(documents[(family, size)].lines)))
                    for family in families
                    if (key := (family, size, resolution, renderer)) in scores
                ]
                total = sum(weight for _, weight in weights)
                row.append(sum(s * w for s, w in weights) / total if total else None)
            faxgate, ghostscript = _percent(row[0]), _percent(row[1])
            print(f"  {size:>2} pt {resolution:>8}: faxgate {faxgate}   gs {ghostscript}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _difference(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{100 * (a - b):+.2f}"


if __name__ == "__main__":
    main()

"""Measure conversion speed: pages per second through faxgate and through Ghostscript.

Builds a 36-page A4 PDF (32 pages of text from 6 to 10 pt, 2 pages of table
rules, 2 pages with a greyscale photo) and converts it to a G4 fax TIFF at
fine and standard resolution. It goes through faxgate's DocumentRenderer,
whose worker pool is started beforehand as in the running service. When `gs`
is installed, it also goes through Ghostscript's tiffg4 device at the same
geometry (A4 at 100 %, 1728 pixels wide), as Kazoo and HylaFAX run it. Each conversion
runs --repeat times, interleaved. The table shows median wall and CPU times;
CPU time is the fairer comparison on a machine that other work shares.

Usage: python bench/render.py [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pdftext import A4, add_rules_page, make_text_pdf

from faxgate.documents import DocumentInput, DocumentRenderer, RenderLimits

RESOLUTIONS = {"fine": 196, "standard": 98}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="faxgate worker processes"
    )
    arguments = parser.parse_args()
    asyncio.run(run(arguments.repeat, arguments.workers))


async def run(repeat: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        pdf = build_document(work)
        pages = len(pdfium.PdfDocument(pdf))
        print(f"{pages}-page PDF, {pdf.stat().st_size // 1024} KiB; {os.cpu_count()} CPUs")

        renderers = {
            count: DocumentRenderer(RenderLimits(), workers=count) for count in {1, workers}
        }
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        try:
            for renderer in renderers.values():
                await renderer.warm_up()
            # Interleave the converters so that load from other processes on
            # the machine affects them alike.
            for run_index in range(repeat):
                for resolution, ydpi in RESOLUTIONS.items():
                    for count, renderer in renderers.items():
                        name = f"faxgate, {count} worker{'s' if count > 1 else ''}"
                        out = work / f"faxgate-{resolution}-{count}-{run_index}"
                        out.mkdir()
                        sample = await _time_faxgate(renderer, pdf, out, resolution)
                        samples.setdefault((name, resolution), []).append(sample)
                    if shutil.which("gs"):
                        out_file = work / f"gs-{ydpi}-{run_index}.tif"
                        sample = _time_ghostscript(pdf, out_file, ydpi)
                        samples.setdefault(("gs tiffg4", resolution), []).append(sample)
        finally:
            for renderer in renderers.values():
                await renderer.close()
    if not shutil.which("gs"):
        print("gs is not installed: no Ghostscript figures")
    _report(samples, pages)


def _report(samples: dict[tuple[str, str], list[tuple[float, float]]], pages: int) -> None:
    medians = {
        key: (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
        for key, runs in samples.items()
    }
    print(
        f"{'converter':22} {'resolution':>10} {'wall s':>7} {'pages/s':>8} {'vs gs':>6} "
        f"{'CPU ms/page':>12} {'CPU vs gs':>10}"
    )
    for (name, resolution), (wall, cpu) in sorted(medians.items(), key=lambda item: item[0][1]):
        reference = medians.get(("gs tiffg4", resolution))
        ratio = f"{reference[0] / wall:.2f}x" if reference else "-"
        cpu_ratio = f"{reference[1] / cpu:.2f}x" if reference else "-"
        print(
            f"{name:22} {resolution:>10} {wall:7.2f} {pages / wall:8.1f} {ratio:>6} "
            f"{1000 * cpu / pages:12.1f} {cpu_ratio:>10}"
        )
    print("vs gs: Ghostscript's time divided by this converter's (above 1 is faster than gs).")


def build_document(work: Path) -> Path:
    """Write the benchmark PDF and return its path."""
    merged = pdfium.PdfDocument.new()
    for index in range(32):
        family = ("sans", "serif", "helvetica", "times")[index % 4]
        size = (10, 9, 8, 7, 6)[index % 5]
        part = make_text_pdf(work / f"part-{index}.pdf", family, size, seed=index)
        source = pdfium.PdfDocument(part.path)
        merged.import_pages(source)
        source.close()
    add_rules_page(merged, [0.1, 0.25, 0.5, 1.0])
    add_rules_page(merged, [0.0, 0.3, 0.75])
    for seed in (1, 2):
        _add_photo_page(merged, work / f"photo-{seed}.jpg", seed)
    path = work / "benchmark.pdf"
    merged.save(str(path))
    merged.close()
    return path


def _add_photo_page(document: pdfium.PdfDocument, jpeg: Path, seed: int) -> None:
    photo = Image.effect_noise((1200, 900), 50 + 10 * seed).filter(ImageFilter.GaussianBlur(5))
    photo = Image.blend(photo, Image.linear_gradient("L").resize((1200, 900)), 0.5)
    photo.convert("RGB").save(jpeg, "JPEG", quality=85)
    page = document.new_page(*A4)
    image = pdfium.PdfImage.new(document)
    image.load_jpeg(str(jpeg))
    image.set_matrix(pdfium.PdfMatrix().scale(480, 360).translate(57, 400))
    page.insert_obj(image)
    page.gen_content()
    page.close()


async def _time_faxgate(
    renderer: DocumentRenderer, pdf: Path, out: Path, resolution: str
) -> tuple[float, float]:
    """Return the wall time and the CPU time (this process and its workers) of one render."""
    cpu_before = _own_cpu_seconds()
    started = time.perf_counter()
    await renderer.render([DocumentInput(path=pdf)], out, resolution)
    return time.perf_counter() - started, _own_cpu_seconds() - cpu_before


def _time_ghostscript(pdf: Path, out: Path, ydpi: int) -> tuple[float, float]:
    """Return the wall time and CPU time of one Ghostscript conversion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4",
         f"-r204x{ydpi}", f"-sOutputFile={out}", str(pdf)],
        check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def _own_cpu_seconds() -> float:
    """Return the CPU seconds used by this process and its running descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in _descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime and stime
    return total


def _descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in map(int, children):
        found.append(child)
        found.extend(_descendants(child))
    return found


if __name__ == "__main__":
    main()

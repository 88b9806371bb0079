"""Measure how fast the fax engine simulates line time through the loopback trunk.

Sends a 2-page A4 letter at fine resolution (V.17 14,400 bit/s, ECM, T.6)
through `LoopbackTrunk`, first as one call, then as one call per CPU core at
the same time. In each round every caller sends --sequential faxes one
after the other, so that a round lasts long enough to time.

Prints simulated line seconds per wall second for both runs and their
ratio. It also prints line seconds per CPU second of this process, because
on a machine that other programs keep busy the wall figures include the
wait for a core. Each figure is the median of --repeat rounds. The wall
time covers everything `LoopbackTrunk.send` does: checking the TIFF,
setting up both ends, the audio exchange and writing the received TIFF.

Usage: python bench/modem.py [--repeat N] [--sequential N] [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faxgate.trunks.base import FaxIdentity
from faxgate.trunks.loopback import LoopbackTrunk

IDENTITY = FaxIdentity(station_id="+1 202 555 0100", header_text="faxgate benchmark")
DESTINATION = "+442079460000"


def write_letter(path: Path, pages: int = 2) -> Path:
    """Write a class F TIFF of `pages` A4 pages of typed text at 204x196 dpi."""
    font = ImageFont.load_default(size=28)
    images = []
    for number in range(1, pages + 1):
        page = Image.new("1", (1728, 2287), 1)
        draw = ImageDraw.Draw(page)
        for line in range(60):
            text = f"{number}.{line:02d} The quick brown fox jumps over the lazy dog 0123456789"
            draw.text((120, 150 + line * 34), text, font=font, fill=0)
        images.append(page)
    images[0].save(path, save_all=True, append_images=images[1:], compression="group4",
                   dpi=(204, 196))
    return path


async def send_several(trunk: LoopbackTrunk, document: Path, count: int) -> float:
    """Send `count` faxes one after the other; return their total line seconds."""
    line_seconds = 0.0
    for _ in range(count):
        result = await trunk.send(document, IDENTITY, DESTINATION)
        if not result.success:
            raise SystemExit(f"benchmark call failed: {result.error_message}")
        line_seconds += result.call_duration
    return line_seconds


async def run_round(trunk: LoopbackTrunk, document: Path, calls: int,
                    sequential: int) -> tuple[float, float, float]:
    """Run `calls` callers at once; return total line seconds, wall seconds and CPU seconds."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    totals = await asyncio.gather(*(send_several(trunk, document, sequential)
                                    for _ in range(calls)))
    return (sum(totals), time.perf_counter() - wall_start,
            time.process_time() - cpu_start)


async def measure(document: Path, data_dir: Path, calls: int, repeat: int,
                  sequential: int) -> tuple[float, float]:
    """Return the median line seconds per wall second and per CPU second of `calls` callers.

    The CPU time is this process's, summed over its threads.
    """
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=calls)
    trunk = LoopbackTrunk(data_dir, [], channels=calls, executor=executor)
    try:
        await run_round(trunk, document, calls, 1)  # warm-up: imports, page cache
        wall_rates, cpu_rates = [], []
        for _ in range(repeat):
            line_seconds, wall, cpu = await run_round(trunk, document, calls, sequential)
            wall_rates.append(line_seconds / wall)
            cpu_rates.append(line_seconds / cpu)
        return statistics.median(wall_rates), statistics.median(cpu_rates)
    finally:
        await trunk.close()
        executor.shutdown(wait=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds per measurement; the median is reported (default 5)")
    parser.add_argument("--sequential", type=int, default=8,
                        help="faxes each caller sends one after the other per round (default 8)")
    parser.add_argument("--calls", type=int, default=os.cpu_count() or 1,
                        help="simultaneous calls in the parallel run (default: CPU cores)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="faxgate-bench-") as folder:
        document = write_letter(Path(folder) / "letter.tif")
        probe = LoopbackTrunk(Path(folder), [], channels=1)
        sample = await probe.send(document, IDENTITY, DESTINATION)
        await probe.close()
        single = await measure(document, Path(folder), 1, args.repeat, args.sequential)
        parallel = await measure(document, Path(folder), args.calls, args.repeat,
                                 args.sequential)

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}, load average {load}")
    print(f"call: 2 A4 pages fine, {sample.fax_speed} bit/s, ECM {sample.fax_error_correction}, "
          f"{sample.encoding}, {sample.call_duration:.1f} s of line time")
    for label, (wall_rate, cpu_rate) in (("one call", single),
                                         (f"{args.calls} parallel calls", parallel)):
        print(f"{label + ':':18} {wall_rate:8.1f} line seconds per wall second, "
              f"{cpu_rate:.1f} per CPU second, {wall_rate / cpu_rate:.2f} cores busy")
    print(f"ratio parallel/one: {parallel[0] / single[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())

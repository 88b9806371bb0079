"""Page placement on fax pages: rotation, scale and splitting of long pages."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from .model import FAX_WIDTH_PX, FAX_XDPI, MM_PER_INCH


@dataclass(frozen=True)
class PagePlan:
    """Placement of one source page on one or more fax pages.

    `rotate` turns a landscape page 90 degrees counter-clockwise, so that its top
    edge runs along the left edge of the fax page. The content is `width_px` by
    `height_px` fax pixels, centred across the 1728-pixel line. `pieces` are the
    row ranges [start, stop) of the content that become separate fax pages.
    """

    rotate: bool
    width_px: int
    height_px: int
    pieces: tuple[tuple[int, int], ...]


def plan_page(width_in: float, height_in: float, ydpi: int, max_length_mm: float) -> PagePlan:
    """Plan a page of the given displayed size in inches for a fax at `ydpi` rows per inch.

    A landscape page is turned to portrait only when it is wider than the fax
    line (1728 pixels at 204 dpi, about 8.47 in), so that it is not shrunk. A
    small landscape page, such as a label or a signature strip, fits as it is
    and keeps its orientation. The page is scaled to fit the fax width, keeping
    its aspect ratio, but never enlarged: a page narrower than 215 mm keeps its
    size and gets white margins. A page longer than `max_length_mm` after
    scaling is split into pieces of at most that length.
    """
    rotate = width_in > height_in and width_in * FAX_XDPI > FAX_WIDTH_PX
    if rotate:
        width_in, height_in = height_in, width_in

    natural_width_px = width_in * FAX_XDPI
    scale = min(1.0, FAX_WIDTH_PX / natural_width_px) if natural_width_px > 0 else 1.0
    width_px = max(1, min(FAX_WIDTH_PX, round(natural_width_px * scale)))
    height_px = max(1, round(height_in * ydpi * scale))

    max_rows = max(1, math.floor(max_length_mm / MM_PER_INCH * ydpi))
    pieces = tuple(
        (start, min(start + max_rows, height_px)) for start in range(0, height_px, max_rows)
    )
    return PagePlan(rotate=rotate, width_px=width_px, height_px=height_px, pieces=pieces)


def min_page_rows(min_length_mm: float, ydpi: int) -> int:
    """Return the minimum number of rows of a fax page at `ydpi` rows per inch."""
    return max(0, round(min_length_mm / MM_PER_INCH * ydpi))


def pad_to_rows(ink: Image.Image, min_rows: int) -> Image.Image:
    """Add white rows at the bottom of a bilevel ink image shorter than `min_rows`.

    Ink images have 1 for black, so the new rows are 0.
    """
    if ink.height >= min_rows:
        return ink
    padded = Image.new("1", (ink.width, min_rows), 0)
    padded.paste(ink, (0, 0))
    return padded


def left_margin(width_px: int) -> int:
    """Return the number of white pixels left of content `width_px` wide, to centre it."""
    return (FAX_WIDTH_PX - width_px) // 2

"""Class F TIFFs for the fax engine tests, drawn with Pillow.

Each page carries its number in large digits, lines of text and a grid of
boxes placed by a seeded random generator, so pages differ from each other
and a lost or shifted row shows up in a row-by-row comparison.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FAX_WIDTH = 1728
A4_ROWS = {"standard": 1143, "fine": 2287}
Y_DPI = {"standard": 98, "fine": 196}


def draw_page(number: int, resolution: str) -> Image.Image:
    """Draw page `number` as a bilevel A4 image at the given fax resolution."""
    height = A4_ROWS[resolution]
    scale = 2 if resolution == "fine" else 1
    page = Image.new("1", (FAX_WIDTH, height), 1)
    draw = ImageDraw.Draw(page)
    rng = random.Random(number * 7919 + height)
    title = ImageFont.load_default(size=60 * scale)
    body = ImageFont.load_default(size=14 * scale)

    draw.text((100, 40 * scale), f"Page {number}", font=title, fill=0)
    for line in range(12):
        words = " ".join(rng.choice(("fax", "tone", "page", "row", "modem", "line", "T.30"))
                         for _ in range(14))
        draw.text((100, (140 + line * 22) * scale), words, font=body, fill=0)
    for _ in range(40):
        x, y = rng.randrange(80, FAX_WIDTH - 200), rng.randrange(450 * scale, height - 100)
        draw.rectangle((x, y, x + rng.randrange(20, 160), y + rng.randrange(4, 60)),
                       outline=0, fill=rng.choice((0, 1)))
    return page


def make_fax_tiff(path: Path, pages: int, resolution: str = "fine",
                  compression: str = "group4") -> Path:
    """Write a `pages`-page class F TIFF to `path` and return the path."""
    images = [draw_page(number, resolution) for number in range(1, pages + 1)]
    images[0].save(path, save_all=True, append_images=images[1:], compression=compression,
                   dpi=(204, Y_DPI[resolution]))
    return path

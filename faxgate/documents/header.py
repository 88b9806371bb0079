"""The header line that fax machines print across the top of each page they send.

The template is a str.format string with these fields:
  {date}         date of sending in the faxbox's timezone, as 2024-05-31
  {time}         time of sending in the faxbox's timezone, as 14:05
  {timezone}     abbreviation of that timezone, as CEST
  {sender_name}  the faxbox's sender name
  {station_id}   the sender identity (TSI) sent to the far end
  {destination}  the number dialled
  {page}         the page number, from 1
  {pages}        the number of pages
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PIL import Image, ImageChops, ImageDraw, ImageFont

from faxgate.errors import ConfigError

from .faxtiff import decode_page, encode_g4
from .model import FaxPage, HeaderInfo

DEFAULT_HEADER_TEMPLATE = (
    "{date} {time}  {sender_name}  {station_id}  -> {destination}  page {page}/{pages}"
)
HEADER_FIELDS = frozenset(
    {"date", "time", "timezone", "sender_name", "station_id", "destination", "page", "pages"}
)
HEADER_HEIGHT_MM = 3.6  # the band the line occupies at the top of the page
HEADER_FONT_PX = 19  # font size in pixels at 204 x 196 dpi: 6.7 pt
HEADER_LEFT_PX = 24  # 3 mm from the left edge
STANDARD_HEADER_THRESHOLD = 200  # see _header_band
# Bold sans-serif fonts tried in order; Pillow's built-in font is the fallback.
HEADER_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
)


def validate_header_template(template: str) -> None:
    """Raise ConfigError unless `template` formats with the documented fields only."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"invalid header template {template!r}: {exc}") from exc
    unknown = sorted({field for field in fields if field not in HEADER_FIELDS})
    if unknown or "" in fields:
        raise ConfigError(
            f"invalid header template {template!r}: unknown fields {unknown or ['{}']}; "
            f"use {', '.join(sorted(HEADER_FIELDS))}"
        )


def format_header(header: HeaderInfo, template: str, page: int, pages: int) -> str:
    """Return the header line for one page, with date and time in the header's timezone."""
    try:
        zone = ZoneInfo(header.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown timezone {header.timezone!r} for the fax header") from exc
    local = header.when.astimezone(zone)
    return template.format(
        date=local.strftime("%Y-%m-%d"),
        time=local.strftime("%H:%M"),
        timezone=local.tzname() or header.timezone,
        sender_name=header.sender_name,
        station_id=header.station_id,
        destination=header.destination,
        page=page,
        pages=pages,
    )


def stamp_page(
    page: FaxPage, header: HeaderInfo, template: str, number: int, total: int
) -> FaxPage:
    """Return the page with its header line at the top.

    The line is drawn into the top band when that band is blank, as on paper
    with a top margin. Otherwise the band is added above the page, so that no
    content is covered; the page then grows by 3.6 mm.
    """
    text = format_header(header, template, number, total)
    band = _header_band(text, page.width, page.ydpi)
    image = decode_page(page).convert("L")  # 0 is black

    if _is_blank(image.crop((0, 0, image.width, min(image.height, band.height + 2)))):
        image.paste(band, (0, 0))
        stamped = image
    else:
        stamped = Image.new("L", (image.width, image.height + band.height), 255)
        stamped.paste(band, (0, 0))
        stamped.paste(image, (0, band.height))
    ink = ImageChops.invert(stamped).convert("1", dither=Image.Dither.NONE)
    return encode_g4(ink, page.xdpi, page.ydpi)


def _header_band(text: str, width: int, ydpi: int) -> Image.Image:
    """Return the header band as an L image (0 is black) for a page at `ydpi`."""
    # Drawn at 196 rows per inch, where pixels are nearly square. For 98 lpi
    # pairs of rows are averaged and a generous threshold keeps the thin
    # horizontal strokes (the foot of a 2) that a 50 % threshold would drop.
    rows = round(HEADER_HEIGHT_MM / 25.4 * 196)
    canvas = Image.new("L", (width, rows), 255)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    text = _fit(draw, text, font, width - 2 * HEADER_LEFT_PX)
    draw.text((HEADER_LEFT_PX, rows // 2), text, fill=0, font=font, anchor="lm")
    threshold = 128
    if ydpi != 196:
        canvas = canvas.resize((width, round(rows * ydpi / 196)), Image.Resampling.BOX)
        threshold = STANDARD_HEADER_THRESHOLD
    return canvas.point([0 if value < threshold else 255 for value in range(256)])


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _is_blank(region: Image.Image) -> bool:
    darkest, _ = region.getextrema()
    return bool(darkest == 255)


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    for candidate in HEADER_FONTS:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, HEADER_FONT_PX)
    font = ImageFont.load_default(HEADER_FONT_PX)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType, which the fax header needs")
    return font

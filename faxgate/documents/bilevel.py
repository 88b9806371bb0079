"""Turn greyscale pages at fax resolution into black and white.

Text and line art are thresholded so that strokes stay crisp. Glyph stems,
which an aliased render draws up to one pixel too narrow, are widened with
the help of an anti-aliased render of the same page (`widen_stems`). Thin
lines whose coverage falls below the threshold (a 0.25 pt rule covers a
third of a row at 98 lpi) are kept by a ridge test: a pixel clearly darker
than both neighbours across the line turns black. Photographic regions, found as blocks full of
smooth mid-grey pixels, are halftoned with a clustered-dot screen instead,
because clustered dots survive fax printers and compress far better in G4
than error diffusion. Scans and photos of paper first have their background
levelled, so that uneven lighting does not turn into black smears.

All steps are whole-image Pillow operations; nothing loops over pixels in Python.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Literal

from PIL import Image, ImageChops, ImageFilter

TEXT_THRESHOLD = 128  # grey values below this are black
RIDGE_MAX_GREY = 208  # a ridge pixel must reach at least 18 % coverage
RIDGE_MIN_CONTRAST = 32  # and be this much darker than both neighbours across the line
MID_GREY = (32, 224)  # range of grey values that may belong to a photograph
SMOOTH_GRADIENT = 24  # photographs change slowly from pixel to pixel
PHOTO_BLOCK = 16  # photo regions are decided per block of 16 x 16 pixels
PHOTO_BLOCK_SHARE = 0.3  # share of smooth mid-grey pixels that marks a photo block
PHOTO_MIN_SHARE = 0.01  # pages with fewer mid-grey pixels skip the photo search
PAPER_MIN_BRIGHTNESS = 150  # paper is at least this bright, however it is lit,
PAPER_MIN_BRIGHT_SHARE = 0.85  # over this share of the image
PAPER_INK_BELOW = 96  # levelled grey values below this count as ink
PAPER_MIN_INK_SHARE = 0.005
HALFTONE_CELL_WIDTH = 6  # 34 dots per inch across at 204 dpi
# A white pixel beside a stem turns black when the two renders differ there by
# at least this much: 48 of 255 (19 % glyph coverage on white paper) at
# standard resolution, 26 (10 %) at fine. Both values were chosen by OCR
# read-back of 6 to 10 pt text with bench/legibility.py.
STEM_MIN_DARKENING_STANDARD = 48
STEM_MIN_DARKENING_FINE = 26

Content = Literal["text", "drawing", "scan"]


def to_ink(
    grey: Image.Image, ydpi: int, content: Content, smooth_text: Image.Image | None = None
) -> Image.Image:
    """Convert a greyscale page at fax resolution to a mode "1" image in fax polarity.

    In the result 255 (a set bit) is black, the bit sense of fax data.
    `content` describes what the page may contain. "text" pages have only
    solid glyphs and are just thresholded. "drawing" pages may also have thin
    lines, grey fills and pictures. "scan" pages are photos or scans of paper,
    whose paper may be grey and unevenly lit. `smooth_text`, when given, is
    the page rendered with anti-aliased text, and `grey` the same page with
    aliased text; glyph stems are then widened (see `widen_stems`).
    """
    if content == "text":
        ink = _threshold(grey)
        if smooth_text is not None:
            ink = widen_stems(ink, grey, smooth_text, ydpi)
        return ink

    photo_source = grey
    if content == "scan":
        grey = level_background(grey)
    histogram = grey.histogram()
    ink = _threshold_with_ridges(grey, histogram)
    if smooth_text is not None and content == "drawing":
        ink = widen_stems(ink, grey, smooth_text, ydpi)
    mask = find_photo_regions(grey, histogram)
    if mask is not None:
        dots = halftone(_stretch_contrast(photo_source, mask), ydpi)
        ink = Image.composite(dots, ink.convert("L"), mask).convert("1", dither=Image.Dither.NONE)
    return ink


def widen_stems(
    ink: Image.Image, aliased: Image.Image, smooth: Image.Image, ydpi: int
) -> Image.Image:
    """Return `ink` with the pixels beside its glyph stems added where the glyph covers them.

    `ink` is a mode "1" page in fax polarity (255 is black) thresholded from
    `aliased`, the greyscale render with aliased text. `smooth` is the same
    page rendered with anti-aliased text, so the two differ only where a
    glyph covers part of a pixel. An aliased stem 1.3 or 1.6 pixels wide
    comes out one pixel wide. At 6 pt and 204 dpi that makes "e" read as "é"
    and "m" as "rn". Inking the partly covered pixel beside it gives the
    stem its width back. Only pixels next to black pixels on the same row
    are added, so counters and the gaps between letters stay open, and
    lines, fills and images, which both renders draw alike, stay as they are.
    """
    fine = ydpi >= 150
    min_darkening = STEM_MIN_DARKENING_FINE if fine else STEM_MIN_DARKENING_STANDARD
    differing = ImageChops.difference(aliased, smooth)
    box = differing.getbbox()
    if box is None:
        return ink
    # Both renders differ only around glyphs, so the work is limited to that
    # box, one pixel wider for the neighbours.
    left, top, right, bottom = box
    box = (max(0, left - 1), top, min(ink.width, right + 1), bottom)
    differing = differing.crop(box)
    black = ink.crop(box).convert("L")

    # The masks below are L images of 0 and 255, combined with Pillow's
    # modulo arithmetic, inversion and L to "1" conversion (which sets values
    # of 128 and above). Those run several times faster than point(),
    # lighter() and darker(), and this step runs on every page with small text.
    # A difference of at least min_darkening is one in [min_darkening, 128)
    # shifted up to 128 or more, or one of 128 and above.
    shift = Image.new("L", differing.size, 128 - min_darkening)
    covered = _either(_mask(ImageChops.add_modulo(differing, shift)), _mask(differing))
    beside = _either(_shifted(black, 1), _shifted(black, -1))
    added = ImageChops.invert(_either(ImageChops.invert(covered), ImageChops.invert(beside)))
    widened = ImageChops.add_modulo(black, added).convert("1", dither=Image.Dither.NONE)
    result = ink.copy()
    result.paste(widened, box[:2])
    return result


def _mask(image: Image.Image) -> Image.Image:
    """Return an L mask with 255 where `image` is 128 or more and 0 elsewhere."""
    return image.convert("1", dither=Image.Dither.NONE).convert("L")


def _either(first: Image.Image, second: Image.Image) -> Image.Image:
    """Return the union of two L masks of 0 and 255 as such a mask.

    (255 + 255) mod 256 is 254, so the modulo sum is 128 or more where either is set.
    """
    return _mask(ImageChops.add_modulo(first, second))


def _shifted(image: Image.Image, dx: int) -> Image.Image:
    """Return `image` moved `dx` pixels to the right, with 0 (white in fax polarity) coming in."""
    moved = ImageChops.offset(image, dx, 0)
    edge = (0, 0, dx, image.height) if dx > 0 else (image.width + dx, 0, image.width, image.height)
    moved.paste(0, edge)
    return moved


def _threshold(grey: Image.Image) -> Image.Image:
    # Inverting maps grey < 128 to >= 128, which the plain L to "1" conversion
    # sets; both steps are much faster than a lookup table.
    return ImageChops.invert(grey).convert("1", dither=Image.Dither.NONE)


def level_background(grey: Image.Image) -> Image.Image:
    """Return `grey` divided by an estimate of its local paper brightness.

    The paper is taken to be the brightest value within about 18 mm, smoothed.
    Returns the image unchanged when its paper is white already, or when the
    image does not look like lit paper (a photograph).
    """
    small = grey.reduce(PHOTO_BLOCK)
    background_small = small.filter(ImageFilter.MaxFilter(9)).filter(ImageFilter.GaussianBlur(2))
    darkest_paper, _ = background_small.getextrema()
    if isinstance(darkest_paper, int) and darkest_paper >= 240:
        return grey
    background = background_small.resize(grey.size, Image.Resampling.BILINEAR)
    # grey * 64 / background through a lookup table and a multiply, then x4:
    # Pillow has no per-pixel division.
    inverse = background.point(_inverse_lut())
    scaled = ImageChops.multiply(grey, inverse)
    leveled = scaled.point(_times_four_lut())
    if not _looks_like_paper(background_small.histogram(), leveled.histogram()):
        return grey
    return leveled


def _looks_like_paper(background_histogram: list[int], leveled_histogram: list[int]) -> bool:
    """Return True when an image looks like lit paper with ink on it.

    Paper is bright nearly everywhere, even in the dark corner of a phone
    photo, and levelling leaves some clearly dark ink. A photograph has large
    dark areas, or has no ink left once its smooth areas are levelled. It then
    keeps its original tones, and the photo search halftones it.
    """
    bright = sum(background_histogram[PAPER_MIN_BRIGHTNESS:])
    if bright < PAPER_MIN_BRIGHT_SHARE * sum(background_histogram):
        return False
    ink = sum(leveled_histogram[:PAPER_INK_BELOW])
    return ink >= PAPER_MIN_INK_SHARE * sum(leveled_histogram)


def find_photo_regions(grey: Image.Image, histogram: list[int]) -> Image.Image | None:
    """Return a mask (L, 255 inside) of photographic regions, or None when there are none.

    `histogram` is grey.histogram(), passed in because computing it is not cheap.
    """
    low, high = MID_GREY
    mid_count = sum(histogram[low:high])
    if mid_count < PHOTO_MIN_SHARE * grey.width * grey.height:
        return None

    across = ImageChops.difference(grey, ImageChops.offset(grey, 1, 0))
    down = ImageChops.difference(grey, ImageChops.offset(grey, 0, 1))
    smooth = ImageChops.lighter(across, down).point(_below_lut(SMOOTH_GRADIENT))
    mid = grey.point(_range_lut(low, high))
    candidates = ImageChops.darker(smooth, mid)

    blocks = candidates.reduce(PHOTO_BLOCK).point(_at_least_lut(round(PHOTO_BLOCK_SHARE * 255)))
    # An opening drops isolated blocks (shaded table cells, a grey logo); the
    # wider dilation then covers the edges of each photo.
    blocks = blocks.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(5))
    if blocks.getbbox() is None:
        return None
    full = blocks.resize(
        (blocks.width * PHOTO_BLOCK, blocks.height * PHOTO_BLOCK), Image.Resampling.NEAREST
    )
    return full.crop((0, 0, grey.width, grey.height))


def halftone(grey: Image.Image, ydpi: int) -> Image.Image:
    """Return an L image (255 = black) of `grey` screened with clustered dots."""
    screen = _screen(grey.width, grey.height, ydpi)
    # A pixel is black where the screen threshold exceeds its grey value.
    return ImageChops.subtract(screen, grey).point(_at_least_lut(1))


def _threshold_with_ridges(grey: Image.Image, histogram: list[int]) -> Image.Image:
    ink = _threshold(grey)
    if sum(histogram[TEXT_THRESHOLD : RIDGE_MAX_GREY + 1]) == 0:
        return ink  # no partly covered pixels, so no thin line can be lost

    candidates = grey.point(_range_lut(TEXT_THRESHOLD, RIDGE_MAX_GREY + 1))
    box = candidates.getbbox()
    if box is None:
        return ink
    left, top, right, bottom = box
    box = (
        max(0, left - 1),
        max(0, top - 1),
        min(grey.width, right + 1),
        min(grey.height, bottom + 1),
    )
    region = grey.crop(box)
    ridges = ImageChops.lighter(_ridges(region, 0, 1), _ridges(region, 1, 0))
    ridges = ImageChops.darker(ridges, candidates.crop(box)).convert("1", dither=Image.Dither.NONE)
    ink.paste(ImageChops.logical_or(ink.crop(box), ridges), box[:2])
    return ink


def _ridges(grey: Image.Image, dx: int, dy: int) -> Image.Image:
    before = ImageChops.offset(grey, dx, dy)
    after = ImageChops.offset(grey, -dx, -dy)
    darker_neighbour = ImageChops.darker(before, after)
    contrast = ImageChops.subtract(darker_neighbour, grey)
    return contrast.point(_at_least_lut(RIDGE_MIN_CONTRAST))


def _stretch_contrast(grey: Image.Image, mask: Image.Image) -> Image.Image:
    histogram = grey.histogram(mask=mask)
    total = sum(histogram)
    cutoff = total // 100
    low, seen = 0, 0
    for value, count in enumerate(histogram):
        seen += count
        if seen > cutoff:
            low = value
            break
    high, seen = 255, 0
    for value in range(255, -1, -1):
        seen += histogram[value]
        if seen > cutoff:
            high = value
            break
    if high - low < 16:
        return grey
    span = high - low
    return grey.point([min(255, max(0, (value - low) * 255 // span)) for value in range(256)])


@lru_cache(maxsize=8)
def _screen(width: int, height: int, ydpi: int) -> Image.Image:
    cell_width = HALFTONE_CELL_WIDTH
    # Keep the cell square on paper: fine rows are about as tall as pixels are
    # wide, standard rows twice as tall.
    cell_height = max(1, round(cell_width * ydpi / 204))
    thresholds = _cell_thresholds(cell_width, cell_height, 204 / ydpi)
    rows = []
    for y in range(cell_height):
        row = bytes(thresholds[y * cell_width : (y + 1) * cell_width])
        rows.append((row * (width // cell_width + 1))[:width])
    data = b"".join(rows[y % cell_height] for y in range(height))
    return Image.frombytes("L", (width, height), data)


def _cell_thresholds(width: int, height: int, row_aspect: float) -> list[int]:
    """Return threshold values of a clustered-dot cell, highest at the centre.

    `row_aspect` is the height of a row in units of the pixel width.
    """
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    positions = sorted(
        range(width * height),
        key=lambda index: (
            ((index % width) - centre_x) ** 2 + (((index // width) - centre_y) * row_aspect) ** 2,
            index,
        ),
    )
    count = len(positions)
    thresholds = [0] * count
    for rank, index in enumerate(positions):
        thresholds[index] = 255 - (rank * 255) // count
    return thresholds


@cache
def _below_lut(limit: int) -> tuple[int, ...]:
    return tuple(255 if value < limit else 0 for value in range(256))


@cache
def _at_least_lut(limit: int) -> tuple[int, ...]:
    return tuple(255 if value >= limit else 0 for value in range(256))


@cache
def _range_lut(low: int, high: int) -> tuple[int, ...]:
    return tuple(255 if low <= value < high else 0 for value in range(256))


@lru_cache(maxsize=1)
def _inverse_lut() -> tuple[int, ...]:
    return tuple(min(255, round(64 * 255 / max(value, 64))) for value in range(256))


@lru_cache(maxsize=1)
def _times_four_lut() -> tuple[int, ...]:
    return tuple(min(255, value * 4) for value in range(256))

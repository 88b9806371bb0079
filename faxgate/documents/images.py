"""Raster images and TIFF files to fax pages, through Pillow.

Image sizes are checked from the file headers before any pixel is decoded,
so that a decompression bomb (a huge image in a tiny file) is rejected
before it can allocate memory.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from faxgate.errors import DocumentError

from .bilevel import Content, to_ink
from .faxtiff import encode_g4
from .geometry import PagePlan, left_margin, min_page_rows, pad_to_rows, plan_page
from .model import FAX_WIDTH_PX, FAX_XDPI, FaxPage, RenderLimits

# Resolution assumed for images that do not state a plausible one: the usual
# screen resolution, so that a screenshot prints at about the size it had on screen.
DEFAULT_DPI = 96.0
FAX_WIDTHS = (1728, 2048, 2432)  # scan line lengths of fax TIFFs without resolution tags
_PLAUSIBLE_DPI = (50.0, 4800.0)
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image on its side


@dataclass(frozen=True)
class FrameInfo:
    """Size and resolution of one image frame as stored, before EXIF orientation."""

    width: int
    height: int
    xdpi: float
    ydpi: float
    orientation: int


def check_image_header(data: bytes, limits: RenderLimits) -> None:
    """Raise DocumentError unless `data` opens as an image within the pixel limit."""
    with open_image(io.BytesIO(data), limits) as image:
        for _ in frame_infos(image, limits):
            pass


@contextmanager
def open_image(source: Path | IO[bytes], limits: RenderLimits) -> Iterator[Image.Image]:
    """Open an image lazily, translating Pillow's errors into DocumentError."""
    try:
        with warnings.catch_warnings():
            # faxgate applies its own pixel limit below; Pillow's own warning
            # threshold (89 million pixels) would fire below it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError as exc:
        # Pillow's own limit (twice Image.MAX_IMAGE_PIXELS) fired while reading the header.
        raise DocumentError(
            f"the image has more pixels than the limit of {limits.max_image_pixels}",
            code="too_large",
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DocumentError("the image file is damaged or not an image", code="corrupt") from exc
    try:
        yield image
    finally:
        image.close()


def frame_infos(image: Image.Image, limits: RenderLimits) -> list[FrameInfo]:
    """Read the header of every frame that becomes a page and check its pixel count.

    TIFF pages become fax pages; GIF and WebP animations contribute their first frame.
    """
    frames = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
    if frames > limits.max_pages:
        raise DocumentError(
            f"the TIFF file has {frames} pages, more than the limit of {limits.max_pages}",
            code="too_many_pages",
        )
    infos = []
    for index in range(frames):
        try:
            image.seek(index)
        except (OSError, EOFError, ValueError, SyntaxError) as exc:
            raise DocumentError(
                f"page {index + 1} of the TIFF file is damaged", code="corrupt"
            ) from exc
        width, height = image.size
        if width < 1 or height < 1:
            raise DocumentError("the image has no pixels", code="empty")
        if width * height > limits.max_image_pixels:
            raise _too_large(width, height, limits.max_image_pixels)
        xdpi, ydpi = _resolution(image)
        infos.append(FrameInfo(width, height, xdpi, ydpi, _orientation(image)))
    return infos


def plan_frames(infos: list[FrameInfo], ydpi: int, max_length_mm: float) -> list[PagePlan]:
    """Plan each frame from its physical size after EXIF orientation."""
    plans = []
    for info in infos:
        width_in, height_in = info.width / info.xdpi, info.height / info.ydpi
        if info.orientation in _SWAPPING_ORIENTATIONS:
            width_in, height_in = height_in, width_in
        plans.append(plan_page(width_in, height_in, ydpi, max_length_mm))
    return plans


def render_frames(
    path: Path,
    infos: list[FrameInfo],
    plans: list[PagePlan],
    indices: Sequence[int],
    ydpi: int,
    limits: RenderLimits,
) -> list[list[FaxPage]]:
    """Render the frames at `indices` of the image at `path`; returns the fax pages of each."""
    rendered: list[list[FaxPage]] = []
    min_rows = min_page_rows(limits.min_page_length_mm, ydpi)
    with open_image(path, limits) as image:
        for index in indices:
            image.seek(index)
            info, plan = infos[index], plans[index]
            try:
                ink = _frame_to_ink(image, info, plan, ydpi)
            except (OSError, SyntaxError, ValueError) as exc:
                raise DocumentError(
                    f"image page {index + 1} is damaged and cannot be decoded", code="corrupt"
                ) from exc
            pieces = [
                encode_g4(
                    pad_to_rows(ink.crop((0, start, FAX_WIDTH_PX, stop)), min_rows), FAX_XDPI, ydpi
                )
                for start, stop in plan.pieces
            ]
            rendered.append(pieces)
    return rendered


def _frame_to_ink(image: Image.Image, info: FrameInfo, plan: PagePlan, ydpi: int) -> Image.Image:
    if _is_fax_ready(image, info, plan, ydpi):
        return _place(image.convert("L"), plan).point(_INVERT_TO_INK, "1")

    if image.format == "JPEG":
        # Let libjpeg decode at a reduced scale: much faster for phone photos.
        image.draft("L", _stored_size(info, plan))
    grey = _to_grey(image)
    if info.orientation > 1:
        grey = grey.transpose(_ORIENTATION_TRANSPOSES[info.orientation])
    if plan.rotate:
        grey = grey.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    target = (plan.width_px, plan.height_px)
    if target != grey.size:
        grey = _resize(grey, target, bilevel=image.mode == "1")
    # Bilevel images (fax and scanner TIFFs) have white paper already. The
    # image is converted before it is placed, so the white margins do not
    # count in its paper and photo tests.
    content: Content = "drawing" if image.mode == "1" else "scan"
    return _place_ink(to_ink(grey, ydpi, content))


def _is_fax_ready(image: Image.Image, info: FrameInfo, plan: PagePlan, ydpi: int) -> bool:
    return (
        image.mode == "1"
        and not plan.rotate
        and info.orientation <= 1
        and plan.width_px == image.width
        and plan.height_px == image.height
        and round(info.ydpi) == ydpi
    )


def _place_ink(ink: Image.Image) -> Image.Image:
    if ink.width == FAX_WIDTH_PX:
        return ink
    canvas = Image.new("1", (FAX_WIDTH_PX, ink.height), 0)
    canvas.paste(ink, (left_margin(ink.width), 0))
    return canvas


def _place(grey: Image.Image, plan: PagePlan) -> Image.Image:
    if grey.width == FAX_WIDTH_PX:
        return grey
    canvas = Image.new("L", (FAX_WIDTH_PX, grey.height), 255)
    canvas.paste(grey, (left_margin(grey.width), 0))
    return canvas


def _to_grey(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scale_to_bytes(image)
    if mode == "CMYK":
        return image.convert("RGB").convert("L")
    return image.convert("L")


def _scale_to_bytes(image: Image.Image) -> Image.Image:
    wide = image.convert("F") if image.mode == "F" else image.convert("I").convert("F")
    low, high = wide.getextrema()
    if not isinstance(low, float | int) or not isinstance(high, float | int) or high <= low:
        return wide.convert("L")
    scale = 255.0 / (high - low)
    return wide.point(lambda value: (value - low) * scale).convert("L")


def _resize(grey: Image.Image, target: tuple[int, int], *, bilevel: bool) -> Image.Image:
    width_ratio = target[0] / grey.width
    height_ratio = target[1] / grey.height
    if bilevel and _whole_enlargement(width_ratio) and _whole_enlargement(height_ratio):
        # A 98 lpi fax page going to 196 lpi repeats its rows exactly.
        return grey.resize(target, Image.Resampling.NEAREST)
    if width_ratio <= 1.1 and height_ratio <= 1.1:
        # Area averaging keeps thin strokes as grey that the ridge test recovers.
        return grey.resize(target, Image.Resampling.BOX, reducing_gap=3.0)
    return grey.resize(target, Image.Resampling.BICUBIC)


def _whole_enlargement(ratio: float) -> bool:
    return ratio >= 1 and abs(ratio - round(ratio)) < 1e-9


def _stored_size(info: FrameInfo, plan: PagePlan) -> tuple[int, int]:
    width, height = plan.width_px, plan.height_px
    if plan.rotate:
        width, height = height, width
    if info.orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return width, height


def _resolution(image: Image.Image) -> tuple[float, float]:
    dpi = image.info.get("dpi")
    if not dpi and "resolution" in image.info:
        dpi = image.info["resolution"]
    if dpi:
        try:
            xdpi, ydpi = float(dpi[0]), float(dpi[1])
        except (TypeError, ValueError, IndexError):
            xdpi = ydpi = 0.0
        low, high = _PLAUSIBLE_DPI
        if low <= xdpi <= high and low <= ydpi <= high:
            return xdpi, ydpi
    if image.format == "TIFF" and image.width in FAX_WIDTHS:
        return float(FAX_XDPI), 196.0
    return DEFAULT_DPI, DEFAULT_DPI


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _too_large(width: int, height: int, limit: int) -> DocumentError:
    return DocumentError(
        f"the image is {width} x {height} pixels, more than the limit of {limit} pixels",
        code="too_large",
    )


_INVERT_TO_INK = tuple(255 if value < 128 else 0 for value in range(256))
_ORIENTATION_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode_tiff_pages(source: IO[bytes], limits: RenderLimits) -> list[FaxPage]:
    """Convert every page of any TIFF to a G4 fax page at the page's own size and resolution.

    Bilevel pages keep their pixels exactly; Pillow applies the photometric
    interpretation and fill order, so black stays black. Grey or colour pages
    are converted like scans.
    """
    pages = []
    with open_image(source, limits) as image:
        for index, info in enumerate(frame_infos(image, limits)):
            image.seek(index)
            try:
                image.load()
                grey = _to_grey(image)
            except (OSError, SyntaxError, ValueError) as exc:
                raise DocumentError(
                    f"page {index + 1} of the TIFF file is damaged", code="corrupt"
                ) from exc
            if info.orientation > 1:
                grey = grey.transpose(_ORIENTATION_TRANSPOSES[info.orientation])
            xdpi, ydpi = round(info.xdpi), round(info.ydpi)
            if image.mode == "1":
                ink = grey.point(_INVERT_TO_INK, "1")
            else:
                ink = to_ink(grey, ydpi, "scan")
            if info.orientation in _SWAPPING_ORIENTATIONS:
                xdpi, ydpi = ydpi, xdpi
            pages.append(encode_g4(ink, xdpi, ydpi))
    return pages

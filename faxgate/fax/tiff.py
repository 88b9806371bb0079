"""Read and check class F fax TIFFs with Pillow.

A class F TIFF (TIFF/F) is what a fax machine sends: bilevel pages 1728
pixels wide at 204 dpi across and 98 dpi (standard) or 196 dpi (fine) down,
coded with T.4 (Pillow's "group3") or T.6 ("group4"). The engine sends only
such files, so `validate_fax_tiff` runs before a call starts.

Problems with a file raise `faxgate.errors.DocumentError`, whose `code` is
`not_found`, `corrupt` or `not_class_f`, because a bad TIFF is a document
problem that retrying the call cannot fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageSequence, UnidentifiedImageError

from faxgate.errors import DocumentError

FAX_WIDTH: Final = 1728
"""Pixels per row of an A4 fax page at 204 dpi (T.4 standard width)."""

FAX_X_DPI: Final = 204.0
STANDARD_Y_DPI: Final = 98.0
FINE_Y_DPI: Final = 196.0
_DPI_TOLERANCE: Final = 1.5  # TIFF writers round 7.7 lines/mm to 195.58 or 196 dpi
FAX_COMPRESSIONS: Final = frozenset({"group3", "group4"})

_TAG_X_RESOLUTION: Final = 282
_TAG_Y_RESOLUTION: Final = 283
_TAG_RESOLUTION_UNIT: Final = 296
_UNIT_CENTIMETRE: Final = 3


@dataclass(frozen=True)
class FaxPage:
    """One page as bits.

    Each row is `width` pixels packed 8 to a byte, most significant bit
    first, with a set bit for a white pixel (Pillow's mode "1" packing).
    """

    width: int
    x_dpi: float
    y_dpi: float
    compression: str
    rows: list[bytes]

    @property
    def height(self) -> int:
        """Number of rows."""
        return len(self.rows)


@dataclass(frozen=True)
class FaxTiffInfo:
    """A checked class F TIFF: its page count, resolution and coding (of the first page)."""

    pages: int
    resolution: str
    compression: str


def _dpi(frame: Image.Image) -> tuple[float, float]:
    tags = frame.tag_v2  # type: ignore[attr-defined]  # set on TIFF frames only
    try:
        x = float(tags[_TAG_X_RESOLUTION])
        y = float(tags[_TAG_Y_RESOLUTION])
    except KeyError:
        return (0.0, 0.0)
    if tags.get(_TAG_RESOLUTION_UNIT) == _UNIT_CENTIMETRE:
        return (x * 2.54, y * 2.54)
    return (x, y)


def _near(value: float, target: float) -> bool:
    return abs(value - target) <= _DPI_TOLERANCE


def resolution_name(y_dpi: float) -> str:
    """Return "standard" or "fine" for a class F vertical resolution, else "<n> dpi"."""
    if _near(y_dpi, STANDARD_Y_DPI):
        return "standard"
    if _near(y_dpi, FINE_Y_DPI):
        return "fine"
    return f"{y_dpi:.0f} dpi"


def _open_frames(path: Path) -> Iterator[Image.Image]:
    try:
        image = Image.open(path)
    except FileNotFoundError:
        raise DocumentError(f"fax TIFF {path} does not exist", code="not_found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DocumentError(f"cannot read {path} as an image: {exc}", code="corrupt") from exc
    with image:
        if image.format != "TIFF":
            raise DocumentError(f"{path} is a {image.format} image, not a TIFF",
                                code="not_class_f")
        try:
            yield from ImageSequence.Iterator(image)
        except (OSError, ValueError) as exc:
            raise DocumentError(f"cannot decode {path}: {exc}", code="corrupt") from exc


def _check_frame(path: Path, number: int, frame: Image.Image) -> tuple[float, float, str]:
    where = f"{path} page {number}"
    compression = str(frame.info.get("compression", "raw"))
    if frame.mode != "1":
        raise DocumentError(f"{where} has mode {frame.mode}; a fax page must be bilevel",
                            code="not_class_f")
    if frame.width != FAX_WIDTH:
        raise DocumentError(f"{where} is {frame.width} pixels wide; a fax page is "
                            f"{FAX_WIDTH}", code="not_class_f")
    if compression not in FAX_COMPRESSIONS:
        raise DocumentError(f"{where} uses {compression} compression; a fax page uses "
                            "group3 (T.4) or group4 (T.6)", code="not_class_f")
    x_dpi, y_dpi = _dpi(frame)
    if not _near(x_dpi, FAX_X_DPI) or not (_near(y_dpi, STANDARD_Y_DPI)
                                            or _near(y_dpi, FINE_Y_DPI)):
        raise DocumentError(f"{where} is {x_dpi:g}x{y_dpi:g} dpi; a fax page is "
                            "204x98 (standard) or 204x196 (fine)", code="not_class_f")
    return x_dpi, y_dpi, compression


def validate_fax_tiff(path: Path) -> FaxTiffInfo:
    """Check that every page of `path` is class F; return its page count and format.

    Raises DocumentError naming the file, the page and the value that is wrong.
    """
    pages = 0
    first: tuple[float, float, str] | None = None
    for number, frame in enumerate(_open_frames(path), start=1):
        checked = _check_frame(path, number, frame)
        first = first or checked
        pages += 1
    if first is None:
        raise DocumentError(f"{path} has no pages", code="not_class_f")
    return FaxTiffInfo(pages=pages, resolution=resolution_name(first[1]),
                       compression=first[2])


def read_fax_pages(path: Path) -> list[FaxPage]:
    """Decode every page of a bilevel TIFF into rows of bits.

    It does not require class F, so it can also read what a far end wrote.
    """
    pages = []
    for frame in _open_frames(path):
        bilevel = frame if frame.mode == "1" else frame.convert("1")
        row_bytes = (bilevel.width + 7) // 8
        data = bilevel.tobytes()
        rows = [data[i:i + row_bytes] for i in range(0, len(data), row_bytes)]
        x_dpi, y_dpi = _dpi(frame)
        pages.append(FaxPage(width=bilevel.width, x_dpi=x_dpi, y_dpi=y_dpi,
                             compression=str(frame.info.get("compression", "raw")),
                             rows=rows))
    return pages


def count_row_differences(sent: FaxPage, received: FaxPage) -> int:
    """Count the rows of `sent` that differ in `received`.

    A page header line that the sender added makes the received page
    taller, so the rows are matched from the bottom and the extra rows at
    the top of `received` are not compared. Raises ValueError if the widths
    differ or `received` is shorter.
    """
    if sent.width != received.width:
        raise ValueError(f"page widths differ: sent {sent.width}, received {received.width}")
    header_rows = received.height - sent.height
    if header_rows < 0:
        raise ValueError(f"the received page has {received.height} rows, fewer than the "
                         f"{sent.height} sent")
    body = received.rows[header_rows:]
    return sum(1 for a, b in zip(sent.rows, body, strict=True) if a != b)

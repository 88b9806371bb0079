"""Data types shared by the document pipeline, its workers and its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# A fax page is 1728 pixels wide at 204 dpi (215 mm, the scan width of ITU-T T.4
# for A4 and Letter). Rows are 98 per inch at standard resolution, 196 at fine.
FAX_WIDTH_PX = 1728
FAX_XDPI = 204
RESOLUTION_YDPI: dict[str, int] = {"standard": 98, "fine": 196}
MM_PER_INCH = 25.4
# Default minimum fax page length: 1 inch. A page a few rows long (a 4 pt tall
# PDF page is 1.3 mm) is hard to find on the receiver's paper or screen, and the
# 3.6 mm header line stamped at send time would be most of it. One inch leaves
# room for the header and a line or two of content. It is a judgment, not a
# value from a fax standard.
MIN_PAGE_LENGTH_MM = 25.4


@dataclass(frozen=True)
class RenderLimits:
    """Limits applied to each conversion so that a hostile file cannot stall the service.

    `timeout_s` is the wall time one input document may spend in the workers.
    `memory_mb` caps the address space of each worker process (RLIMIT_AS).
    `max_pages` caps the fax pages of one render call, counted before rendering.
    Source pages longer than `max_page_length_mm` (after scaling to the fax width)
    are split into several fax pages of at most that length, so nothing is cut off.
    Pages shorter than `min_page_length_mm` get white rows at the bottom up to
    that length, with the content kept at its size (0 turns this off).
    `max_image_pixels` rejects raster images (and TIFF pages) with more pixels,
    checked from the file header before any pixel is decoded.
    `office_timeout_s` limits one LibreOffice conversion.
    """

    timeout_s: float = 120
    memory_mb: int = 1024
    max_pages: int = 200
    max_page_length_mm: float = 1000
    min_page_length_mm: float = MIN_PAGE_LENGTH_MM
    max_image_pixels: int = 100_000_000
    office_timeout_s: float = 120


@dataclass
class DocumentInput:
    """One document to render: its bytes or a path to them, with the declared file name and type."""

    data: bytes | None = None
    path: Path | None = None
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """Detected type and fax page count of one input."""

    filename: str | None
    detected_type: str
    pages: int


@dataclass
class RenderedDocument:
    """The fax TIFF and readable PDF of one render call, with the geometry of each page."""

    tiff_path: Path
    pdf_path: Path
    pages: int
    page_sizes_mm: list[tuple[float, float]]
    resolution: str
    sources: list[SourceInfo] = field(default_factory=list)


@dataclass(frozen=True)
class HeaderInfo:
    """Values for the header line stamped on each page at send time.

    `station_id` is the TSI sent to the far end, `timezone` an IANA name such as
    "Europe/Berlin", and `when` an aware datetime.
    """

    station_id: str
    sender_name: str
    destination: str
    timezone: str
    when: datetime


@dataclass(frozen=True)
class FaxPage:
    """One page as a single strip of T.6 (G4) data in fax bit order.

    Bits are MSB first, 1 is black (TIFF PhotometricInterpretation WhiteIsZero).
    """

    width: int
    height: int
    xdpi: int
    ydpi: int
    g4: bytes

    @property
    def size_mm(self) -> tuple[float, float]:
        return (
            round(self.width / self.xdpi * MM_PER_INCH, 1),
            round(self.height / self.ydpi * MM_PER_INCH, 1),
        )

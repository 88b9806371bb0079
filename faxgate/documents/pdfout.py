"""Write fax pages into a PDF for people to read.

Each page embeds its G4 strip unchanged as a CCITTFaxDecode image and keeps
its physical size, so standard and fine pages, Legal and short pages all
print at their real size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from .model import FaxPage


def write_pdf(target: BinaryIO, pages: Sequence[FaxPage]) -> None:
    """Write `pages` as a PDF to the binary stream `target`."""
    writer = _PdfWriter(target)
    catalog_id, pages_id, info_id = 1, 2, 3
    first_page_id = 4  # each page takes three objects: page, content, image
    page_ids = [first_page_id + 3 * index for index in range(len(pages))]

    writer.header()
    writer.object(catalog_id, f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode())
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    writer.object(pages_id, f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    writer.object(info_id, b"<< /Producer (faxgate) >>")

    for page_id, page in zip(page_ids, pages, strict=True):
        width_pt = _number(page.width / page.xdpi * 72)
        height_pt = _number(page.height / page.ydpi * 72)
        content = f"q {width_pt} 0 0 {height_pt} 0 0 cm /Fax Do Q".encode()
        writer.object(
            page_id,
            (
                f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {width_pt} {height_pt}] "
                f"/Resources << /XObject << /Fax {page_id + 2} 0 R >> >> "
                f"/Contents {page_id + 1} 0 R >>"
            ).encode(),
        )
        writer.stream(page_id + 1, b"", content)
        # BlackIs1 false: decoded 0 bits are black, as DeviceGray expects.
        image_entries = (
            f"/Type /XObject /Subtype /Image /Width {page.width} /Height {page.height} "
            "/ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode "
            f"/DecodeParms << /K -1 /Columns {page.width} /Rows {page.height} /BlackIs1 false >>"
        ).encode()
        writer.stream(page_id + 2, image_entries, page.g4)

    writer.trailer(catalog_id, info_id, first_page_id + 3 * len(pages))


class _PdfWriter:
    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._base = target.tell()
        self._offsets: dict[int, int] = {}

    def header(self) -> None:
        self._target.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")

    def object(self, object_id: int, body: bytes) -> None:
        self._offsets[object_id] = self._target.tell() - self._base
        self._target.write(f"{object_id} 0 obj\n".encode() + body + b"\nendobj\n")

    def stream(self, object_id: int, entries: bytes, data: bytes) -> None:
        """Write a stream object whose dictionary contains `entries` and the /Length."""
        self._offsets[object_id] = self._target.tell() - self._base
        self._target.write(
            f"{object_id} 0 obj\n<< ".encode()
            + entries
            + f" /Length {len(data)} >>\nstream\n".encode()
            + data
            + b"\nendstream\nendobj\n"
        )

    def trailer(self, root_id: int, info_id: int, size: int) -> None:
        xref_offset = self._target.tell() - self._base
        lines = [f"xref\n0 {size}\n", "0000000000 65535 f \n"]
        for object_id in range(1, size):
            lines.append(f"{self._offsets[object_id]:010d} 00000 n \n")
        lines.append(
            f"trailer\n<< /Size {size} /Root {root_id} 0 R /Info {info_id} 0 R >>\n"
            f"startxref\n{xref_offset}\n%%EOF\n"
        )
        self._target.write("".join(lines).encode())


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")

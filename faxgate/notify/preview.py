"""A small PNG of a fax's first page, shown inline in notification mail.

The functions here block (PDF rendering, image decoding), so callers run
them in a thread.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from faxgate.logs import EventLogger

log = EventLogger("faxgate.notify")

PREVIEW_WIDTH = 300

# PDFium is not thread-safe, so every render in this process takes this lock.
# NOTE: code elsewhere in faxgate that calls pypdfium2 from threads must share it.
PDFIUM_LOCK = threading.Lock()


def pdf_first_page_png(path: Path, width: int = PREVIEW_WIDTH) -> bytes | None:
    """Return the first page of the PDF at `path` as a grey PNG `width` pixels wide.

    Returns None when the file cannot be read as a PDF or has no pages.
    """
    try:
        with PDFIUM_LOCK:
            document = pdfium.PdfDocument(str(path))
            try:
                if len(document) == 0:
                    return None
                page = document[0]
                bitmap = page.render(scale=width / page.get_width())
                image = bitmap.to_pil()
                page.close()
            finally:
                document.close()
    except (pdfium.PdfiumError, OSError) as exc:
        log.warning("notify.preview_failed", path=str(path), error=str(exc))
        return None
    return _png(image.convert("L"))


def tiff_first_page_png(path: Path, width: int = PREVIEW_WIDTH) -> bytes | None:
    """Return the first page of the TIFF at `path` as a grey PNG `width` pixels wide.

    Fax TIFFs often have a lower vertical than horizontal resolution (204 x 98
    dpi), so the height is scaled by the resolution ratio to keep the page's shape.
    """
    try:
        with Image.open(path) as image:
            image.seek(0)
            x_dpi, y_dpi = image.info.get("dpi", (1.0, 1.0))
            aspect = float(x_dpi) / float(y_dpi) if x_dpi and y_dpi else 1.0
            height = max(1, round(image.height * aspect * width / image.width))
            small = image.convert("L").resize((width, height), Image.Resampling.LANCZOS)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("notify.preview_failed", path=str(path), error=str(exc))
        return None
    return _png(small)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()

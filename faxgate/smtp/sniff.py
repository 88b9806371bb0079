"""Decide a mail part's document type from its bytes, and check PDFs cheaply.

This is the gateway's own minimal type detection, enough to decide at SMTP
time whether a message carries something faxable. The document pipeline
renders and checks documents fully later, off the SMTP path.

NOTE: when `faxgate.documents` is available, `detect_type` and
`inspect_document` should delegate to its `detect_type` and `quick_check`,
so that both layers agree on what is faxable.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath

from pypdf import PasswordType, PdfReader

from faxgate.documents import OFFICE_TYPES
from faxgate.documents import detect_type as documents_detect_type
from faxgate.documents import quick_check as documents_quick_check
from faxgate.documents.detect import TRUNCATED_PDF_MESSAGE, is_truncated_pdf
from faxgate.errors import DocumentError

log = logging.getLogger(__name__)

# Bytes of a part that type detection looks at.
HEAD_BYTES = 2048

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "tiff": "image/tiff",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "text": "text/plain",
}
IMAGE_TYPES = frozenset({"tiff", "png", "jpeg", "gif", "bmp", "webp"})

_EXTENSIONS = {
    ".pdf": "pdf",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gif": "gif",
    ".bmp": "bmp",
    ".webp": "webp",
    ".txt": "text",
    ".text": "text",
}
_DECLARED = {value: key for key, value in CONTENT_TYPES.items()} | {
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/x-ms-bmp": "bmp",
    "application/x-pdf": "pdf",
}
# Sizes of the BMP info headers that Windows and OS/2 writers use.
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


@dataclass(frozen=True)
class DocumentInfo:
    """Result of the cheap check: the type and, for a PDF that opened, the page count."""

    detected_type: str
    pages: int | None = None


def sniff_content(head: bytes) -> str | None:
    """Return the document type that the leading bytes of a file show, or None."""
    # Acrobat accepts a PDF header anywhere in the first 1024 bytes.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM") and len(head) >= 18:
        (info_size,) = struct.unpack_from("<I", head, 14)
        if info_size in _BMP_HEADER_SIZES:
            return "bmp"
    return None


def looks_like_text(head: bytes, allow_nul: bool = False) -> bool:
    """Return whether the bytes can be text: few control bytes and, unless allowed, no NUL.

    `allow_nul` is for parts labelled as text, where a stray NUL is damage to
    render as a replacement character.
    """
    nul_count = head.count(b"\x00")
    # Text labelled as such may carry a few NULs (at most 2, or 2 % of the bytes).
    if nul_count and not (allow_nul and nul_count <= max(2, len(head) // 50)):
        return False
    controls = sum(
        1 for byte in head if 0 < byte < 0x20 and byte not in (0x09, 0x0A, 0x0C, 0x0D)
    )
    return controls <= len(head) // 100


def detect_type(head: bytes, filename: str | None, declared: str | None) -> str | None:
    """Return the part's document type from its content, then its file name, then its declared type.

    Text is recognized only when the name or the declared type indicates text
    and the bytes look like text. None means the gateway cannot fax the part.
    """
    by_content = sniff_content(head)
    if by_content is not None:
        return by_content
    # Office files are ZIP or OLE containers that only the document
    # pipeline's detector distinguishes.
    office = documents_detect_type(head, filename, declared)
    if office in OFFICE_TYPES:
        return office

    by_name = _EXTENSIONS.get(PurePosixPath(filename).suffix.lower()) if filename else None
    by_declared = _DECLARED.get((declared or "").lower())
    if (declared or "").lower().startswith("text/plain"):
        by_declared = "text"
    guess = by_name or by_declared
    if guess == "text" and not looks_like_text(head, allow_nul=True):
        return None
    return guess


def inspect_document(data: bytes, filename: str | None, detected_type: str) -> DocumentInfo:
    """Check a document cheaply before the SMTP reply; raise DocumentError if it cannot be faxed.

    A PDF is refused here when it needs a password to open (code
    `password_protected`) or ends before its %%EOF marker (code `corrupt`),
    because the renderer refuses both. Any other PDF that pypdf cannot read
    is let through, because the renderer may still repair it, and the job
    fails later with the renderer's reason if not.
    """
    if not data:
        raise DocumentError(f"{filename or 'the document'} is empty", code="empty")
    if detected_type in OFFICE_TYPES:
        # Refuses office files at once when LibreOffice is not installed.
        try:
            documents_quick_check(data, filename, None)
        except DocumentError as exc:
            name = filename or "the document"
            raise DocumentError(f"{name}: {exc.message}", code=exc.code) from exc
        return DocumentInfo(detected_type)
    if detected_type != "pdf":
        return DocumentInfo(detected_type)
    if is_truncated_pdf(data):
        raise DocumentError(f"{filename or 'the PDF'}: {TRUNCATED_PDF_MESSAGE}", code="corrupt")
    return DocumentInfo("pdf", _pdf_pages(data, filename))


def _pdf_pages(data: bytes, filename: str | None) -> int | None:
    try:
        reader = PdfReader(io.BytesIO(data))
        opened = not reader.is_encrypted or reader.decrypt("") != PasswordType.NOT_DECRYPTED
        pages = len(reader.pages) if opened else None
    except Exception as exc:  # pypdf raises many exception types on damaged files
        log.debug("pypdf could not read %s: %s", filename, exc)
        return None
    if not opened:
        raise DocumentError(
            f"{filename or 'the PDF'} is password-protected", code="password_protected"
        )
    return pages

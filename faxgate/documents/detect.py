"""Decide what kind of document a file is, and reject hopeless ones cheaply.

The content's first bytes decide first, then the file name, then the declared
MIME type, because mail clients often label attachments wrongly
(application/octet-stream, or a ".pdf" name on another binary format).
One label mistake is rejected instead: text content under a name or type that
promises a binary format (see `check_label`).
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import struct
import zipfile

from faxgate.errors import DocumentError

from .model import RenderLimits

IMAGE_TYPES = frozenset({"tiff", "png", "jpeg", "gif", "bmp", "webp", "avif"})
TEXT_TYPES = frozenset({"text", "html"})
OFFICE_TYPES = frozenset({"docx", "doc", "odt", "rtf", "xlsx", "xls", "ods", "pptx", "ppt", "odp"})
SUPPORTED_TYPES = frozenset({"pdf"}) | IMAGE_TYPES | TEXT_TYPES | OFFICE_TYPES

# Types that detect_type recognises but faxgate cannot render, with the reason.
UNSUPPORTED_REASONS: dict[str, str] = {
    "heic": "HEIC/HEIF images are not supported; send the photo as JPEG or PDF",
    "postscript": "PostScript files are not supported; send a PDF instead",
    "svg": "SVG drawings are not supported; send a PDF or PNG instead",
}

PASSWORD_MESSAGE = "document is password protected"

_EXTENSIONS: dict[str, str] = {
    "pdf": "pdf",
    "tif": "tiff", "tiff": "tiff",
    "png": "png",
    "jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "jfif": "jpeg",
    "gif": "gif",
    "bmp": "bmp", "dib": "bmp",
    "webp": "webp",
    "avif": "avif",
    "heic": "heic", "heif": "heic",
    "txt": "text", "text": "text", "log": "text", "csv": "text", "asc": "text",
    "htm": "html", "html": "html", "xhtml": "html",
    "docx": "docx", "doc": "doc", "odt": "odt", "rtf": "rtf",
    "xlsx": "xlsx", "xls": "xls", "ods": "ods",
    "pptx": "pptx", "ppt": "ppt", "odp": "odp",
    "ps": "postscript", "eps": "postscript",
    "svg": "svg",
}  # fmt: skip

_MIME_TYPES: dict[str, str] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "image/tiff": "tiff",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/gif": "gif",
    "image/bmp": "bmp",
    "image/x-bmp": "bmp",
    "image/x-ms-bmp": "bmp",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/heic": "heic",
    "image/heif": "heic",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/msword": "doc",
    "application/rtf": "rtf",
    "text/rtf": "rtf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/postscript": "postscript",
    "image/svg+xml": "svg",
}

# Text-like parts that are never meant to be read as a document.
_NOT_DOCUMENT_EXTENSIONS = frozenset({"sig", "p7s", "p7m", "pgp", "gpg", "key", "pem"})
_NOT_DOCUMENT_MIME_PREFIXES = (
    "application/pgp-",
    "application/pkcs7-",
    "application/x-pkcs7-",
    "application/pkcs10",
    "application/pgp-keys",
)

# Labels that promise a binary format, with the name used in error messages.
# Text content under one of them is a mistake (an error page saved as
# invoice.pdf, a note renamed to scan.jpg), not a text to fax. Legacy
# .doc/.xls/.ppt and .rtf are left out because exporters write HTML, CSV or
# RTF text under those names, and faxing that text is what the sender wants.
_BINARY_LABELS: dict[str, str] = {
    "pdf": "a PDF file",
    "tiff": "a TIFF image",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "bmp": "a BMP image",
    "webp": "a WebP image",
    "avif": "an AVIF image",
    "heic": "a HEIC image",
    "docx": "a Word document",
    "xlsx": "an Excel workbook",
    "pptx": "a PowerPoint presentation",
    "odt": "an OpenDocument text",
    "ods": "an OpenDocument spreadsheet",
    "odp": "an OpenDocument presentation",
}

_OOXML_PARTS = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))
_ODF_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")
_CONTROL_BYTES = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1B}

logger = logging.getLogger(__name__)


# The MIME type of each type that detect_type returns.
DETECTED_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "tiff": "image/tiff",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "avif": "image/avif",
    "text": "text/plain",
    "html": "text/html",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "doc": "application/msword",
    "odt": "application/vnd.oasis.opendocument.text",
    "rtf": "application/rtf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "ppt": "application/vnd.ms-powerpoint",
    "odp": "application/vnd.oasis.opendocument.presentation",
}


def detect_type(head: bytes, filename: str | None, declared: str | None) -> str | None:
    """Return the document type of a file, or None when it is not a document.

    `head` is the start of the content. A few kilobytes suffice, but with the
    whole file ZIP-based office formats are recognised even without a file name.
    Returned names are those in SUPPORTED_TYPES plus the keys of UNSUPPORTED_REASONS.
    """
    extension = _extension(filename)
    mime = _mime(declared)

    by_magic = _type_from_magic(head)
    if by_magic == "zip":
        return _office_type_from_zip(head, extension, mime)
    if by_magic == "ole":
        return _office_type_from_ole(extension, mime)
    if by_magic is not None:
        return by_magic

    labelled_text = _EXTENSIONS.get(extension) == "text" or _MIME_TYPES.get(mime) == "text"
    if not _looks_like_text(head, allow_nul=labelled_text):
        return None
    if extension in _NOT_DOCUMENT_EXTENSIONS or mime.startswith(_NOT_DOCUMENT_MIME_PREFIXES):
        return None
    lowered = head[:2048].lower()
    if b"<svg" in lowered[:512]:
        return "svg"
    if any(marker in lowered for marker in _HTML_MARKERS):
        return "html"
    if _EXTENSIONS.get(extension) == "html" or _MIME_TYPES.get(mime) == "html":
        return "html"
    return "text"


def quick_check(
    data: bytes,
    filename: str | None,
    declared: str | None,
    limits: RenderLimits | None = None,
) -> str:
    """Return the detected type of `data`, or raise DocumentError if it cannot be faxed.

    Cheap and synchronous, for use while an SMTP client waits for its reply. It
    parses only headers (PDF trailer and encryption dictionary, image size) in
    pure Python or Pillow's header readers. Passing `limits` adds the page-count
    and image-size checks. A document that passes can still fail to render.
    """
    if not data.strip():
        raise DocumentError("the document is empty", code="empty")
    check_label(data, filename, declared)

    detected = detect_type(data, filename, declared)
    if detected is None:
        raise DocumentError(
            f"{_describe(filename, declared)} is not a document that can be faxed; "
            "send a PDF, an image, a text or an office document",
            code="unsupported_type",
        )
    if detected in UNSUPPORTED_REASONS:
        raise DocumentError(UNSUPPORTED_REASONS[detected], code="unsupported_type")

    if detected == "pdf":
        _check_pdf(data, limits)
    elif detected in IMAGE_TYPES:
        _check_image(data, limits)
    elif detected in OFFICE_TYPES and find_office_command() is None:
        raise DocumentError(OFFICE_UNAVAILABLE_MESSAGE, code="office_unavailable")
    return detected


def label_mismatch(head: bytes, filename: str | None, declared: str | None) -> str | None:
    """Return why the content contradicts its label, or None when it does not.

    The label is the file name's extension, or the declared MIME type when the
    extension is unknown. Only a label of a binary format (PDF, TIFF, an image,
    a ZIP-based office format) over text content counts. Other binary content
    under a wrong label is left to content-first detection. The reason does not
    name the file: "labelled as a PDF file, but its content is plain text".
    """
    labelled = _EXTENSIONS.get(_extension(filename)) or _MIME_TYPES.get(_mime(declared))
    if labelled not in _BINARY_LABELS:
        return None
    if _type_from_magic(head) is not None or not _looks_like_text(head):
        return None
    content = "an HTML page" if detect_type(head, None, None) == "html" else "plain text"
    return f"labelled as {_BINARY_LABELS[labelled]}, but its content is {content}"


def check_label(head: bytes, filename: str | None, declared: str | None) -> None:
    """Raise DocumentError (code `type_mismatch`) when `label_mismatch` finds a contradiction."""
    reason = label_mismatch(head, filename, declared)
    if reason is None:
        return
    raise DocumentError(
        f"{filename or 'the document'} is {reason}; send the original file",
        code="type_mismatch",
    )


OFFICE_UNAVAILABLE_MESSAGE = (
    "office documents cannot be faxed because LibreOffice is not installed on this "
    "server; send the document as PDF"
)


def find_office_command() -> str | None:
    """Return the path of LibreOffice's `soffice` on PATH, or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def is_truncated_pdf(data: bytes) -> bool:
    """Return True when a PDF ends without its %%EOF marker.

    Writers put %%EOF at the very end; 2 KiB of slack allows for trailing junk
    that mail gateways sometimes append.
    """
    return b"%%EOF" not in data[-2048:]


def _type_from_magic(head: bytes) -> str | None:
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "heic"
    if head.startswith(b"%!PS"):
        return "postscript"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    return None


def _office_type_from_zip(head: bytes, extension: str, mime: str) -> str | None:
    # ODF stores an uncompressed "mimetype" member first, at a fixed offset.
    if head[30:38] == b"mimetype":
        for marker, kind in _ODF_MIMETYPES.items():
            if head[38 : 38 + len(marker)] == marker:
                return kind
    names = _zip_member_names(head)
    for prefix, kind in _OOXML_PARTS:
        if any(name.startswith(prefix) for name in names):
            return kind
    by_name = _EXTENSIONS.get(extension) or _MIME_TYPES.get(mime)
    if by_name in ("docx", "xlsx", "pptx", "odt", "ods", "odp"):
        return by_name
    return None


def _zip_member_names(data: bytes) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        pass
    # Only the head of the file was given: read the local file headers in it.
    names = []
    for match in re.finditer(rb"PK\x03\x04", data[:65536]):
        start = match.start()
        if start + 30 > len(data):
            break
        (name_length,) = struct.unpack_from("<H", data, start + 26)
        names.append(data[start + 30 : start + 30 + name_length].decode("cp437", "replace"))
    return names


def _office_type_from_ole(extension: str, mime: str) -> str | None:
    by_name = _EXTENSIONS.get(extension) or _MIME_TYPES.get(mime)
    if by_name in ("doc", "xls", "ppt"):
        return by_name
    # An OLE file without a telling name may be an Outlook item or anything else.
    return None


def _looks_like_text(head: bytes, allow_nul: bool = False) -> bool:
    """Return whether `head` reads as text: few control bytes and, unless allowed, no NUL.

    `allow_nul` is for files labelled as text, where a stray NUL is damage
    to render as a replacement character, not a sign of binary content.
    """
    sample = head[:8192]
    if not sample:
        return False
    if sample.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if not _nul_bytes_acceptable(sample, allow_nul):
        return False
    controls = sum(1 for byte in sample if byte and byte in _CONTROL_BYTES)
    return controls <= len(sample) // 100


def _nul_bytes_acceptable(sample: bytes, allow_nul: bool) -> bool:
    """Return whether the NUL bytes in `sample` still let it count as text.

    Text labelled as such may carry a few (at most 2, or 2 % of the sample);
    anything else with a NUL is binary.
    """
    count = sample.count(b"\x00")
    return count == 0 or (allow_nul and count <= max(2, len(sample) // 50))


def _extension(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].strip().lower()


def _mime(declared: str | None) -> str:
    if not declared:
        return ""
    return declared.split(";", 1)[0].strip().lower()


def _describe(filename: str | None, declared: str | None) -> str:
    if filename:
        return f"the file {filename!r}"
    if declared:
        return f"the {_mime(declared)} part"
    return "the content"


def _check_pdf(data: bytes, limits: RenderLimits | None) -> None:
    from . import pdfcheck  # pypdf is imported only when a PDF is checked

    if is_truncated_pdf(data):
        raise DocumentError(TRUNCATED_PDF_MESSAGE, code="corrupt")
    pdfcheck.check_pdf_bytes(data, limits)


TRUNCATED_PDF_MESSAGE = (
    "the PDF file is truncated (it ends before its %%EOF marker), so pages may be "
    "missing; send the complete file"
)


def _check_image(data: bytes, limits: RenderLimits | None) -> None:
    from . import images  # Pillow plugins load only when an image is checked

    images.check_image_header(data, limits or RenderLimits())

"""Functions that run inside the conversion worker processes.

Each entry point takes one picklable request and returns its result or a
Failure. DocumentError does not survive pickling with its code, so errors
travel back as Failure values and the parent raises them again.
"""

from __future__ import annotations

import io
import logging
import os
import resource
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from PIL import Image, _imaging

from faxgate.errors import DocumentError

from . import images, pdfsource
from .detect import IMAGE_TYPES, OFFICE_TYPES, UNSUPPORTED_REASONS, check_label, detect_type
from .faxtiff import read_fax_pages, write_fax_tiff
from .files import write_atomically
from .geometry import PagePlan, min_page_rows
from .header import stamp_page
from .model import FaxPage, HeaderInfo, RenderLimits
from .office import convert_to_pdf
from .pdfout import write_pdf
from .textsource import PaperSize, layout_text_pdf

logger = logging.getLogger(__name__)

_HEAD_BYTES = 65536

_memory_limit_mb = 0  # set by initialize, for error messages

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Failure:
    """A conversion error reported by a worker: DocumentError's code and message."""

    code: str
    message: str
    detail: str = ""

    def error(self) -> DocumentError:
        return DocumentError(self.message, code=self.code, detail=self.detail)


@dataclass(frozen=True)
class SourceRequest:
    """One input to detect, convert to a renderable file if needed, and plan.

    `text_paper` is the page size that text and HTML are laid out on.
    """

    index: int
    path: Path
    filename: str | None
    content_type: str | None
    work_dir: Path
    ydpi: int
    limits: RenderLimits
    office_command: str | None
    text_paper: PaperSize


@dataclass(frozen=True)
class PreparedSource:
    """An input ready to render: a PDF or an image file and a plan for each of its pages."""

    detected_type: str
    render_kind: Literal["pdf", "image"]
    render_path: Path
    plans: tuple[PagePlan, ...]
    frames: tuple[images.FrameInfo, ...] = ()

    @property
    def fax_pages(self) -> int:
        return sum(len(plan.pieces) for plan in self.plans)


@dataclass(frozen=True)
class ChunkRequest:
    """Source pages of a prepared input to render into fax pages, by index."""

    source: PreparedSource
    indices: tuple[int, ...]
    ydpi: int
    limits: RenderLimits


@dataclass(frozen=True)
class StampRequest:
    """A fax TIFF to copy to `out_path` with a header line on every page."""

    tiff_path: Path
    out_path: Path
    header: HeaderInfo
    template: str


@dataclass(frozen=True)
class TiffToPdfRequest:
    """A TIFF (a received fax) to write as a PDF at `pdf_path`."""

    tiff_path: Path
    pdf_path: Path
    limits: RenderLimits


PILLOW_BLOCKS_KEPT = 4  # at most 4 x 16 MiB (Pillow's block size) kept


def initialize(memory_mb: int) -> None:
    """Set up a fresh worker process: memory limit, own process group, quiet libraries.

    The soft RLIMIT_AS makes allocations beyond the limit fail with MemoryError
    (or fail inside pdfium) instead of exhausting the machine. The process
    group lets the parent kill the worker together with any LibreOffice it started.
    """
    global _memory_limit_mb
    _memory_limit_mb = memory_mb
    limit = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    os.setpgid(0, 0)
    Image.MAX_IMAGE_PIXELS = None  # images.frame_infos applies the configured limit
    # Keep a few freed image blocks for reuse. Each page goes through a dozen
    # whole-page Pillow operations, and fresh memory for each costs page faults:
    # about 2.5 ms of 33 per fine page in bench/render.py.
    _imaging.set_blocks_max(PILLOW_BLOCKS_KEPT)
    logging.getLogger("pypdf").setLevel(logging.ERROR)


def ping() -> int:
    """Return the worker's process id; used to start workers ahead of the first job."""
    return os.getpid()


def prepare_source(request: SourceRequest) -> PreparedSource | Failure:
    """Detect an input's type, convert text and office files to PDF, and plan its pages."""
    return _guarded(_prepare_source, request)


def render_chunk(request: ChunkRequest) -> list[list[FaxPage]] | Failure:
    """Render source pages into fax pages; returns the fax pages of each source page."""
    return _guarded(_render_chunk, request)


def stamp_tiff(request: StampRequest) -> int | Failure:
    """Write a copy of a fax TIFF with the header line on each page; returns the page count."""
    return _guarded(_stamp_tiff, request)


def tiff_to_pdf(request: TiffToPdfRequest) -> int | Failure:
    """Write a TIFF's pages as a PDF, each page at its own size; returns the page count."""
    return _guarded(_tiff_to_pdf, request)


def _prepare_source(request: SourceRequest) -> PreparedSource:
    with request.path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
    if not head.strip():
        raise DocumentError("the document is empty", code="empty")
    check_label(head, request.filename, request.content_type)
    detected = detect_type(head, request.filename, request.content_type)
    if detected is None:
        raise DocumentError(
            "the attachment is not a document that can be faxed", code="unsupported_type"
        )
    if detected in UNSUPPORTED_REASONS:
        raise DocumentError(UNSUPPORTED_REASONS[detected], code="unsupported_type")

    if detected in IMAGE_TYPES:
        return _prepare_image(request, detected)
    if detected in ("text", "html"):
        pdf_path = request.work_dir / f"source-{request.index}.pdf"
        layout_text_pdf(
            request.path.read_bytes(),
            request.content_type,
            detected == "html",
            pdf_path,
            request.limits.max_pages,
            paper=request.text_paper,
        )
    elif detected in OFFICE_TYPES:
        # LibreOffice picks its import filter partly by the file name's extension.
        named = request.work_dir / f"office-input-{request.index}.{detected}"
        shutil.copyfile(request.path, named)
        pdf_path = convert_to_pdf(
            named, request.work_dir, request.office_command, request.limits.office_timeout_s
        )
    else:
        pdf_path = request.path
    return _prepare_pdf(request, detected, pdf_path)


def _prepare_pdf(request: SourceRequest, detected: str, pdf_path: Path) -> PreparedSource:
    document = pdfsource.open_pdf(pdf_path)
    try:
        if len(document) > request.limits.max_pages:
            raise _too_many_pages(len(document), request.limits.max_pages)
        plans = pdfsource.plan_pdf_pages(document, request.ydpi, request.limits.max_page_length_mm)
    finally:
        document.close()
    return PreparedSource(detected, "pdf", pdf_path, tuple(plans))


def _prepare_image(request: SourceRequest, detected: str) -> PreparedSource:
    with images.open_image(request.path, request.limits) as image:
        frames = images.frame_infos(image, request.limits)
    plans = images.plan_frames(frames, request.ydpi, request.limits.max_page_length_mm)
    return PreparedSource(detected, "image", request.path, tuple(plans), tuple(frames))


def _render_chunk(request: ChunkRequest) -> list[list[FaxPage]]:
    source = request.source
    if source.render_kind == "image":
        pages = images.render_frames(
            source.render_path,
            list(source.frames),
            list(source.plans),
            request.indices,
            request.ydpi,
            request.limits,
        )
    else:
        document = pdfsource.open_pdf(source.render_path)
        try:
            min_rows = min_page_rows(request.limits.min_page_length_mm, request.ydpi)
            pages = pdfsource.render_pdf_pages(
                document, list(source.plans), request.indices, request.ydpi, min_rows
            )
        finally:
            document.close()
    return pages


def _stamp_tiff(request: StampRequest) -> int:
    data = request.tiff_path.read_bytes()
    pages = read_fax_pages(data)
    if pages is None:
        raise DocumentError(
            "the TIFF was not written by faxgate's renderer", code="unsupported_type"
        )
    total = len(pages)
    stamped = [
        stamp_page(page, request.header, request.template, number, total)
        for number, page in enumerate(pages, start=1)
    ]
    with write_atomically(request.out_path) as target:
        write_fax_tiff(target, stamped)
    return total


def _tiff_to_pdf(request: TiffToPdfRequest) -> int:
    data = request.tiff_path.read_bytes()
    pages = read_fax_pages(data)
    if pages is None:
        pages = images.decode_tiff_pages(io.BytesIO(data), request.limits)
    if not pages:
        raise DocumentError("the TIFF file has no pages", code="empty")
    with write_atomically(request.pdf_path) as target:
        write_pdf(target, pages)
    return len(pages)


def _too_many_pages(pages: int, limit: int) -> DocumentError:
    return DocumentError(
        f"the document has {pages} pages, more than the limit of {limit}", code="too_many_pages"
    )


def _guarded(function: Callable[[RequestT], ResultT], request: RequestT) -> ResultT | Failure:
    try:
        return function(request)
    except DocumentError as exc:
        return Failure(exc.code, exc.message, str(exc.details.get("detail", "")))
    except MemoryError:
        return Failure(
            "too_large",
            f"converting the document needs more than the memory limit of {_memory_limit_mb} MB",
        )
    except Exception:  # parsers of untrusted files can raise anything
        return Failure(
            "render_failed", "the document could not be converted", traceback.format_exc(limit=8)
        )

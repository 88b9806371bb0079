"""The parts the job worker drives, as narrow interfaces.

The worker renders documents, sends fax images and reads mail only through
`DocumentPipeline`, `Dialer` and `MailExtractor`. `faxgate.adapters` builds
the real implementations over `faxgate.documents`, `faxgate.trunks` and
`faxgate.smtp.mime`; tests may pass their own. This module also names the
files of a job and builds the API view of a fax row.
"""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from faxgate.clock import from_gregorian, to_gregorian
from faxgate.files import write_atomic
from faxgate.ids import month_id
from faxgate.store.faxes import ATTACHING_FILES, ORIGINAL, OUTBOX, OUTGOING, PENDING, FaxFile


@dataclass(frozen=True)
class SourceDocument:
    """A document file that a job faxes, in the order it is faxed."""

    path: Path
    content_type: str
    filename: str | None = None


@dataclass(frozen=True)
class RenderedFax:
    """The fax image and PDF rendered from a job's documents."""

    tiff_path: Path
    pdf_path: Path
    pages: int


@dataclass(frozen=True)
class PageHeader:
    """The fields of the header line stamped on every sent page."""

    station_id: str
    sender_name: str
    destination: str
    timezone: str
    when: float


@dataclass(frozen=True)
class CallIdentity:
    """The identity that the sending station presents to the far end."""

    station_id: str
    header_text: str
    caller_id: str
    caller_name: str


@dataclass(frozen=True)
class CallProgress:
    pages_done: int
    pages_total: int | None


@dataclass
class CallOutcome:
    """The end of a call.

    `hangup_cause` is one of normal, busy, no_answer, not_a_fax or
    line_error. `tx_result` is the object stored on the job as `tx_result`.
    """

    success: bool
    hangup_cause: str
    error_message: str
    pages_sent: int
    tx_result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtractedPart:
    """A document taken from an email, ready to be written as an original."""

    data: bytes
    content_type: str
    filename: str | None


class DocumentPipeline(Protocol):
    def check(self, data: bytes, filename: str | None, declared_type: str | None) -> str:
        """Return the document's content type; raise DocumentError when it cannot be faxed."""
        ...

    async def render(
        self, sources: list[SourceDocument], out_dir: Path, resolution: str
    ) -> RenderedFax: ...

    async def stamp_header(self, tiff_path: Path, out_path: Path, header: PageHeader) -> Path: ...

    async def render_tiff_to_pdf(self, tiff_path: Path, pdf_path: Path) -> int:
        """Write a PDF of a received fax TIFF, each page at its own size; return the pages."""
        ...

    async def close(self) -> None: ...


class Dialer(Protocol):
    async def send(
        self,
        tiff_path: Path,
        identity: CallIdentity,
        destination: str,
        on_progress: Callable[[CallProgress], None],
    ) -> CallOutcome: ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class MailExtractor(Protocol):
    def extract(self, raw: bytes, options: dict[str, Any]) -> list[ExtractedPart]:
        """Return the message's faxable parts in MIME order.

        `options` has the keys min_image_bytes, fax_text_body and
        subject_as_cover. Raises DocumentError when the message cannot be read.
        """
        ...


_EXTENSIONS = {
    "application/pdf": "pdf",
    "image/tiff": "tif",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "text/plain": "txt",
    "text/html": "html",
}


def outbox_id(row: dict[str, Any]) -> str:
    """Return the month-scoped id `YYYYMM-<32 hex>` of a fax row, from its creation time."""
    return month_id(from_gregorian(row["created"]), row["id"])


def fax_view(row: dict[str, Any], folder: str = OUTGOING) -> dict[str, Any]:
    """Return the API document of a fax row (with `doc` decoded) as `folder` serves it."""
    view = dict(row["doc"])
    view.update(
        id=outbox_id(row) if folder == OUTBOX else row["id"],
        status=row["status"],
        attempts=row["attempts"],
        retries=row["retries"],
        created=row["created"],
        modified=row["modified"],
    )
    for key in ("delivered", "pages", "progress"):
        if row.get(key) is not None:
            view[key] = row[key]
    waiting = row["status"] in (ATTACHING_FILES, PENDING) and row.get("lease_owner") is None
    if waiting and row["attempts"] > 0:
        view["retry_after"] = to_gregorian(row["due"])
    return view


def job_dir(job_id: str) -> Path:
    """Return the folder of a job's files, relative to the data directory."""
    return Path("faxes") / job_id


def extension_for(content_type: str) -> str:
    """Return the file name extension used for an original of this content type."""
    bare = content_type.split(";", 1)[0].strip().lower()
    guessed = mimetypes.guess_extension(bare)
    return _EXTENSIONS.get(bare) or (guessed.lstrip(".") if guessed else "bin")


def write_originals(data_dir: Path, job_id: str, parts: list[ExtractedPart]) -> list[FaxFile]:
    """Write each part durably as `faxes/<job id>/original-<n>.<ext>` and describe the files.

    Paths in the returned rows are relative to `data_dir`. File names are
    made here, never taken from the user. This blocks on fsync: call it in a
    thread. On failure, the files already written are removed.
    """
    files: list[FaxFile] = []
    try:
        for position, part in enumerate(parts):
            relative = job_dir(job_id) / (
                f"original-{position}.{extension_for(part.content_type)}"
            )
            size = write_atomic(data_dir / relative, part.data)
            files.append(
                FaxFile(
                    kind=ORIGINAL,
                    path=str(relative),
                    content_type=part.content_type,
                    size=size,
                    filename=part.filename,
                    position=position,
                )
            )
    except BaseException:
        remove_files(data_dir, files)
        raise
    return files


def remove_files(data_dir: Path, files: list[FaxFile]) -> None:
    """Delete the files (missing ones are fine) and their job folders once empty."""
    folders = set()
    for item in files:
        path = data_dir / item.path
        path.unlink(missing_ok=True)
        folders.add(path.parent)
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()

"""The parts the job worker drives, as narrow interfaces.

The worker renders documents, sends fax images and reads mail only through
`DocumentPipeline`, `Dialer` and `MailExtractor`. `build_parts` returns the
real implementations over `faxgate.documents`, `faxgate.trunks` and
`faxgate.smtp.mime`; tests may pass their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from faxgate.clock import from_gregorian, to_gregorian
from faxgate.config import Config
from faxgate.errors import ConfigError, DocumentError
from faxgate.fax.result import FaxProgress
from faxgate.files import write_atomic
from faxgate.ids import month_id
from faxgate.smtp.mime import ExtractOptions, UnreadableMessageError, extract_documents
from faxgate.store.faxes import ATTACHING_FILES, ORIGINAL, OUTBOX, OUTGOING, PENDING, FaxFile
from faxgate.trunks.base import FaxIdentity, Trunk
from faxgate.trunks.loopback import LoopbackTrunk
from faxgate.trunks.loopback_rules import parse_rules


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
    """The sending station's identity as the far end sees it."""

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
    return _EXTENSIONS.get(content_type.split(";", 1)[0].strip().lower(), "bin")


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


# The real parts. The document pipeline is imported when the service builds it.


class TrunkDialer:
    """A `Dialer` over a fax engine trunk (`faxgate.trunks.base.Trunk`)."""

    def __init__(self, trunk: Trunk) -> None:
        self.trunk = trunk

    async def send(
        self,
        tiff_path: Path,
        identity: CallIdentity,
        destination: str,
        on_progress: Callable[[CallProgress], None],
    ) -> CallOutcome:
        fax_identity = FaxIdentity(
            station_id=identity.station_id,
            header_text=identity.header_text,
            caller_id=identity.caller_id,
            caller_name=identity.caller_name,
        )

        def report(progress: FaxProgress) -> None:
            on_progress(CallProgress(progress.pages_done, progress.pages_total))

        result = await self.trunk.send(tiff_path, fax_identity, destination, report)
        return CallOutcome(
            success=bool(result.success),
            hangup_cause=str(result.hangup_cause),
            error_message=str(result.error_message),
            pages_sent=int(result.pages_sent),
            tx_result=dict(result.to_dict()),
        )

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.trunk.status()
        return status

    async def close(self) -> None:
        await self.trunk.close()


def build_trunk(config: Config) -> Trunk:
    """Build the trunk that `fax.trunk` names."""
    if config.fax.trunk != "loopback":
        raise ConfigError(f"fax.trunk: unknown trunk {config.fax.trunk!r}; known: 'loopback'")
    return LoopbackTrunk(
        config.data_dir, parse_rules(config.loopback.rules), channels=config.fax.channels
    )


class RendererPipeline:
    """A `DocumentPipeline` over the document renderer (`faxgate.documents`).

    NOTE: written against the renderer's announced interface before that
    module was available here, and not yet run against it.
    """

    def __init__(self, config: Config) -> None:
        from faxgate.documents import DocumentRenderer, RenderLimits

        documents = config.documents
        limits = RenderLimits(
            timeout=documents.timeout,
            memory_mb=documents.memory_mb,
            max_pages=documents.max_pages,
            max_page_length_mm=documents.max_page_length_mm,
            max_image_pixels=documents.max_image_pixels,
        )
        self.renderer = DocumentRenderer(limits, documents.workers)
        self.header_template = config.fax.header_template

    def check(self, data: bytes, filename: str | None, declared_type: str | None) -> str:
        from faxgate.documents import quick_check

        return str(quick_check(data, filename, declared_type))

    async def render(
        self, sources: list[SourceDocument], out_dir: Path, resolution: str
    ) -> RenderedFax:
        from faxgate.documents import DocumentInput

        inputs = [
            DocumentInput(
                data=None, path=source.path, filename=source.filename,
                content_type=source.content_type,
            )
            for source in sources
        ]
        rendered = await self.renderer.render(inputs, out_dir, resolution=resolution)
        return RenderedFax(rendered.tiff_path, rendered.pdf_path, int(rendered.pages))

    async def stamp_header(self, tiff_path: Path, out_path: Path, header: PageHeader) -> Path:
        from faxgate.documents import HeaderInfo

        info = HeaderInfo(
            station_id=header.station_id,
            sender_name=header.sender_name,
            destination=header.destination,
            timezone=header.timezone,
            when=datetime.fromtimestamp(header.when, UTC),
        )
        stamped: Path = await self.renderer.stamp_header(
            tiff_path, out_path, info, self.header_template
        )
        return stamped

    async def close(self) -> None:
        await self.renderer.close()


def build_pipeline(config: Config) -> DocumentPipeline:
    return RendererPipeline(config)


class MimeExtractor:
    """A `MailExtractor` over the SMTP gateway's MIME reader (`faxgate.smtp.mime`)."""

    def extract(self, raw: bytes, options: dict[str, Any]) -> list[ExtractedPart]:
        try:
            extraction = extract_documents(raw, ExtractOptions.from_doc(options))
        except UnreadableMessageError as exc:
            raise DocumentError(exc.message, code="corrupt") from exc
        return [
            ExtractedPart(document.data, document.content_type, document.filename)
            for document in extraction.documents
        ]


def build_extractor(config: Config) -> MailExtractor | None:
    return MimeExtractor()

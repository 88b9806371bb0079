"""The real parts the job worker drives, over the fax engine, the renderer and the MIME reader."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faxgate.config import Config, text_paper_size
from faxgate.documents import (
    DEFAULT_HEADER_TEMPLATE,
    DETECTED_CONTENT_TYPES,
    DocumentInput,
    DocumentRenderer,
    HeaderInfo,
    RenderLimits,
    quick_check,
)
from faxgate.errors import ConfigError, DocumentError
from faxgate.fax.result import FaxProgress
from faxgate.jobs import (
    CallIdentity,
    CallOutcome,
    CallProgress,
    DocumentPipeline,
    ExtractedPart,
    MailExtractor,
    PageHeader,
    RenderedFax,
    SourceDocument,
)
from faxgate.smtp.mime import ExtractOptions, UnreadableMessageError, extract_documents
from faxgate.trunks.base import FaxIdentity, Trunk
from faxgate.trunks.loopback import LoopbackTrunk
from faxgate.trunks.loopback_rules import parse_rules


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
    """A `DocumentPipeline` over the document renderer (`faxgate.documents`)."""

    def __init__(self, config: Config) -> None:
        documents = config.documents
        self.limits = RenderLimits(
            timeout_s=documents.timeout,
            memory_mb=documents.memory_mb,
            max_pages=documents.max_pages,
            max_page_length_mm=documents.max_page_length_mm,
            min_page_length_mm=documents.min_page_length_mm,
            max_image_pixels=documents.max_image_pixels,
        )
        self.renderer = DocumentRenderer(
            self.limits, documents.workers, text_paper=text_paper_size(config)
        )
        self.header_template = config.fax.header_template or DEFAULT_HEADER_TEMPLATE

    def check(self, data: bytes, filename: str | None, declared_type: str | None) -> str:
        detected = quick_check(data, filename, declared_type, self.limits)
        return DETECTED_CONTENT_TYPES.get(detected, "application/octet-stream")

    async def render(
        self, sources: list[SourceDocument], out_dir: Path, resolution: str
    ) -> RenderedFax:
        inputs = [
            DocumentInput(
                path=source.path, filename=source.filename, content_type=source.content_type
            )
            for source in sources
        ]
        rendered = await self.renderer.render(inputs, out_dir, resolution=resolution)
        return RenderedFax(rendered.tiff_path, rendered.pdf_path, rendered.pages)

    async def stamp_header(self, tiff_path: Path, out_path: Path, header: PageHeader) -> Path:
        info = HeaderInfo(
            station_id=header.station_id,
            sender_name=header.sender_name,
            destination=header.destination,
            timezone=header.timezone,
            when=datetime.fromtimestamp(header.when, UTC),
        )
        return await self.renderer.stamp_header(tiff_path, out_path, info, self.header_template)

    async def render_tiff_to_pdf(self, tiff_path: Path, pdf_path: Path) -> int:
        return await self.renderer.render_tiff_to_pdf(tiff_path, pdf_path)

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

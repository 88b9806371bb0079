"""Helpers for the outgoing fax tests: documents, a document server and test stand-ins.

`StandInPipeline` replaces the document pipeline until that lands. The
end-to-end tests call through the engine's loopback trunk. `StandInDialer`
serves the worker tests that need calls of a set length (overlap, progress,
shutdown), which the loopback trunk, running as fast as the CPU allows,
cannot give. Both are test code, never shipped.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from faxgate.errors import DocumentError
from faxgate.jobs import (
    CallIdentity,
    CallOutcome,
    CallProgress,
    PageHeader,
    RenderedFax,
    SourceDocument,
)

A4_POINTS = (595, 842)


def make_pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(*A4_POINTS)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_tiff(pages: int) -> bytes:
    images = [Image.new("1", (1728, 200), 1) for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        "TIFF",
        save_all=True,
        append_images=images[1:],
        compression="group4",
        dpi=(204, 196),
    )
    return buffer.getvalue()


def pdf_pages(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class DocumentServer:
    """An HTTP server on 127.0.0.1 that serves documents and records every request."""

    documents: dict[str, bytes] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), body)
        )
        if request.path.startswith("/redirect/"):
            raise web.HTTPFound(request.path.removeprefix("/redirect"))
        data = self.documents.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/pdf")


@asynccontextmanager
async def document_server() -> AsyncIterator[DocumentServer]:
    server = DocumentServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def _count_pages(data: bytes) -> int:
    if data.startswith(b"%PDF-"):
        try:
            return len(PdfReader(io.BytesIO(data)).pages)
        except (PdfReadError, ValueError, KeyError) as exc:
            raise DocumentError(f"the PDF cannot be read: {exc}", code="corrupt") from exc
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    raise DocumentError("the document is neither a PDF nor a TIFF", code="unsupported_type")


class StandInPipeline:
    """Test stand-in for the document pipeline: counts pages, writes blank fax pages."""

    def __init__(self, render_delay: float = 0.0) -> None:
        self.render_delay = render_delay

    def check(self, data: bytes, filename: str | None, declared_type: str | None) -> str:
        if not data:
            raise DocumentError("the document is empty", code="empty")
        _count_pages(data)
        return "application/pdf" if data.startswith(b"%PDF-") else "image/tiff"

    async def render(
        self, sources: list[SourceDocument], out_dir: Path, resolution: str
    ) -> RenderedFax:
        await asyncio.sleep(self.render_delay)
        return await asyncio.to_thread(self._render_blank, sources, out_dir)

    def _render_blank(self, sources: list[SourceDocument], out_dir: Path) -> RenderedFax:
        pages = sum(_count_pages(source.path.read_bytes()) for source in sources)
        out_dir.mkdir(parents=True, exist_ok=True)
        tiff_path = out_dir / "fax.tif"
        pdf_path = out_dir / "fax.pdf"
        tiff_path.write_bytes(make_tiff(pages))
        pdf_path.write_bytes(make_pdf(pages))
        return RenderedFax(tiff_path, pdf_path, pages)

    async def stamp_header(self, tiff_path: Path, out_path: Path, header: PageHeader) -> Path:
        shutil.copyfile(tiff_path, out_path)
        return out_path

    async def render_tiff_to_pdf(self, tiff_path: Path, pdf_path: Path) -> int:
        with Image.open(tiff_path) as image:
            pages = int(getattr(image, "n_frames", 1))
        pdf_path.write_bytes(make_pdf(pages))
        return pages

    async def close(self) -> None:
        return None


@dataclass
class Call:
    destination: str
    started: float
    ended: float = 0.0
    pages: int = 0


class StandInDialer:
    """Test stand-in for the fax engine: numbers matching `busy` are busy, others take the pages.

    `busy_times` maps a destination pattern to the number of calls that find
    the line busy before the far end picks up.
    """

    def __init__(
        self,
        busy: tuple[str, ...] = (),
        busy_times: dict[str, int] | None = None,
        page_seconds: float = 0.0,
    ) -> None:
        self.busy = busy
        self.busy_times = dict(busy_times or {})
        self.page_seconds = page_seconds
        self.calls: list[Call] = []
        self.active: dict[str, int] = {}
        self.max_active_per_destination = 0

    async def send(
        self,
        tiff_path: Path,
        identity: CallIdentity,
        destination: str,
        on_progress: Callable[[CallProgress], None],
    ) -> CallOutcome:
        call = Call(destination, time.monotonic())
        self.calls.append(call)
        self.active[destination] = self.active.get(destination, 0) + 1
        self.max_active_per_destination = max(
            self.max_active_per_destination, self.active[destination]
        )
        try:
            return await self._call(tiff_path, destination, call, on_progress)
        finally:
            self.active[destination] -= 1
            call.ended = time.monotonic()

    async def _call(
        self,
        tiff_path: Path,
        destination: str,
        call: Call,
        on_progress: Callable[[CallProgress], None],
    ) -> CallOutcome:
        if self._answers_busy(destination):
            return CallOutcome(False, "busy", "the line is busy", 0, {"success": False})
        pages = _count_pages(await asyncio.to_thread(tiff_path.read_bytes))
        for done in range(pages):
            on_progress(CallProgress(done, pages))
            await asyncio.sleep(self.page_seconds)
        on_progress(CallProgress(pages, pages))
        call.pages = pages
        result = {"success": True, "pages_sent": pages, "pages_total": pages}
        return CallOutcome(True, "normal", "", pages, result)

    def _answers_busy(self, destination: str) -> bool:
        for pattern, remaining in self.busy_times.items():
            if fnmatch(destination, pattern) and remaining > 0:
                self.busy_times[pattern] = remaining - 1
                return True
        return any(fnmatch(destination, pattern) for pattern in self.busy)

    def status(self) -> dict[str, Any]:
        return {"status": "ok"}

    async def close(self) -> None:
        return None

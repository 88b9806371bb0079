"""Inbound faxes: answer calls to a faxbox's number and file what arrives in its inbox.

A trunk offers each arriving call to `InboundReceiver.offer`. When the dialled
number is a faxbox's `caller_id`, the receiver records the fax as incoming,
gives the trunk a sink to write the TIFF to, keeps the live progress in the
store while pages arrive, and on completion moves the fax to the inbox with
its TIFF, a PDF of it and the measured `rx_result`.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from faxgate.clock import to_gregorian
from faxgate.context import ServiceContext
from faxgate.errors import FaxgateError
from faxgate.fax.result import FaxProgress, FaxResult
from faxgate.files import commit_file
from faxgate.logs import EventLogger
from faxgate.store.faxes import FaxFile
from faxgate.store.inbox import RECEIVE_FAILED, RECEIVED

log = EventLogger("faxgate.inbound")


class TiffToPdf(Protocol):
    async def render_tiff_to_pdf(self, tiff_path: Path, pdf_path: Path) -> int: ...


# Called with (account id, faxbox, inbox document, pdf path, tiff path) when a fax arrived.
ReceivedHook = Callable[[str, dict[str, Any], dict[str, Any], Path | None, Path | None],
                        Awaitable[None]]


@dataclass
class InboundSink:
    """Destination of one arriving fax: the trunk writes `tiff_path` and reports here."""

    receiver: InboundReceiver
    account_id: str
    faxbox: dict[str, Any]
    fax_id: str
    tiff_path: Path
    station_id: str
    loop: asyncio.AbstractEventLoop
    _progress_writes: set[asyncio.Task[None]] = field(default_factory=set)

    def on_progress(self, progress: FaxProgress) -> None:
        """Store live progress; safe to call from the modem's thread."""
        self.loop.call_soon_threadsafe(self._schedule_progress, progress)

    def _schedule_progress(self, progress: FaxProgress) -> None:
        task = self.loop.create_task(
            self.receiver.store_progress(self.fax_id, progress),
            name=f"inbound-progress-{self.fax_id}",
        )
        self._progress_writes.add(task)
        task.add_done_callback(self._progress_writes.discard)

    async def on_complete(self, result: FaxResult) -> None:
        if self._progress_writes:
            await asyncio.gather(*self._progress_writes, return_exceptions=True)
        await self.receiver.complete(self, result)


class InboundReceiver:
    """The inbound handler a trunk offers calls to; a service component."""

    name = "inbound"

    def __init__(
        self,
        ctx: ServiceContext,
        renderer: TiffToPdf,
        on_received: ReceivedHook | None = None,
    ) -> None:
        self.ctx = ctx
        self.renderer = renderer
        self.on_received = on_received
        self.active = 0
        self.received = 0

    @property
    def inbox_dir(self) -> Path:
        return self.ctx.config.data_dir / "inbox"

    async def start(self) -> None:
        # A reception cut off by a crash never completes: close its record.
        for doc in await self.ctx.store.interrupted_incoming():
            await self._fail_or_discard(
                doc["account_id"], doc["faxbox_id"], doc["id"], "reception interrupted by a restart"
            )

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "receiving": self.active, "received": self.received}

    async def offer(self, to_number: str, from_number: str) -> InboundSink | None:
        """Accept a call for a faxbox's number; None when no faxbox has that number."""
        found = await self.ctx.store.find_faxbox_by_number(to_number)
        if found is None:
            return None
        account_id, faxbox = found
        doc = await self.ctx.store.create_incoming(account_id, faxbox["id"], from_number, to_number)
        folder = self.inbox_dir / doc["id"]
        folder.mkdir(parents=True, exist_ok=True)
        self.active += 1
        log.info("inbound.call_answered", account_id=account_id, faxbox_id=faxbox["id"],
                 fax_id=doc["id"], from_number=from_number, to_number=to_number)
        return InboundSink(
            receiver=self,
            account_id=account_id,
            faxbox=faxbox,
            fax_id=doc["id"],
            tiff_path=folder / "receiving.tiff",
            station_id=str(faxbox.get("fax_identity") or to_number)[:20],
            loop=asyncio.get_running_loop(),
        )

    async def store_progress(self, fax_id: str, progress: FaxProgress) -> None:
        await self.ctx.store.update_incoming_progress(
            fax_id,
            {
                "pages_received": progress.pages_done,
                "fax_speed": progress.fax_speed,
                "remote_station_id": progress.remote_station_id,
                "phase": progress.phase,
            },
        )

    async def complete(self, sink: InboundSink, result: FaxResult) -> None:
        """File the finished reception: inbox entry with TIFF and PDF, or a failure."""
        self.active -= 1
        try:
            if result.pages_sent > 0 and sink.tiff_path.exists():
                await self._file_received(sink, result)
                return
            reason = result.error_message or result.result_text or "no page was received"
            await self._fail_or_discard(
                sink.account_id, sink.faxbox["id"], sink.fax_id, reason, result
            )
        except FaxgateError as exc:
            log.error("inbound.filing_failed", fax_id=sink.fax_id, error=exc.message)
            await self._fail_or_discard(
                sink.account_id, sink.faxbox["id"], sink.fax_id, exc.message, result, keep=True
            )

    async def _file_received(self, sink: InboundSink, result: FaxResult) -> None:
        folder = sink.tiff_path.parent
        tiff_path = folder / "fax.tiff"
        await asyncio.to_thread(commit_file, sink.tiff_path, tiff_path)
        pdf_path = folder / "fax.pdf"
        pages = await self.renderer.render_tiff_to_pdf(tiff_path, pdf_path)

        rx_result = result.to_dict()
        files = [
            FaxFile("tiff", str(tiff_path), "image/tiff", tiff_path.stat().st_size, "fax.tiff"),
            FaxFile("pdf", str(pdf_path), "application/pdf", pdf_path.stat().st_size, "fax.pdf"),
        ]
        doc = await self.ctx.store.finish_incoming(
            sink.fax_id,
            RECEIVED,
            {
                "rx_result": rx_result,
                "pages": pages,
                "remote_station_id": result.remote_station_id,
                "received_at": to_gregorian(self.ctx.clock.time()),
            },
            files,
        )
        self.received += 1
        self.ctx.metrics.pages_received.inc(pages)
        self.ctx.metrics.call_duration.labels(direction="incoming").observe(result.call_duration)
        log.info("inbound.fax_received", account_id=sink.account_id, faxbox_id=sink.faxbox["id"],
                 fax_id=doc["id"], pages=pages, remote_station_id=result.remote_station_id)
        if self.on_received is not None:
            await self.on_received(sink.account_id, sink.faxbox, doc, pdf_path, tiff_path)

    async def _fail_or_discard(
        self,
        account_id: str,
        faxbox_id: str,
        fax_id: str,
        reason: str,
        result: FaxResult | None = None,
        keep: bool = False,
    ) -> None:
        try:
            faxbox = await self.ctx.store.get_faxbox(account_id, faxbox_id)
        except FaxgateError:
            faxbox = {}
        folder = self.inbox_dir / fax_id
        if keep or faxbox.get("keep_failed_receptions"):
            fields: dict[str, Any] = {"error": reason, "pages": 0}
            if result is not None:
                fields["rx_result"] = result.to_dict()
            await self.ctx.store.finish_incoming(fax_id, RECEIVE_FAILED, fields, [])
            log.warning("inbound.reception_failed", account_id=account_id, faxbox_id=faxbox_id,
                        fax_id=fax_id, error=reason, kept=True)
        else:
            await self.ctx.store.discard_incoming(fax_id)
            log.warning("inbound.reception_failed", account_id=account_id, faxbox_id=faxbox_id,
                        fax_id=fax_id, error=reason, kept=False)
        await asyncio.to_thread(shutil.rmtree, folder, True)

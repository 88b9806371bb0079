"""DocumentRenderer: the pool of conversion worker processes and the render jobs on it.

Each worker is a ProcessPoolExecutor of one spawned process, so that a worker
that overruns its time can be killed and replaced alone, without failing the
jobs running on the other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import secrets
import shutil
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from faxgate.errors import DocumentError

from . import worker
from .detect import find_office_command
from .faxtiff import write_fax_tiff
from .files import write_atomically
from .header import validate_header_template
from .model import (
    RESOLUTION_YDPI,
    DocumentInput,
    FaxPage,
    HeaderInfo,
    RenderedDocument,
    RenderLimits,
    SourceInfo,
)
from .pdfout import write_pdf
from .textsource import PAPER_SIZES

logger = logging.getLogger(__name__)

TIFF_NAME = "document.tiff"
PDF_NAME = "document.pdf"
MIN_PAGES_PER_WORKER = 4  # smaller documents are not split across workers

ResultT = TypeVar("ResultT")


class DocumentRenderer:
    """Converts documents to fax pages in a pool of worker processes.

    Create one per service and close it on shutdown. `workers` defaults to
    the number of CPUs. `office_command` is LibreOffice's soffice. By default
    it is looked up on PATH; an empty string turns office conversion off.
    Office documents are rejected when no command is available.
    `text_paper` ("a4" or "letter") is the page size that text and HTML are
    laid out on. PDFs, images and office documents keep their own page sizes.
    """

    def __init__(
        self,
        limits: RenderLimits,
        workers: int | None = None,
        *,
        office_command: str | None = None,
        text_paper: str = "a4",
    ) -> None:
        if text_paper not in PAPER_SIZES:
            raise ValueError(f"text_paper must be one of {sorted(PAPER_SIZES)}, not {text_paper!r}")
        self._text_paper = PAPER_SIZES[text_paper]
        self._limits = limits
        if office_command is None:
            office_command = find_office_command()
        self._office_command = office_command or None
        count = max(1, workers or os.cpu_count() or 1)
        self._workers = [_Worker(limits.memory_mb) for _ in range(count)]
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        for pooled in self._workers:
            self._idle.put_nowait(pooled)
        self._closed = False

    async def warm_up(self) -> None:
        """Start every worker process now instead of at its first job."""
        workers = await self._acquire_all()
        try:
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(pooled.executor, worker.ping) for pooled in workers)
            )
        finally:
            self._release(workers)

    async def render(
        self, inputs: list[DocumentInput], out_dir: Path, resolution: str = "fine"
    ) -> RenderedDocument:
        """Render the inputs, in order, into one fax TIFF and one PDF in `out_dir`.

        Every input is detected and planned before any page is rendered, so the
        page limit applies before the expensive work. Each input may spend at
        most `timeout_s` in the workers. Raises DocumentError; its details carry
        the failing input's `filename` and `input_index`.
        """
        if resolution not in RESOLUTION_YDPI:
            raise ValueError(
                f"resolution must be one of {sorted(RESOLUTION_YDPI)}, not {resolution!r}"
            )
        if not inputs:
            raise DocumentError("there is no document to render", code="empty")
        ydpi = RESOLUTION_YDPI[resolution]
        work_dir = out_dir / f".work-{secrets.token_hex(6)}"
        await asyncio.to_thread(work_dir.mkdir, parents=True)
        try:
            prepared, budgets = await self._prepare_all(inputs, work_dir, ydpi)
            pages: list[FaxPage] = []
            for index, source in enumerate(prepared):
                with _blame(inputs, index):
                    pages.extend(await self._render_source(source, ydpi, budgets[index]))
            return await asyncio.to_thread(
                _write_outputs, pages, out_dir, resolution, inputs, prepared
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, work_dir, True)

    async def stamp_header(
        self, tiff_path: Path, out_path: Path, header: HeaderInfo, template: str
    ) -> Path:
        """Write a copy of a rendered fax TIFF with the header line on each page."""
        validate_header_template(template)
        request = worker.StampRequest(tiff_path, out_path, header, template)
        await self._run_one(worker.stamp_tiff, request)
        return out_path

    async def render_tiff_to_pdf(self, tiff_path: Path, pdf_path: Path) -> int:
        """Write a TIFF (a received fax) as a PDF, each page at its own physical size.

        Returns the number of pages.
        """
        request = worker.TiffToPdfRequest(tiff_path, pdf_path, self._limits)
        return await self._run_one(worker.tiff_to_pdf, request)

    async def close(self) -> None:
        """Stop all worker processes; running conversions fail."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(_stop_workers, self._workers)

    async def _prepare_all(
        self, inputs: list[DocumentInput], work_dir: Path, ydpi: int
    ) -> tuple[list[worker.PreparedSource], list[float]]:
        prepared: list[worker.PreparedSource] = []
        budgets: list[float] = []
        total_pages = 0
        for index, document in enumerate(inputs):
            with _blame(inputs, index):
                path = await asyncio.to_thread(_input_path, document, work_dir, index)
                request = worker.SourceRequest(
                    index=index,
                    path=path,
                    filename=document.filename,
                    content_type=document.content_type,
                    work_dir=work_dir,
                    ydpi=ydpi,
                    limits=self._limits,
                    office_command=self._office_command,
                    text_paper=self._text_paper,
                )
                loop = asyncio.get_running_loop()
                started = loop.time()
                source = await self._run_one(worker.prepare_source, request)
                budgets.append(self._limits.timeout_s - (loop.time() - started))
                total_pages += source.fax_pages
                if total_pages > self._limits.max_pages:
                    raise DocumentError(
                        f"the documents make {total_pages} or more fax pages, more than "
                        f"the limit of {self._limits.max_pages}",
                        code="too_many_pages",
                    )
                prepared.append(source)
        return prepared, budgets

    async def _render_source(
        self, source: worker.PreparedSource, ydpi: int, budget: float
    ) -> list[FaxPage]:
        count = len(source.plans)
        useful = max(1, min(len(self._workers), math.ceil(count / MIN_PAGES_PER_WORKER)))
        workers = await self._acquire(useful)
        try:
            deadline = asyncio.get_running_loop().time() + budget
            # Every n-th page to each of n workers balances heavy pages (scans,
            # photos) that documents tend to have together.
            shares = [tuple(range(start, count, len(workers))) for start in range(len(workers))]
            tasks = [
                asyncio.create_task(
                    self._run(
                        pooled,
                        worker.render_chunk,
                        worker.ChunkRequest(source, indices, ydpi, self._limits),
                        deadline,
                    )
                )
                for pooled, indices in zip(workers, shares, strict=True)
            ]
            try:
                chunks = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            self._release(workers)
        by_index: dict[int, list[FaxPage]] = {}
        for indices, chunk in zip(shares, chunks, strict=True):
            by_index.update(zip(indices, chunk, strict=True))
        return [page for index in range(count) for page in by_index[index]]

    async def _run_one(
        self, function: Callable[[Any], ResultT | worker.Failure], request: Any
    ) -> ResultT:
        (chosen,) = await self._acquire(1)
        try:
            deadline = asyncio.get_running_loop().time() + self._limits.timeout_s
            return await self._run(chosen, function, request, deadline)
        finally:
            self._release([chosen])

    async def _run(
        self,
        chosen: _Worker,
        function: Callable[[Any], ResultT | worker.Failure],
        request: Any,
        deadline: float,
    ) -> ResultT:
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise self._timeout_error()
        try:
            future = loop.run_in_executor(chosen.executor, function, request)
            result = await asyncio.wait_for(future, remaining)
        except TimeoutError:
            logger.warning(
                "document conversion timed out after %.0f s; restarting worker %s",
                self._limits.timeout_s,
                chosen.pid,
            )
            chosen.restart()
            raise self._timeout_error() from None
        except BrokenProcessPool as exc:
            logger.error("conversion worker %s died; restarting it", chosen.pid)
            chosen.restart()
            raise DocumentError(
                "the converter crashed on this document", code="render_failed"
            ) from exc
        except asyncio.CancelledError:
            chosen.restart()  # the task cannot be taken back from a running process
            raise
        if isinstance(result, worker.Failure):
            if result.code == "render_failed" and result.detail:
                logger.error("document conversion failed: %s", result.detail)
            raise result.error()
        return result

    def _timeout_error(self) -> DocumentError:
        return DocumentError(
            f"converting the document took longer than {self._limits.timeout_s:g} s",
            code="timeout",
        )

    async def _acquire(self, limit: int) -> list[_Worker]:
        """Wait for one idle worker, then take more that are idle, up to `limit`."""
        if self._closed:
            raise RuntimeError("the DocumentRenderer is closed")
        acquired = [await self._idle.get()]
        while len(acquired) < limit:
            try:
                acquired.append(self._idle.get_nowait())
            except asyncio.QueueEmpty:
                break
        return acquired

    async def _acquire_all(self) -> list[_Worker]:
        return [await self._idle.get() for _ in self._workers]

    def _release(self, workers: Sequence[_Worker]) -> None:
        for pooled in workers:
            self._idle.put_nowait(pooled)


class _Worker:
    """One worker process, wrapped in its own executor so it can be replaced alone."""

    def __init__(self, memory_mb: int) -> None:
        self._memory_mb = memory_mb
        self.executor = self._new_executor()

    @property
    def pid(self) -> int | None:
        processes = getattr(self.executor, "_processes", None) or {}
        return next(iter(processes), None)

    def restart(self) -> None:
        self.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new_executor()

    def kill(self) -> None:
        # ProcessPoolExecutor has no public way to kill a busy worker (before
        # Python 3.14), so this reaches into its process table.
        processes = dict(getattr(self.executor, "_processes", None) or {})
        for pid in processes:
            _kill_process_group(pid)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.initialize,
            initargs=(self._memory_mb,),
        )


def _kill_process_group(pid: int) -> None:
    # The worker made itself a process group leader in worker.initialize, so
    # its group id is its pid and the group includes any LibreOffice it started.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # it died or had not set its group yet


def _stop_workers(workers: Sequence[_Worker]) -> None:
    for pooled in workers:
        pooled.executor.shutdown(wait=False, cancel_futures=True)
    for pooled in workers:
        processes = dict(getattr(pooled.executor, "_processes", None) or {})
        for process in processes.values():
            process.join(timeout=5)
            if process.is_alive():
                _kill_process_group(process.pid)


def _input_path(document: DocumentInput, work_dir: Path, index: int) -> Path:
    if document.path is not None:
        return document.path
    if document.data is None:
        raise DocumentError("the document has neither data nor a path", code="empty")
    path = work_dir / f"input-{index}"
    path.write_bytes(document.data)
    return path


def _write_outputs(
    pages: list[FaxPage],
    out_dir: Path,
    resolution: str,
    inputs: list[DocumentInput],
    prepared: list[worker.PreparedSource],
) -> RenderedDocument:
    tiff_path = out_dir / TIFF_NAME
    pdf_path = out_dir / PDF_NAME
    with write_atomically(tiff_path) as target:
        write_fax_tiff(target, pages)
    with write_atomically(pdf_path) as target:
        write_pdf(target, pages)
    sources = [
        SourceInfo(document.filename, source.detected_type, source.fax_pages)
        for document, source in zip(inputs, prepared, strict=True)
    ]
    return RenderedDocument(
        tiff_path=tiff_path,
        pdf_path=pdf_path,
        pages=len(pages),
        page_sizes_mm=[page.size_mm for page in pages],
        resolution=resolution,
        sources=sources,
    )


@contextlib.contextmanager
def _blame(inputs: list[DocumentInput], index: int) -> Iterator[None]:
    """Add the failing input's file name and index to a DocumentError raised inside."""
    try:
        yield
    except DocumentError as error:
        error.details.setdefault("filename", inputs[index].filename)
        error.details.setdefault("input_index", index)
        raise

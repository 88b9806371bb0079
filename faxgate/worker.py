"""The job worker: claims due outgoing jobs and runs one attempt of each.

An attempt fetches or extracts the documents when the job has none yet,
renders them, stamps the page header, places the call and records the
result. Every attempt ends in exactly one `finish_attempt` write: completed,
failed, or pending again after a retry delay. A job is held through a
store lease that this worker renews while it runs. If the process dies, the
lease runs out and any worker takes the job over. A job taken over before
its call started repeats the step that was cut off without counting a new
attempt. A job taken over during its call counts that attempt as failed,
because whether the far end got the pages is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faxgate.clock import GREGORIAN_OFFSET
from faxgate.context import ServiceContext
from faxgate.errors import DocumentError, FaxgateError, FetchError, NotFoundError, TrunkError
from faxgate.fetch import Fetcher, FetchRequest
from faxgate.ids import new_id
from faxgate.jobs import (
    CallIdentity,
    CallOutcome,
    CallProgress,
    Dialer,
    DocumentPipeline,
    ExtractedPart,
    MailExtractor,
    PageHeader,
    RenderedFax,
    SourceDocument,
    fax_view,
    job_dir,
    write_originals,
)
from faxgate.logs import EventLogger
from faxgate.senders import sender_allowed
from faxgate.store.faxes import (
    ATTACHING_FILES,
    COMPLETED,
    FAILED,
    ORIGINAL,
    OUTBOX,
    PDF,
    PENDING,
    PROCESSING,
    SENT_TIFF,
    TIFF,
    AttemptEnd,
    FaxFile,
    Job,
    LeaseLostError,
)

log = EventLogger("faxgate.worker")

# Values of `cause` in an attempt record besides the trunk's hangup causes
# (normal, busy, no_answer, not_a_fax, line_error).
CAUSE_FETCH = "fetch_failed"
CAUSE_DOCUMENT = "document_error"
CAUSE_INTERRUPTED = "interrupted"
CAUSE_INTERNAL = "internal_error"
CAUSE_TRUNK = "trunk_error"
BUSY = "busy"


class AttemptFailedError(FaxgateError):
    """An attempt failed before or during its call.

    `cause` goes into the attempt record. A `permanent` failure ends the job
    at once, because another attempt would fail the same way.
    """

    code = "attempt_failed"

    def __init__(self, message: str, cause: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        self.permanent = permanent


@dataclass
class Attempt:
    """The state of one running attempt."""

    job: Job
    started: float
    has_documents: bool
    in_call: bool = False
    pages: int | None = None
    progress_text: str = ""
    progress_task: asyncio.Task[None] | None = None
    log: EventLogger = field(default_factory=lambda: log)


def retry_delay(attempt: int, cause: str, base: float, busy_base: float, maximum: float) -> float:
    """Return the seconds to wait after failed attempt number `attempt` (1-based)."""
    start = busy_base if cause == BUSY else base
    return float(min(start * 2 ** (attempt - 1), max(maximum, start)))


def progress_text(progress: CallProgress) -> str:
    if progress.pages_total and progress.pages_done < progress.pages_total:
        return f"sending page {progress.pages_done + 1} of {progress.pages_total}"
    if progress.pages_total:
        return f"sent {progress.pages_done} of {progress.pages_total} pages"
    return f"sent {progress.pages_done} pages"


class Worker:
    """The component that sends queued outgoing faxes; it closes its parts when it stops."""

    name = "worker"

    def __init__(
        self,
        ctx: ServiceContext,
        dialer: Dialer,
        pipeline: DocumentPipeline,
        extractor: MailExtractor | None,
        fetcher: Fetcher,
    ) -> None:
        self.ctx = ctx
        self.config = ctx.config.worker
        self.dialer = dialer
        self.pipeline = pipeline
        self.extractor = extractor
        self.fetcher = fetcher
        self.owner = f"worker-{new_id()[:12]}"
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._attempts: dict[str, Attempt] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_error: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.ctx.config.data_dir

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._claim_loop(), name="worker.claim_loop")
        self._lease_task = asyncio.create_task(self._renew_loop(), name="worker.renew_leases")
        await self._notify_missed()
        log.info("worker.started", owner=self.owner, max_calls=self.config.max_calls)

    def wake(self) -> None:
        """Look for due jobs now, for example because one was just queued."""
        self._wake.set()

    def health(self) -> dict[str, Any]:
        running = self._loop_task is not None and not self._loop_task.done()
        status: dict[str, Any] = {
            "status": "ok" if running else "failing",
            "jobs_running": len(self._tasks),
            "calls_in_progress": sum(1 for a in self._attempts.values() if a.in_call),
            "trunk": self.dialer.status(),
        }
        if self._last_error:
            status["last_error"] = self._last_error
        return status

    async def stop(self) -> None:
        """Stop claiming, hand back jobs not yet calling, let calls finish within the timeout."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        for job_id, task in list(self._tasks.items()):
            attempt = self._attempts.get(job_id)
            if attempt is None or not attempt.in_call:
                task.cancel()
        pending = list(self._tasks.values())
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self.config.shutdown_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Leases are renewed until the last call has ended.
        if self._lease_task is not None:
            self._lease_task.cancel()
        for background in (self._loop_task, self._lease_task):
            if background is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await self.fetcher.close()
        await self.dialer.close()
        await self.pipeline.close()
        log.info("worker.stopped", owner=self.owner)

    # Claiming.

    async def _claim_loop(self) -> None:
        while True:
            try:
                await self._claim_due_jobs()
                await self._wait_for_work()
            except Exception as exc:  # the loop must survive a store hiccup
                self._last_error = f"claiming jobs failed: {exc}"
                log.exception("worker.claim_failed", error=exc)
                await asyncio.sleep(self.config.poll_interval)

    async def _claim_due_jobs(self) -> None:
        while len(self._tasks) < self.config.max_calls and not self._stopping:
            job = await self.ctx.store.claim_job(
                self.owner, self.config.lease, self.config.per_account_max_calls
            )
            if job is None:
                return
            task = asyncio.create_task(self._run(job), name=f"worker.job.{job.id}")
            self._tasks[job.id] = task
            task.add_done_callback(functools.partial(self._job_done, job.id))

    def _job_done(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(job_id, None)
        self._attempts.pop(job_id, None)
        self._wake.set()

    async def _wait_for_work(self) -> None:
        timeout = self.config.poll_interval
        if len(self._tasks) < self.config.max_calls:
            due = await self.ctx.store.next_due_time()
            now = self.ctx.clock.time()
            # A job already due that the claim passed over waits for a running
            # call to the same number or account to end, which wakes this loop.
            if due is not None and due > now:
                timeout = min(timeout, due - now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease / 3)
            try:
                await self.ctx.store.renew_leases(self.owner, self.config.lease)
            except Exception as exc:  # retried on the next beat
                log.exception("worker.lease_renewal_failed", error=exc)

    # One attempt.

    async def _run(self, job: Job) -> None:
        attempt = Attempt(
            job=job,
            started=self.ctx.clock.time(),
            has_documents=job.status != ATTACHING_FILES,
            log=log.bind(job_id=job.id, account_id=job.account_id, attempt=job.attempts),
        )
        self._attempts[job.id] = attempt
        if job.resumed:
            attempt.log.info("job.resumed", status=job.status, call_started=job.call_started)
        try:
            end = await self._attempt_end(attempt)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(attempt))
            raise
        except LeaseLostError as exc:
            attempt.log.warning("job.lease_lost", error=exc)
            return
        await asyncio.shield(self._finish(attempt, end))

    async def _attempt_end(self, attempt: Attempt) -> AttemptEnd:
        job = attempt.job
        if job.resumed and job.call_started is not None:
            return self._failure_end(
                attempt,
                AttemptFailedError(
                    "faxgate stopped during the call, so it is unknown whether the far end "
                    "received the fax",
                    CAUSE_INTERRUPTED,
                ),
            )
        try:
            outcome = await self._send(attempt)
        except AttemptFailedError as exc:
            return self._failure_end(attempt, exc)
        except (LeaseLostError, asyncio.CancelledError):
            raise
        except Exception as exc:  # any bug must still end the attempt
            attempt.log.exception("job.attempt_crashed", error=exc)
            failure = AttemptFailedError(f"internal error: {exc}", CAUSE_INTERNAL)
            return self._failure_end(attempt, failure)
        return self._outcome_end(attempt, outcome)

    async def _send(self, attempt: Attempt) -> CallOutcome:
        job = attempt.job
        sources = await self._sources(attempt)
        await self._progress(attempt, "rendering the document", PROCESSING)
        rendered = await self._render(attempt, sources)
        faxbox = await self._faxbox(job)
        sent_path = await self._stamp(attempt, rendered, faxbox)

        identity = self._identity(job, faxbox)
        await self.ctx.store.mark_call_started(job.id, self.owner)
        attempt.in_call = True
        attempt.log.info("job.calling", to_number=job.to_number, pages=rendered.pages)
        try:
            return await self.dialer.send(
                sent_path,
                identity,
                job.to_number,
                lambda progress: self._on_progress(attempt, progress),
            )
        except DocumentError as exc:
            raise AttemptFailedError(
                f"the fax image cannot be sent: {exc.message}", CAUSE_DOCUMENT, permanent=True
            ) from exc
        except TrunkError as exc:
            attempt.log.error("job.trunk_failed", error=exc)
            raise AttemptFailedError(
                f"the call could not be placed: {exc.message}", CAUSE_TRUNK
            ) from exc

    async def _sources(self, attempt: Attempt) -> list[SourceDocument]:
        job = attempt.job
        if not attempt.has_documents:
            await self._attach(attempt)
        originals = await self.ctx.store.list_fax_files(job.id, ORIGINAL)
        if not originals:
            raise AttemptFailedError(
                "the job has no document to fax", CAUSE_DOCUMENT, permanent=True
            )
        return [
            SourceDocument(self.data_dir / item.path, item.content_type, item.filename)
            for item in originals
        ]

    async def _attach(self, attempt: Attempt) -> None:
        """Fetch the job's document URL or extract its email's documents, and store them."""
        job = attempt.job
        document = job.doc.get("document")
        if isinstance(document, dict) and document.get("url"):
            await self._progress(attempt, "fetching the document")
            parts = [await self._fetch(attempt, document)]
            updates: dict[str, Any] = {}
        elif job.message_id is not None:
            await self._progress(attempt, "reading the email")
            parts, updates = await self._extract(job)
        else:
            raise AttemptFailedError(
                "the job has neither a document URL nor an email to take documents from",
                CAUSE_DOCUMENT,
                permanent=True,
            )
        files = await asyncio.to_thread(write_originals, self.data_dir, job.id, parts)
        await self.ctx.store.attach_job_files(job.id, self.owner, files, updates)
        attempt.has_documents = True
        attempt.log.info("job.documents_attached", documents=len(files))

    async def _fetch(self, attempt: Attempt, document: dict[str, Any]) -> ExtractedPart:
        request = FetchRequest.from_document(document)
        try:
            fetched = await self.fetcher.fetch(request)
        except FetchError as exc:
            attempt.log.warning("job.fetch_failed", url=request.url, code=exc.code, error=exc)
            raise AttemptFailedError(exc.message, CAUSE_FETCH) from exc
        try:
            content_type = self.pipeline.check(
                fetched.data, fetched.filename, fetched.content_type
            )
        except DocumentError as exc:
            raise AttemptFailedError(
                f"the document fetched from {request.url} cannot be faxed: {exc.message}",
                CAUSE_DOCUMENT,
                permanent=True,
            ) from exc
        return ExtractedPart(fetched.data, content_type, fetched.filename)

    async def _extract(self, job: Job) -> tuple[list[ExtractedPart], dict[str, Any]]:
        assert job.message_id is not None
        if self.extractor is None:
            raise AttemptFailedError(
                "this server has no mail reader, so email jobs cannot be sent",
                CAUSE_DOCUMENT,
                permanent=True,
            )
        message = await self.ctx.store.get_smtp_message(job.message_id)
        if message is None:
            raise AttemptFailedError(
                f"the email {job.message_id} of this job is no longer stored",
                CAUSE_DOCUMENT,
                permanent=True,
            )
        options = job.doc.get("extract_options")
        if not isinstance(options, dict):
            faxbox = await self._faxbox(job)
            options = {
                "min_image_bytes": self.ctx.config.smtp.min_image_bytes,
                "fax_text_body": bool(faxbox.get("smtp_fax_text_body")),
                "subject_as_cover": self.ctx.config.smtp.subject_as_cover,
            }
        raw = await asyncio.to_thread((self.data_dir / message.path).read_bytes)
        try:
            parts = await asyncio.to_thread(self.extractor.extract, raw, options)
        except DocumentError as exc:
            raise AttemptFailedError(
                f"the email cannot be faxed: {exc.message}", CAUSE_DOCUMENT, permanent=True
            ) from exc
        if not parts:
            raise AttemptFailedError(
                "the email has no attachment or text that can be faxed",
                CAUSE_DOCUMENT,
                permanent=True,
            )
        return parts, {}

    async def _render(self, attempt: Attempt, sources: list[SourceDocument]) -> RenderedFax:
        job = attempt.job
        existing = {item.kind: item for item in await self.ctx.store.list_fax_files(job.id)}
        if TIFF in existing and PDF in existing and job.pages:
            attempt.pages = job.pages
            return RenderedFax(
                self.data_dir / existing[TIFF].path, self.data_dir / existing[PDF].path, job.pages
            )
        out_dir = self.data_dir / job_dir(job.id) / "rendered"
        started = time.monotonic()
        try:
            rendered = await self.pipeline.render(sources, out_dir, self.ctx.config.fax.resolution)
        except DocumentError as exc:
            attempt.log.warning("job.render_failed", code=exc.code, error=exc)
            raise AttemptFailedError(
                _render_failure_message(exc, len(sources)), CAUSE_DOCUMENT, permanent=True
            ) from exc
        files = [
            self._file_row(TIFF, rendered.tiff_path, "image/tiff"),
            self._file_row(PDF, rendered.pdf_path, "application/pdf"),
        ]
        await self.ctx.store.record_rendering(job.id, self.owner, files, rendered.pages)
        self.ctx.metrics.render_duration.observe(time.monotonic() - started)
        attempt.pages = rendered.pages
        job.pages = rendered.pages
        attempt.log.info("job.rendered", pages=rendered.pages)
        return rendered

    async def _stamp(
        self, attempt: Attempt, rendered: RenderedFax, faxbox: dict[str, Any]
    ) -> Path:
        job = attempt.job
        header = PageHeader(
            station_id=self._identity(job, faxbox).station_id,
            sender_name=str(job.doc.get("from_name") or faxbox.get("caller_name") or ""),
            destination=job.to_number,
            timezone=str(job.doc.get("fax_timezone") or faxbox.get("fax_timezone") or "UTC"),
            when=self.ctx.clock.time(),
        )
        out_path = self.data_dir / job_dir(job.id) / "sent.tif"
        try:
            stamped = await self.pipeline.stamp_header(rendered.tiff_path, out_path, header)
        except DocumentError as exc:
            raise AttemptFailedError(
                f"the page header could not be stamped: {exc.message}",
                CAUSE_DOCUMENT,
                permanent=True,
            ) from exc
        await self.ctx.store.record_rendering(
            job.id, self.owner, [self._file_row(SENT_TIFF, stamped, "image/tiff")], rendered.pages
        )
        return stamped

    def _file_row(self, kind: str, path: Path, content_type: str) -> FaxFile:
        try:
            stored = str(path.relative_to(self.data_dir))
        except ValueError:
            stored = str(path)
        return FaxFile(kind=kind, path=stored, content_type=content_type, size=path.stat().st_size)

    async def _faxbox(self, job: Job) -> dict[str, Any]:
        return await self._faxbox_of(job.account_id, job.faxbox_id)

    async def _faxbox_of(self, account_id: str, faxbox_id: str | None) -> dict[str, Any]:
        if not faxbox_id:
            return {}
        try:
            return await self.ctx.store.get_faxbox(account_id, faxbox_id)
        except NotFoundError:
            return {}

    def _identity(self, job: Job, faxbox: dict[str, Any]) -> CallIdentity:
        doc = job.doc
        station = (
            doc.get("fax_identity_number")
            or faxbox.get("fax_identity")
            or job.from_number
            or self.ctx.config.fax.station_id
        )
        header = doc.get("fax_header") or faxbox.get("fax_header") or doc.get("from_name") or ""
        return CallIdentity(
            # T.30 sends the station id (TSI) as at most 20 printable ASCII
            # characters; the engine stamps at most 50 header characters.
            station_id=_printable_ascii(str(station))[:20],
            header_text=str(header)[:50],
            caller_id=job.from_number,
            caller_name=str(doc.get("from_name") or faxbox.get("caller_name") or ""),
        )

    # Progress.

    async def _progress(self, attempt: Attempt, text: str, status: str | None = None) -> None:
        await self.ctx.store.set_job_progress(attempt.job.id, self.owner, text, status)

    def _on_progress(self, attempt: Attempt, progress: CallProgress) -> None:
        """Store the call's progress, coalescing updates that arrive while one is written."""
        attempt.progress_text = progress_text(progress)
        if attempt.progress_task is None or attempt.progress_task.done():
            attempt.progress_task = asyncio.create_task(
                self._write_progress(attempt), name=f"worker.progress.{attempt.job.id}"
            )

    async def _write_progress(self, attempt: Attempt) -> None:
        written = ""
        while attempt.in_call and attempt.progress_text != written:
            written = attempt.progress_text
            try:
                await self._progress(attempt, written)
            except LeaseLostError:
                return

    # Ending an attempt.

    def _outcome_end(self, attempt: Attempt, outcome: CallOutcome) -> AttemptEnd:
        metrics = self.ctx.metrics
        metrics.pages_sent.inc(outcome.pages_sent)
        seconds = outcome.tx_result.get("call_duration")
        if isinstance(seconds, int | float):
            metrics.call_duration.labels(direction="outgoing").observe(seconds)
        tx_result = dict(outcome.tx_result)
        tx_result.setdefault("success", outcome.success)
        tx_result.setdefault("error_message", outcome.error_message)
        tx_result.setdefault("pages_sent", outcome.pages_sent)
        if outcome.success:
            now = self.ctx.clock.time()
            return AttemptEnd(
                status=COMPLETED,
                due=now,
                doc_updates={"tx_result": tx_result},
                attempt=self._attempt_record(attempt, outcome.hangup_cause, ""),
                delivered=now,
            )
        message = outcome.error_message or f"the call ended: {outcome.hangup_cause}"
        failure = AttemptFailedError(message, outcome.hangup_cause)
        return self._failure_end(attempt, failure, tx_result)

    def _failure_end(
        self,
        attempt: Attempt,
        failure: AttemptFailedError,
        tx_result: dict[str, Any] | None = None,
    ) -> AttemptEnd:
        job = attempt.job
        now = self.ctx.clock.time()
        result = tx_result or _no_call_result(failure.message)
        record = self._attempt_record(attempt, failure.cause, failure.message)
        # `retries` is the total number of attempts; 0 still makes one.
        if failure.permanent or job.attempts >= max(job.retries, 1):
            return AttemptEnd(FAILED, now, {"tx_result": result}, record)
        delay = retry_delay(
            job.attempts,
            failure.cause,
            self.config.retry_delay,
            self.config.busy_retry_delay,
            self.config.retry_delay_max,
        )
        record["retry_in"] = round(delay, 3)
        status = PENDING if attempt.has_documents else ATTACHING_FILES
        return AttemptEnd(status, now + delay, {"tx_result": result}, record)

    def _attempt_record(self, attempt: Attempt, cause: str, message: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "attempt": attempt.job.attempts,
            "started": _gregorian_ms(attempt.started),
            "ended": _gregorian_ms(self.ctx.clock.time()),
            "cause": cause,
        }
        if message:
            record["error_message"] = message
        return record

    async def _finish(self, attempt: Attempt, end: AttemptEnd) -> None:
        attempt.in_call = False
        job = attempt.job
        try:
            await self.ctx.store.finish_attempt(job.id, self.owner, end)
        except LeaseLostError as exc:
            attempt.log.warning("job.lease_lost", error=exc)
            return
        result = "success" if end.status == COMPLETED else str(end.attempt["cause"])
        self.ctx.metrics.fax_attempts.labels(result=result).inc()
        attempt.log.info(
            "job.attempt_ended",
            status=end.status,
            cause=end.attempt["cause"],
            error=end.attempt.get("error_message", ""),
            retry_in=end.attempt.get("retry_in", ""),
        )
        if end.status in (COMPLETED, FAILED):
            await self._notify(attempt)

    async def _notify(self, attempt: Attempt) -> None:
        job = attempt.job
        await self._notify_finished(job.account_id, job.id, attempt.log)

    async def _notify_finished(self, account_id: str, fax_id: str, job_log: EventLogger) -> None:
        """Queue the result notifications of a finished job; a failure only logs.

        The fax is marked notified once they are queued. A fax left unmarked
        by a crash is notified again at the next start, and the notifier's
        dedupe keys keep a repeated call from mailing anyone twice.
        """
        notifier = self.ctx.components.get("notifier")
        if notifier is None:
            return
        try:
            row = await self.ctx.store.get_fax_row(account_id, fax_id)
            pdfs = await self.ctx.store.list_fax_files(fax_id, PDF)
            pdf_path = self.data_dir / pdfs[0].path if pdfs else None
            faxbox = await self._faxbox_of(account_id, row.get("faxbox_id"))
            fax = fax_view(row, OUTBOX)
            if fax.get("source") == "email":
                fax = await self._notify_mail_sender(account_id, notifier, faxbox, fax)
            await notifier.fax_finished(account_id, faxbox or None, fax, pdf_path)
            await self.ctx.store.mark_fax_notified(fax_id)
        except Exception as exc:  # the fax is finished either way
            job_log.exception("job.notify_failed", error=exc)

    async def _notify_missed(self) -> None:
        """Queue notifications that a crash cut off between a job's end and its notice."""
        for account_id, fax_id in await self.ctx.store.list_unnotified_faxes():
            job_log = log.bind(job_id=fax_id, account_id=account_id)
            job_log.info("job.notify_resumed")
            await self._notify_finished(account_id, fax_id, job_log)

    async def _notify_mail_sender(
        self, account_id: str, notifier: Any, faxbox: dict[str, Any], fax: dict[str, Any]
    ) -> dict[str, Any]:
        """Tell the sender of an emailed fax what happened, unless the sender may be forged.

        A sender gets mail only when the faxbox's permission list names it or
        the session logged in for the faxbox: a faxbox that admits every
        sender would otherwise mail anyone whose address a spammer forged.
        Mail that never became a fax gets the gateway's failure notice; a fax
        that was called gets the result mail. Returns the fax with the sender
        removed from the result mail's recipients when it gets none.
        """
        sender = str(fax.get("sender") or "")
        allowed = bool(fax.get("sender_authenticated")) or (
            bool(sender) and sender_allowed(list(faxbox.get("smtp_permission_list") or []), sender)
        )
        history = fax.get("attempt_history") or [{}]
        not_faxable = fax["status"] == FAILED and history[-1].get("cause") == CAUSE_DOCUMENT
        if allowed and not not_faxable:
            return fax

        if not_faxable:
            reason = str(history[-1].get("error_message") or "the document could not be read")
            # The notice names the mail's Message-ID in In-Reply-To, so that the
            # sender's mail program shows it next to the mail it replies to.
            message_id = await self._mail_message_id(account_id, fax)
            await notifier.smtp_failure(
                account_id,
                faxbox,
                sender,
                {**fax, "message_id": message_id},
                reason,
                sender_allowed=allowed,
            )
        notifications = dict(fax.get("notifications") or {})
        email = dict(notifications.get("email") or {})
        email["send_to"] = [
            address for address in _as_list(email.get("send_to")) if address != sender
        ]
        notifications["email"] = email
        return {**fax, "notifications": notifications}

    async def _mail_message_id(self, account_id: str, fax: dict[str, Any]) -> str | None:
        """Return the Message-ID header of the mail that an emailed fax came from.

        The job keeps only the id of the mail's smtplog entry, which has the
        header. Returns None when the entry or the header is missing.
        """
        entry_id = fax.get("smtplog_id")
        if not isinstance(entry_id, str) or not entry_id:
            return None
        try:
            entry = await self.ctx.store.get_smtplog_entry(account_id, entry_id)
        except NotFoundError:
            return None
        message_id = entry.get("message_id")
        return message_id if isinstance(message_id, str) and message_id else None

    async def _abandon(self, attempt: Attempt) -> None:
        """End an attempt cut off by shutdown: hand it back, or fail it if the call had started."""
        job = attempt.job
        try:
            if not attempt.in_call and await self.ctx.store.release_job(job.id, self.owner):
                attempt.log.info("job.released")
                return
            failure = AttemptFailedError(
                "faxgate stopped during the call, so it is unknown whether the far end "
                "received the fax",
                CAUSE_INTERRUPTED,
            )
            await self._finish(attempt, self._failure_end(attempt, failure))
        except Exception as exc:  # the lease runs out and another worker resumes
            attempt.log.exception("job.abandon_failed", error=exc)


def _render_failure_message(error: DocumentError, source_count: int) -> str:
    """Return a render failure's reason, starting with the file that failed.

    The renderer puts the failing input's `filename` and `input_index` in the
    error's details. Without a file name, a job of several documents names the
    document by its position.
    """
    filename = error.details.get("filename")
    index = error.details.get("input_index")
    if filename:
        if error.message.startswith(f"{filename} "):
            return error.message  # the message names the file already
        return f"{filename}: {error.message}"
    if isinstance(index, int) and source_count > 1:
        return f"document {index + 1} of {source_count}: {error.message}"
    return f"the document cannot be faxed: {error.message}"


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value or []]


def _no_call_result(message: str) -> dict[str, Any]:
    return {
        "success": False,
        "error_message": message,
        "pages_sent": 0,
        "time_elapsed": 0,
        "fax_speed": 0,
        "fax_error_correction": False,
        "fax_receiver_id": "",
        "fax_bad_rows": 0,
    }


def _printable_ascii(text: str) -> str:
    return "".join(char for char in text if char.isascii() and char.isprintable())


def _gregorian_ms(unix_seconds: float) -> float:
    return round(unix_seconds + GREGORIAN_OFFSET, 3)

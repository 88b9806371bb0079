"""The loopback trunk: calls are answered inside faxgate by a simulated far end.

The far end is a real spandsp T.30 receiver on a simulated analogue line, so
every figure in the result was measured by a real fax exchange. How it
behaves (answer, busy, no answer, voice, hang up after N pages, line noise)
comes from the first LoopbackRule whose pattern matches the dialled number.

A dialled number that the inbound handler accepts (a faxbox on this server)
is received into that handler's sink. Any other number is received into
`data_dir/received/`, and the result's `received_path` names the file, so a
person can open exactly what the far machine printed.

The audio runs on a thread pool as fast as the CPU allows. Busy and no
answer take no audio at all: their line time is a fixed, simulated figure.
Progress callbacks are marshalled onto the event loop, so callers and sinks
need no locking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from faxgate.errors import TrunkError
from faxgate.fax.line import LineEndpoint, LineImpairment, run_call
from faxgate.fax.result import (
    HANGUP_BUSY,
    HANGUP_LINE_ERROR,
    HANGUP_NO_ANSWER,
    RESULT_CODE_NO_T30,
    FaxProgress,
    FaxResult,
)
from faxgate.fax.session import FaxSession
from faxgate.fax.tiff import FaxTiffInfo, validate_fax_tiff
from faxgate.trunks.base import (
    FaxIdentity,
    InboundHandler,
    InboundSink,
    ProgressCallback,
    Trunk,
    validate_station_id,
)
from faxgate.trunks.loopback_far_end import FarEndFax, VoiceAnswerer
from faxgate.trunks.loopback_rules import (
    BEHAVIOUR_BUSY,
    BEHAVIOUR_HANGUP,
    BEHAVIOUR_NO_ANSWER,
    BEHAVIOUR_VOICE,
    LoopbackRule,
    match_rule,
    parse_rules,
)

__all__ = ["LoopbackRule", "LoopbackTrunk", "parse_rules"]

logger = logging.getLogger(__name__)

BUSY_SECONDS: Final = 5.0
"""Simulated line time of a busy call: about 2 s of call setup and 3 s of busy tone."""

NO_ANSWER_SECONDS: Final = 60.0
"""Simulated ring time before an unanswered call is given up."""

MAX_LINE_SECONDS_PER_PAGE: Final = 600.0
"""Guard against a call that never ends: line time allowed per page, plus one page's worth.

A dense fine page at 2400 bit/s takes about 5 minutes; T.30's own timers
end any real exchange well before this.
"""

CLOSE_TIMEOUT_SECONDS: Final = 10.0
"""How long `close` waits for running calls after telling them to hang up."""

# A faxbox on this server answers like a clean fax machine with ECM, whatever the rules say.
_FAXBOX_RULE: Final = LoopbackRule(pattern="*")


@dataclass
class _CallPlan:
    """Everything the worker thread needs for one call."""

    tiff_path: Path
    document: FaxTiffInfo
    identity: FaxIdentity
    destination: str
    rule: LoopbackRule
    far_end_path: Path
    far_end_station_id: str
    on_progress: ProgressCallback | None
    on_far_end_progress: ProgressCallback | None


@dataclass
class _CallOutcome:
    result: FaxResult
    far_end_result: FaxResult | None


def _log_event(level: int, event: str, *, exc_info: bool = False, **context: Any) -> None:
    """Log `event` with key=value context.

    The `event` and `context` record attributes are what faxgate's log
    formatters print; the message carries the same for plain formatters.
    """
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event, *(f"{key}={value}" for key, value in context.items())])
    logger.log(level, "%s", text, extra={"event": event, "context": context},
               exc_info=exc_info)


def _default_station_id(destination: str) -> str:
    """Return the CSI a far end answers with when its rule names none: its number."""
    candidate = destination[-20:]
    try:
        return validate_station_id(candidate)
    except ValueError:
        return "".join(c for c in candidate if c.isascii() and c.isprintable())


def _unanswered_result(document: FaxTiffInfo, hangup_cause: str, seconds: float,
                       time_elapsed: float) -> FaxResult:
    if hangup_cause == HANGUP_BUSY:
        text, message = "Busy", "The line was busy."
    else:
        text, message = "No answer", f"Nobody answered within {seconds:g} seconds."
    return FaxResult(
        success=False, result_code=RESULT_CODE_NO_T30, result_text=text,
        error_message=message, pages_sent=0, pages_total=document.pages,
        time_elapsed=time_elapsed, call_duration=seconds, fax_speed=0,
        fax_error_correction=False, fax_receiver_id="", fax_bad_rows=0, ecm_retries=0,
        resolution=document.resolution, encoding="", hangup_cause=hangup_cause,
        remote_station_id="",
    )


def _failed_far_end_result(message: str) -> FaxResult:
    """Build the receive result for a sink whose call failed inside faxgate."""
    return FaxResult(
        success=False, result_code=RESULT_CODE_NO_T30, result_text="Internal error",
        error_message=message, pages_sent=0, pages_total=0, time_elapsed=0.0,
        call_duration=0.0, fax_speed=0, fax_error_correction=False, fax_receiver_id="",
        fax_bad_rows=0, ecm_retries=0, resolution="", encoding="",
        hangup_cause=HANGUP_LINE_ERROR, remote_station_id="",
    )


def _run_call(plan: _CallPlan, stop: threading.Event) -> _CallOutcome:
    """Carry one call on the calling thread; blocks until the line is released."""
    started = time.perf_counter()
    behaviour = plan.rule.behaviour
    if behaviour == BEHAVIOUR_BUSY:
        return _CallOutcome(_unanswered_result(plan.document, HANGUP_BUSY, BUSY_SECONDS,
                                               time.perf_counter() - started), None)
    if behaviour == BEHAVIOUR_NO_ANSWER:
        return _CallOutcome(_unanswered_result(plan.document, HANGUP_NO_ANSWER,
                                               NO_ANSWER_SECONDS,
                                               time.perf_counter() - started), None)

    caller = FaxSession.sender(plan.tiff_path, plan.document,
                               station_id=plan.identity.station_id,
                               header_text=plan.identity.header_text,
                               on_progress=plan.on_progress)
    far_session: FaxSession | None = None
    try:
        far_end: LineEndpoint
        if behaviour == BEHAVIOUR_VOICE:
            far_end = VoiceAnswerer()
        else:
            plan.far_end_path.parent.mkdir(parents=True, exist_ok=True)
            far_session = FaxSession.receiver(plan.far_end_path,
                                              station_id=plan.far_end_station_id,
                                              ecm=plan.rule.ecm)
            fax_machine = FarEndFax(far_session, plan.rule.pages_before_hangup
                                    if behaviour == BEHAVIOUR_HANGUP else None)
            far_session.set_progress_callback(
                fax_machine.progress_hook(plan.on_far_end_progress))
            far_end = fax_machine
        impairment = (LineImpairment(plan.rule.snr_db)
                      if plan.rule.snr_db is not None else None)
        max_seconds = MAX_LINE_SECONDS_PER_PAGE * (plan.document.pages + 1)
        line = run_call(caller, far_end, impairment=impairment, max_seconds=max_seconds,
                        stop=stop)
        if line.timed_out:
            _log_event(logging.ERROR, "loopback.call_timed_out", destination=plan.destination,
                       line_seconds=round(line.line_seconds))
        return _results(plan, caller, far_session, line.caller_seconds,
                        time.perf_counter() - started)
    finally:
        caller.close()
        if far_session is not None:
            far_session.close()


def _results(plan: _CallPlan, caller: FaxSession, far_session: FaxSession | None,
             line_seconds: float, elapsed: float) -> _CallOutcome:
    if far_session is None:
        return _CallOutcome(caller.result(time_elapsed=elapsed, call_duration=line_seconds),
                            None)
    received = str(plan.far_end_path) if plan.far_end_path.exists() else None
    far_result = far_session.result(time_elapsed=elapsed, call_duration=line_seconds,
                                    received_path=received)
    result = caller.result(time_elapsed=elapsed, call_duration=line_seconds,
                           received_path=received)
    # A sender on a real line never learns how many rows the far end could not
    # decode. Here the far end runs in this process, so its count is reported.
    result.fax_bad_rows = max(result.fax_bad_rows, far_result.fax_bad_rows)
    return _CallOutcome(result, far_result)


def _post_to_loop(loop: asyncio.AbstractEventLoop,
                  callback: ProgressCallback | None) -> ProgressCallback | None:
    """Wrap `callback` so that it runs on `loop`, whichever thread reports progress."""
    if callback is None:
        return None

    def post(progress: FaxProgress) -> None:
        # RuntimeError: the loop is closed, so nobody is waiting for progress any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, progress)

    return post


class LoopbackTrunk(Trunk):
    """A trunk whose calls are answered by simulated far ends inside faxgate.

    At most `channels` calls run at once; further `send` calls wait for a
    free channel. The calls run on `executor`, or on a thread pool of
    `channels` threads that the trunk owns when `executor` is None.
    """

    name = "loopback"

    def __init__(self, data_dir: Path, rules: Sequence[LoopbackRule] = (),
                 channels: int = 4,
                 executor: concurrent.futures.Executor | None = None) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, not {channels}")
        self.data_dir = data_dir
        self.rules = list(rules)
        self.channels = channels
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=channels, thread_name_prefix="faxgate-loopback")
        self._free_channels = asyncio.Semaphore(channels)
        self._in_use = 0
        self._calls_total = 0
        self._inbound: InboundHandler | None = None
        self._running: dict[asyncio.Task[FaxResult], threading.Event] = {}
        self._closed = False

    def set_inbound_handler(self, handler: InboundHandler | None) -> None:
        self._inbound = handler

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "channels_total": self.channels,
                "channels_in_use": self._in_use, "calls_total": self._calls_total}

    def rule_for(self, destination: str) -> LoopbackRule:
        """Return the rule that decides how `destination` answers."""
        return match_rule(self.rules, destination)

    async def send(self, tiff_path: Path, identity: FaxIdentity, destination: str,
                   on_progress: ProgressCallback | None = None) -> FaxResult:
        """Fax `tiff_path` to the simulated far end for `destination`.

        Waits for a free channel first. `on_progress` runs on the event
        loop. Cancelling the call hangs up both ends, and a faxbox sink
        still gets its on_complete.
        """
        if self._closed:
            raise TrunkError("the loopback trunk is closed; no more calls can be placed")
        document = await asyncio.to_thread(validate_fax_tiff, tiff_path)
        async with self._free_channels:
            self._in_use += 1
            try:
                return await self._place_call(tiff_path, document, identity, destination,
                                              on_progress)
            finally:
                self._in_use -= 1

    async def _place_call(self, tiff_path: Path, document: FaxTiffInfo,
                          identity: FaxIdentity, destination: str,
                          on_progress: ProgressCallback | None) -> FaxResult:
        loop = asyncio.get_running_loop()
        sink = await self._offer(destination, identity.caller_id)
        rule = _FAXBOX_RULE if sink is not None else self.rule_for(destination)
        plan = _CallPlan(
            tiff_path=tiff_path, document=document, identity=identity,
            destination=destination, rule=rule,
            far_end_path=sink.tiff_path if sink is not None else self._received_path(destination),
            far_end_station_id=(sink.station_id if sink is not None
                                else rule.station_id or _default_station_id(destination)),
            on_progress=_post_to_loop(loop, on_progress),
            on_far_end_progress=_post_to_loop(loop, sink.on_progress if sink else None),
        )
        stop = threading.Event()
        task = asyncio.create_task(self._carry(plan, sink, stop),
                                   name=f"loopback-call-{destination}")
        self._running[task] = stop
        task.add_done_callback(self._running.pop)
        self._calls_total += 1
        try:
            # Shielded so that a cancelled send still hangs up cleanly and the
            # sink still hears how the call ended.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([task])
            raise

    async def _offer(self, destination: str, from_number: str) -> InboundSink | None:
        if self._inbound is None:
            return None
        return await self._inbound.offer(destination, from_number)

    def _received_path(self, destination: str) -> Path:
        folder = self.data_dir / "received"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        digits = "".join(c for c in destination if c.isdigit()) or "unknown"
        return folder / f"{stamp}-{digits}-{uuid.uuid4().hex[:8]}.tif"

    async def _carry(self, plan: _CallPlan, sink: InboundSink | None,
                     stop: threading.Event) -> FaxResult:
        loop = asyncio.get_running_loop()
        _log_event(logging.INFO, "loopback.call_started", destination=plan.destination,
                   behaviour=plan.rule.behaviour, pages=plan.document.pages)
        try:
            outcome = await loop.run_in_executor(self._executor, _run_call, plan, stop)
        except Exception as exc:
            _log_event(logging.ERROR, "loopback.call_failed", exc_info=True,
                       destination=plan.destination, error=exc)
            if sink is not None:
                await self._complete_sink(sink, plan, _failed_far_end_result(
                    f"The loopback call failed inside faxgate: {exc}"))
            raise TrunkError(f"the loopback call to {plan.destination} failed: {exc}") from exc

        result = outcome.result
        _log_event(logging.INFO, "loopback.call_finished", destination=plan.destination,
                   success=result.success, result_code=result.result_code,
                   pages_sent=result.pages_sent, pages_total=result.pages_total,
                   hangup_cause=result.hangup_cause,
                   line_seconds=round(result.call_duration, 1),
                   wall_seconds=round(result.time_elapsed, 3),
                   received_path=result.received_path)
        if sink is not None and outcome.far_end_result is not None:
            await self._complete_sink(sink, plan, outcome.far_end_result)
        return result

    @staticmethod
    async def _complete_sink(sink: InboundSink, plan: _CallPlan, result: FaxResult) -> None:
        try:
            await sink.on_complete(result)
        except Exception:
            # The far end did receive the fax, so the sender's result is unchanged.
            # The TIFF stays at far_end_path for a person to recover.
            _log_event(logging.ERROR, "loopback.inbound_delivery_failed", exc_info=True,
                       destination=plan.destination, tiff_path=plan.far_end_path)

    async def close(self) -> None:
        """Refuse new calls, hang up running ones and wait for them (bounded)."""
        self._closed = True
        running = list(self._running.items())
        for _task, stop in running:
            stop.set()
        if running:
            _done, pending = await asyncio.wait([task for task, _ in running],
                                                timeout=CLOSE_TIMEOUT_SECONDS)
            if pending:
                _log_event(logging.ERROR, "loopback.close_timed_out", running_calls=len(pending))
        if self._own_executor:
            self._executor.shutdown(wait=False)

"""Real fax exchanges through the loopback trunk, one per far-end behaviour."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fax_documents import make_fax_tiff

from faxgate.errors import DocumentError, TrunkError
from faxgate.fax.result import FaxProgress, FaxResult
from faxgate.fax.tiff import count_row_differences, read_fax_pages
from faxgate.trunks.base import FaxIdentity, InboundSink
from faxgate.trunks.loopback import LoopbackRule, LoopbackTrunk

T = TypeVar("T")

IDENTITY = FaxIdentity(station_id="+1 202 555 0100", header_text="",
                       caller_id="+12025550100", caller_name="Accounts")

RULES = [
    LoopbackRule(pattern="+1555000*", behaviour="busy"),
    LoopbackRule(pattern="+1555001*", behaviour="no_answer"),
    LoopbackRule(pattern="+1555002*", behaviour="voice"),
    LoopbackRule(pattern="+1555003*", behaviour="hangup", pages_before_hangup=2),
    LoopbackRule(pattern="+1555004*", snr_db=22, ecm=False),
    LoopbackRule(pattern="+1555005*", ecm=False),
    LoopbackRule(pattern="+44*", station_id="+44 20 7946 0000"),
]


@pytest.fixture
async def trunk(tmp_path: Path) -> AsyncIterator[LoopbackTrunk]:
    loopback = LoopbackTrunk(tmp_path / "data", RULES, channels=2, executor=None)
    yield loopback
    await loopback.close()


class RecordingSink:
    """An inbound sink that records what the trunk delivers, and on which thread."""

    def __init__(self, tiff_path: Path, station_id: str) -> None:
        self.tiff_path = tiff_path
        self.station_id = station_id
        self.progress: list[tuple[int, FaxProgress]] = []
        self.results: list[FaxResult] = []

    def on_progress(self, progress: FaxProgress) -> None:
        self.progress.append((threading.get_ident(), progress))

    async def on_complete(self, result: FaxResult) -> None:
        self.results.append(result)


class Inbox:
    """An inbound handler that accepts calls to the numbers it has sinks for."""

    def __init__(self, sinks: dict[str, RecordingSink]) -> None:
        self.sinks = sinks
        self.offers: list[tuple[str, str]] = []

    async def offer(self, to_number: str, from_number: str) -> InboundSink | None:
        self.offers.append((to_number, from_number))
        return self.sinks.get(to_number)


@pytest.mark.parametrize(("pages", "resolution"),
                         [(1, "standard"), (1, "fine"), (5, "standard"), (5, "fine")])
async def test_clean_line_arrives_intact(trunk: LoopbackTrunk, tmp_path: Path, pages: int,
                                         resolution: str) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", pages, resolution)

    result = await trunk.send(sent, IDENTITY, "+442079460000")

    assert result.success, result.error_message
    assert result.result_code == 0
    assert result.error_message == ""
    assert result.pages_sent == pages
    assert result.pages_total == pages
    assert result.fax_speed == 14400
    assert result.fax_error_correction is True
    assert result.fax_receiver_id == "+44 20 7946 0000"
    assert result.resolution == resolution
    assert result.encoding == "T.6"
    assert result.hangup_cause == "normal"
    assert result.call_duration > 10 * pages
    assert result.time_elapsed < result.call_duration
    assert result.received_path is not None
    sent_pages = read_fax_pages(sent)
    received_pages = read_fax_pages(Path(result.received_path))
    assert len(received_pages) == pages
    for original, printed in zip(sent_pages, received_pages, strict=True):
        assert printed.height == original.height
        assert count_row_differences(original, printed) == 0


async def test_received_under_data_dir(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    result = await trunk.send(sent, IDENTITY, "+4930901820")

    assert result.received_path is not None
    received = Path(result.received_path)
    assert received.parent == tmp_path / "data" / "received"
    assert "4930901820" in received.name
    assert result.fax_receiver_id == "+4930901820"


async def test_tx_result_dict_fields(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    result = (await trunk.send(sent, IDENTITY, "+4930901820")).to_dict()

    for field in ("success", "error_message", "pages_sent", "time_elapsed", "fax_speed",
                  "fax_error_correction", "fax_receiver_id", "fax_bad_rows", "result_code",
                  "result_text", "pages_total", "ecm_retries", "resolution", "encoding",
                  "call_duration", "hangup_cause"):
        assert field in result
    assert "received_path" not in result


async def test_busy_line(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "standard")

    result = await trunk.send(sent, IDENTITY, "+15550001234")

    assert result.success is False
    assert result.hangup_cause == "busy"
    assert result.result_code == -1
    assert result.error_message == "The line was busy."
    assert result.pages_sent == 0
    assert result.pages_total == 2
    assert result.call_duration == pytest.approx(5.0)
    assert result.received_path is None


async def test_call_events_logged(trunk: LoopbackTrunk, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faxgate.trunks.loopback")
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    await trunk.send(sent, IDENTITY, "+15550001234")

    events = [(record.__dict__["event"], record.__dict__["context"])
              for record in caplog.records if "event" in record.__dict__]
    assert [event for event, _ in events] == ["loopback.call_started",
                                              "loopback.call_finished"]
    assert events[0][1]["behaviour"] == "busy"
    assert events[1][1]["destination"] == "+15550001234"
    assert events[1][1]["hangup_cause"] == "busy"


async def test_no_answer(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    result = await trunk.send(sent, IDENTITY, "+15550011234")

    assert result.success is False
    assert result.hangup_cause == "no_answer"
    assert result.call_duration == pytest.approx(60.0)
    assert result.time_elapsed < 1.0
    assert "Nobody answered" in result.error_message


async def test_voice_answer(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    result = await trunk.send(sent, IDENTITY, "+15550021234")

    assert result.success is False
    assert result.hangup_cause == "not_a_fax"
    assert result.result_text == "Timed out waiting for initial communication"
    assert result.pages_sent == 0
    assert result.fax_receiver_id == ""
    assert "no fax machine responded" in result.error_message
    assert result.call_duration >= 35.0
    assert result.received_path is None


async def test_hangup_after_two_pages(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 4, "standard")

    result = await trunk.send(sent, IDENTITY, "+15550031234")

    assert result.success is False
    assert result.pages_sent == 2
    assert result.pages_total == 4
    assert result.hangup_cause == "line_error"
    assert result.result_text == "The call dropped prematurely"
    assert "confirmed 2 of 4 pages" in result.error_message
    assert result.received_path is not None
    assert len(read_fax_pages(Path(result.received_path))) == 2


async def test_hangup_rule_after_last_page(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "standard")

    result = await trunk.send(sent, IDENTITY, "+15550031234")

    assert result.success, result.error_message
    assert result.pages_sent == 2


@pytest.mark.parametrize(("destination", "bad_rows_seen"),
                         [("+15550041234", True), ("+15550051234", False)])
async def test_noisy_line_without_ecm(trunk: LoopbackTrunk, tmp_path: Path,
                                      destination: str, bad_rows_seen: bool) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 3, "fine")

    result = await trunk.send(sent, IDENTITY, destination)

    assert result.fax_error_correction is False
    assert result.ecm_retries == 0
    assert (result.fax_bad_rows > 0) is bad_rows_seen
    assert result.pages_sent == 3
    assert result.received_path is not None
    sent_rows = [page.rows for page in read_fax_pages(sent)]
    printed_rows = [page.rows for page in read_fax_pages(Path(result.received_path))]
    image_changed = sent_rows != printed_rows
    assert image_changed is bad_rows_seen


async def test_very_noisy_line_fails(tmp_path: Path) -> None:
    rules = [LoopbackRule(pattern="*", snr_db=10)]
    loopback = LoopbackTrunk(tmp_path / "data", rules, channels=1, executor=None)
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "standard")
    try:
        result = await loopback.send(sent, IDENTITY, "+4930901820")
    finally:
        await loopback.close()

    assert result.success is False
    assert result.hangup_cause == "line_error"
    assert result.pages_sent == 0
    assert "confirmed 0 of 2 pages" in result.error_message
    assert result.call_duration < 60


async def test_first_matching_rule_wins(tmp_path: Path) -> None:
    rules = [LoopbackRule(pattern="+1555*", behaviour="busy"),
             LoopbackRule(pattern="+15550*", behaviour="no_answer")]
    loopback = LoopbackTrunk(tmp_path / "data", rules, channels=1, executor=None)
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")
    try:
        result = await loopback.send(sent, IDENTITY, "+15550001234")
    finally:
        await loopback.close()

    assert result.hangup_cause == "busy"


async def test_progress_runs_on_loop(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 3, "standard")
    reports: list[tuple[int, FaxProgress]] = []

    def record(progress: FaxProgress) -> None:
        reports.append((threading.get_ident(), progress))

    await trunk.send(sent, IDENTITY, "+4930901820", on_progress=record)

    assert {thread for thread, _ in reports} == {threading.get_ident()}
    pages_done = [report.pages_done for _, report in reports
                  if report.phase == "transferring"]
    assert pages_done == [1, 2, 3]
    assert reports[-1][1].phase == "finished"


async def test_own_number_goes_to_sink(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    sink = RecordingSink(tmp_path / "inbox" / "fax.tif", "+1 202 555 0199")
    sink.tiff_path.parent.mkdir()
    inbox = Inbox({"+12025550199": sink})
    trunk.set_inbound_handler(inbox)
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "fine")

    result = await trunk.send(sent, IDENTITY, "+12025550199")

    assert result.success, result.error_message
    assert result.fax_receiver_id == "+1 202 555 0199"
    assert result.received_path == str(sink.tiff_path)
    assert inbox.offers == [("+12025550199", "+12025550100")]
    assert len(sink.results) == 1
    received = sink.results[0]
    assert received.success
    assert received.pages_received == 2
    assert received.remote_station_id == "+1 202 555 0100"
    assert {thread for thread, _ in sink.progress} == {threading.get_ident()}
    assert len(read_fax_pages(sink.tiff_path)) == 2
    assert not (tmp_path / "data" / "received").exists()


async def test_rejected_offer_uses_rules(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    inbox = Inbox({})
    trunk.set_inbound_handler(inbox)
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    result = await trunk.send(sent, IDENTITY, "+15550001234")

    assert inbox.offers == [("+15550001234", "+12025550100")]
    assert result.hangup_cause == "busy"


class GatedExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose tasks wait for `gate` before they run, counting starts."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.started_count = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        def gated() -> T:
            with self._count_lock:
                self.started_count += 1
            self.started.release()
            self.gate.wait(timeout=30)
            return fn(*args, **kwargs)

        return super().submit(gated)


async def test_channels_limit_parallel_calls(tmp_path: Path) -> None:
    executor = GatedExecutor()
    loopback = LoopbackTrunk(tmp_path / "data", [], channels=2, executor=executor)
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "standard")
    calls = [asyncio.create_task(loopback.send(sent, IDENTITY, f"+4930{n}"))
             for n in range(4)]
    try:
        for _ in range(2):
            assert await asyncio.to_thread(executor.started.acquire, timeout=30)
        await asyncio.sleep(0.2)  # time for a third call to start if the limit failed

        assert executor.started_count == 2
        assert loopback.status()["channels_in_use"] == 2

        executor.gate.set()
        results = await asyncio.gather(*calls)
    finally:
        executor.gate.set()
        await loopback.close()
        executor.shutdown()

    assert all(result.success for result in results)
    assert executor.started_count == 4
    assert loopback.status() == {"name": "loopback", "channels_total": 2,
                                 "channels_in_use": 0, "calls_total": 4}


async def test_cancelled_send_hangs_up(tmp_path: Path) -> None:
    executor = GatedExecutor()
    loopback = LoopbackTrunk(tmp_path / "data", [], channels=1, executor=executor)
    sink = RecordingSink(tmp_path / "fax.tif", "+1 202 555 0199")
    loopback.set_inbound_handler(Inbox({"+12025550199": sink}))
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "standard")
    call = asyncio.create_task(loopback.send(sent, IDENTITY, "+12025550199"))
    try:
        assert await asyncio.to_thread(executor.started.acquire, timeout=30)
        call.cancel()
        await asyncio.sleep(0)  # the send task handles the cancellation and stops the call
        executor.gate.set()

        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        executor.gate.set()
        await loopback.close()
        executor.shutdown()

    assert loopback.status()["channels_in_use"] == 0
    assert len(sink.results) == 1
    assert sink.results[0].success is False
    assert sink.results[0].pages_received == 0


async def test_close_hangs_up_calls(tmp_path: Path) -> None:
    executor = GatedExecutor()
    loopback = LoopbackTrunk(tmp_path / "data", [], channels=1, executor=executor)
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "standard")
    call = asyncio.create_task(loopback.send(sent, IDENTITY, "+4930901820"))
    try:
        assert await asyncio.to_thread(executor.started.acquire, timeout=30)
        closing = asyncio.create_task(loopback.close())
        await asyncio.sleep(0)  # close() sets the call's stop event before it waits
        executor.gate.set()
        await closing
        result = await call
    finally:
        executor.gate.set()
        executor.shutdown()

    assert result.success is False
    assert result.pages_sent == 0
    assert result.hangup_cause == "line_error"
    assert loopback.status()["channels_in_use"] == 0


async def test_invalid_tiff_raises(trunk: LoopbackTrunk, tmp_path: Path) -> None:
    path = tmp_path / "letter.tif"
    path.write_bytes(b"%PDF-1.4 not a tiff")

    with pytest.raises(DocumentError):
        await trunk.send(path, IDENTITY, "+4930901820")


async def test_closed_trunk_raises(tmp_path: Path) -> None:
    loopback = LoopbackTrunk(tmp_path / "data", [], channels=1, executor=None)
    await loopback.close()
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    with pytest.raises(TrunkError, match="closed"):
        await loopback.send(sent, IDENTITY, "+4930901820")

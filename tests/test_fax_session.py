"""The spandsp binding and FaxSession, exchanging faxes over faxgate.fax.line."""

from __future__ import annotations

import ctypes
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fax_documents import make_fax_tiff

from faxgate.fax import spandsp
from faxgate.fax.line import BLOCK_SAMPLES, LineImpairment, run_call
from faxgate.fax.result import PHASE_FINISHED, PHASE_NEGOTIATING, FaxProgress
from faxgate.fax.session import FaxSession, fax_header_ascii
from faxgate.fax.tiff import count_row_differences, read_fax_pages, validate_fax_tiff


def _exchange(tmp_path: Path, pages: int, resolution: str, *, header_text: str = "",
              impairment: LineImpairment | None = None, receiver_ecm: bool = True,
              ) -> tuple[FaxSession, FaxSession, Path, Path]:
    sent = make_fax_tiff(tmp_path / "sent.tif", pages, resolution)
    received = tmp_path / "received.tif"
    sender = FaxSession.sender(sent, validate_fax_tiff(sent), station_id="+1 202 555 0100",
                               header_text=header_text)
    receiver = FaxSession.receiver(received, station_id="+33 1 23 45 67 89",
                                   ecm=receiver_ecm)
    run_call(sender, receiver, impairment=impairment, max_seconds=600,
             stop=threading.Event())
    return sender, receiver, sent, received


def test_stats_struct_matches_header() -> None:
    assert ctypes.sizeof(spandsp.T30Stats) == 60
    assert spandsp.T30Stats.current_status.offset == 56  # type: ignore[attr-defined]


def test_completion_code_text() -> None:
    assert spandsp.completion_code_text(spandsp.T30Error.OK) == "OK"
    assert spandsp.completion_code_text(spandsp.T30Error.CALLDROPPED) == (
        "The call dropped prematurely")


def test_missing_library_names_package() -> None:
    script = (
        "import ctypes\n"
        "def fail(*args, **kwargs):\n"
        "    raise OSError('libspandsp.so.2: cannot open shared object file')\n"
        "ctypes.CDLL = fail\n"
        "import faxgate.fax.spandsp\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True,
                               text=True, cwd=Path(__file__).parent.parent, check=False)

    last_line = completed.stderr.strip().splitlines()[-1]
    assert completed.returncode == 1
    assert last_line.startswith("ImportError: cannot load libspandsp.so.2")
    assert "apt-get install libspandsp2" in last_line


def test_interface_imports_skip_library() -> None:
    script = (
        "import sys\n"
        "import faxgate.fax.result, faxgate.fax.tiff, faxgate.trunks.base\n"
        "print('faxgate.fax.spandsp' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True,
                               text=True, cwd=Path(__file__).parent.parent, check=True)

    assert completed.stdout.strip() == "False"


def test_header_text_folds_accents() -> None:
    assert fax_header_ascii("Société Générale") == "Societe Generale"
    assert fax_header_ascii("Fax → Büro") == "Fax ? Buro"


def test_sender_rejects_long_station_id(tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")

    with pytest.raises(ValueError, match="maximum is 20"):
        FaxSession.sender(sent, validate_fax_tiff(sent), station_id="+1 202 555 0100 0000 00")


def test_header_line_above_each_page(tmp_path: Path) -> None:
    sender, receiver, sent, received = _exchange(tmp_path, 2, "fine",
                                                 header_text="ACME Corp. Accounts")
    sender.close()
    receiver.close()

    sent_pages = read_fax_pages(sent)
    received_pages = read_fax_pages(received)
    assert len(received_pages) == 2
    for original, printed in zip(sent_pages, received_pages, strict=True):
        header_rows = printed.height - original.height
        assert header_rows > 0
        assert any(row != b"\xff" * 216 for row in printed.rows[:header_rows])
        assert count_row_differences(original, printed) == 0


def test_identities_cross_over(tmp_path: Path) -> None:
    sender, receiver, _sent, _received = _exchange(tmp_path, 1, "standard")
    try:
        assert sender.remote_station_id() == "+33 1 23 45 67 89"
        assert receiver.remote_station_id() == "+1 202 555 0100"
    finally:
        sender.close()
        receiver.close()


def test_receive_result_counts_pages(tmp_path: Path) -> None:
    sender, receiver, _sent, received = _exchange(tmp_path, 3, "standard")
    try:
        result = receiver.result(time_elapsed=0.5, call_duration=40.0,
                                 received_path=str(received))
    finally:
        sender.close()
        receiver.close()

    assert result.success
    assert result.pages_received == 3
    assert result.pages_sent == 3
    assert result.fax_receiver_id == "+33 1 23 45 67 89"
    assert result.remote_station_id == "+1 202 555 0100"
    assert result.received_path == str(received)
    assert "received_path" not in result.to_dict()


def test_sender_without_ecm_far_end(tmp_path: Path) -> None:
    sender, receiver, _sent, _received = _exchange(tmp_path, 1, "standard",
                                                   receiver_ecm=False)
    try:
        result = sender.result(time_elapsed=0.1, call_duration=20.0)
    finally:
        sender.close()
        receiver.close()

    assert result.success
    assert result.fax_error_correction is False
    assert result.encoding in ("T.4 1D", "T.4 2D")


def test_progress_reports_each_phase(tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 3, "standard")
    reports: list[FaxProgress] = []
    sender = FaxSession.sender(sent, validate_fax_tiff(sent), station_id="+1 202 555 0100",
                               on_progress=reports.append)
    receiver = FaxSession.receiver(tmp_path / "received.tif", station_id="+33 1 23 45")
    try:
        run_call(sender, receiver, impairment=None, max_seconds=600, stop=threading.Event())
    finally:
        sender.close()
        receiver.close()

    phases = [report.phase for report in reports]
    pages_done = [report.pages_done for report in reports if report.phase == "transferring"]
    assert phases[0] == PHASE_NEGOTIATING
    assert phases[-1] == PHASE_FINISHED
    assert pages_done == [1, 2, 3]
    assert all(report.pages_total == 3 for report in reports)
    assert reports[-1].remote_station_id == "+33 1 23 45"


def test_stop_event_hangs_up(tmp_path: Path) -> None:
    sent = make_fax_tiff(tmp_path / "sent.tif", 2, "fine")
    stop = threading.Event()
    stop.set()
    sender = FaxSession.sender(sent, validate_fax_tiff(sent), station_id="+1 202 555 0100")
    receiver = FaxSession.receiver(tmp_path / "received.tif", station_id="+33 1 23 45")
    try:
        outcome = run_call(sender, receiver, impairment=None, max_seconds=600, stop=stop)
        result = sender.result(time_elapsed=0.0, call_duration=outcome.caller_seconds)
    finally:
        sender.close()
        receiver.close()

    assert outcome.stopped
    # The call stops after its first block of audio.
    assert outcome.line_seconds == pytest.approx(BLOCK_SAMPLES / 8000)
    assert sender.finished
    assert result.success is False
    assert result.pages_sent == 0


def test_unwritable_receive_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="faxgate.fax.spandsp")
    sent = make_fax_tiff(tmp_path / "sent.tif", 1, "standard")
    sender = FaxSession.sender(sent, validate_fax_tiff(sent), station_id="+1 202 555 0100")
    receiver = FaxSession.receiver(tmp_path / "missing" / "received.tif",
                                   station_id="+33 1 23 45")
    try:
        run_call(sender, receiver, impairment=None, max_seconds=600, stop=threading.Event())
        sent_result = sender.result(time_elapsed=0.0, call_duration=1.0)
        received_result = receiver.result(time_elapsed=0.0, call_duration=1.0)
    finally:
        sender.close()
        receiver.close()

    assert received_result.result_code == spandsp.T30Error.FILEERROR
    assert received_result.success is False
    assert sent_result.success is False
    assert sent_result.pages_sent == 0
    assert any("fax-rx Cannot open target TIFF file" in message
               for message in caplog.messages)

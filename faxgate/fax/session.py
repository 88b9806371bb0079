"""One side of a fax call: a T.30 terminal that sends a TIFF or receives one.

A session turns audio into audio. The trunk that carries the call feeds it
the far end's audio with `rx` and sends what `tx` produces, in blocks of
8 kHz samples, from a worker thread. The session reports progress from
phase B and after every page, and builds the FaxResult at the end.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Final

from faxgate.fax import spandsp
from faxgate.fax.limits import MAX_PAGE_HEADER_LENGTH
from faxgate.fax.result import (
    HANGUP_LINE_ERROR,
    HANGUP_NORMAL,
    HANGUP_NOT_A_FAX,
    PHASE_FINISHED,
    PHASE_NEGOTIATING,
    PHASE_TRANSFERRING,
    FaxProgress,
    FaxResult,
)
from faxgate.fax.spandsp import AudioBuffer, Compression, Encoding, FaxState, Modem, T30Error
from faxgate.fax.tiff import FaxTiffInfo

ALL_MODEMS: Final = Modem.V27TER | Modem.V29 | Modem.V17
ALL_COMPRESSIONS: Final = Compression.T4_1D | Compression.T4_2D | Compression.T6

ProgressCallback = Callable[[FaxProgress], None]

_ENCODING_NAMES: Final = {
    Encoding.T4_1D: "T.4 1D",
    Encoding.T4_2D: "T.4 2D",
    Encoding.T6: "T.6",
}

# (x, y) resolution in pixels per metre, as T30Stats reports it (T4_X_RESOLUTION_*
# and T4_Y_RESOLUTION_* in t4_rx.h), to the usual fax names.
_RESOLUTION_NAMES: Final = {
    (8031, 3850): "standard",
    (8031, 7700): "fine",
    (8031, 15400): "superfine",
    (16063, 15400): "ultrafine",
}

# Completion codes of a caller that never heard a fax machine answer.
_NO_FAX_CODES: Final = frozenset({T30Error.T0_EXPIRED, T30Error.T1_EXPIRED, T30Error.CEDTONE})


def fax_header_ascii(text: str) -> str:
    """Fold `text` to the ASCII that spandsp's page header font can draw.

    Accents are dropped ("é" becomes "e") and other non-ASCII characters
    become "?".
    """
    decomposed = unicodedata.normalize("NFKD", text)
    without_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return without_marks.encode("ascii", "replace").decode("ascii")


def resolution_from_stats(stats: spandsp.T30Stats) -> str:
    """Name the resolution of the last page, or return "" if none was negotiated."""
    if stats.x_resolution <= 0 or stats.y_resolution <= 0:
        return ""
    known = _RESOLUTION_NAMES.get((stats.x_resolution, stats.y_resolution))
    if known:
        return known
    x_dpi = round(stats.x_resolution * 0.0254)
    y_dpi = round(stats.y_resolution * 0.0254)
    return f"{x_dpi}x{y_dpi} dpi"


def encoding_from_stats(stats: spandsp.T30Stats) -> str:
    """Name the image coding used between the machines, or return "" if none was."""
    try:
        return _ENCODING_NAMES.get(Encoding(stats.encoding), "")
    except ValueError:
        return f"coding {stats.encoding}"


class FaxSession:
    """One T.30 terminal on one call, sending a TIFF or receiving into one.

    Not thread-safe: one thread drives `tx`, `rx` and `hang_up`. The progress
    callback runs on that thread, inside spandsp's phase handlers.
    """

    def __init__(self, *, calling_party: bool, sending: bool, station_id: str,
                 ecm: bool, modems: Modem, document: FaxTiffInfo | None,
                 on_progress: ProgressCallback | None, log_tag: str) -> None:
        self.sending = sending
        self.document = document
        self._on_progress = on_progress
        self._completion_code: int | None = None
        self._finished = threading.Event()
        # spandsp counts bad rows per page, so the receiving side sums them here.
        self._pages_counted = 0
        self._bad_rows_total = 0
        self._state = FaxState(calling_party, log_tag=log_tag)
        try:
            self._configure(station_id, ecm, modems)
        except BaseException:
            self._state.close()
            raise

    def _configure(self, station_id: str, ecm: bool, modems: Modem) -> None:
        t30 = self._state.t30
        t30.set_tx_ident(station_id)
        t30.set_ecm_capability(ecm)
        t30.set_supported_modems(modems)
        t30.set_supported_compressions(ALL_COMPRESSIONS)
        t30.set_phase_b_handler(self._phase_b)
        t30.set_phase_d_handler(self._phase_d)
        t30.set_phase_e_handler(self._phase_e)
        self._state.set_transmit_on_idle(True)

    @classmethod
    def sender(cls, tiff_path: Path, document: FaxTiffInfo, *, station_id: str,
               header_text: str = "", ecm: bool = True, modems: Modem = ALL_MODEMS,
               calling_party: bool = True,
               on_progress: ProgressCallback | None = None) -> FaxSession:
        """Create the side that sends `tiff_path`, a checked class F TIFF.

        `header_text` goes on a header line that spandsp adds above each
        page, folded to ASCII and cut to 50 characters. Raises ValueError if
        `station_id` is not ASCII of at most 20 characters.
        """
        session = cls(calling_party=calling_party, sending=True, station_id=station_id,
                      ecm=ecm, modems=modems, document=document, on_progress=on_progress,
                      log_tag="fax-tx")
        try:
            header = fax_header_ascii(header_text)[:MAX_PAGE_HEADER_LENGTH]
            session._state.t30.set_tx_page_header_info(header)
            session._state.t30.set_tx_file(tiff_path)
        except BaseException:
            session.close()
            raise
        return session

    @classmethod
    def receiver(cls, tiff_path: Path, *, station_id: str, ecm: bool = True,
                 modems: Modem = ALL_MODEMS, calling_party: bool = False,
                 on_progress: ProgressCallback | None = None) -> FaxSession:
        """Create the side that receives a fax into `tiff_path` (created or replaced)."""
        session = cls(calling_party=calling_party, sending=False, station_id=station_id,
                      ecm=ecm, modems=modems, document=None, on_progress=on_progress,
                      log_tag="fax-rx")
        session._state.t30.set_rx_file(tiff_path)
        return session

    def set_progress_callback(self, on_progress: ProgressCallback | None) -> None:
        """Replace the progress callback; call it before the audio starts."""
        self._on_progress = on_progress

    # Audio

    def tx(self, audio: AudioBuffer, samples: int) -> int:
        """Fill `audio` with the next `samples` samples to send; return how many were made."""
        return self._state.tx(audio, samples)

    def rx(self, audio: AudioBuffer, samples: int) -> None:
        """Process `samples` samples received from the far end."""
        self._state.rx(audio, samples)

    def hang_up(self) -> None:
        """End the call because the line dropped; phase E runs if T.30 had not finished."""
        self._state.t30.terminate()

    @property
    def finished(self) -> bool:
        """True once T.30 reached phase E."""
        return self._finished.is_set()

    @property
    def completion_code(self) -> int | None:
        """The phase E completion code, or None before phase E."""
        return self._completion_code

    def statistics(self) -> spandsp.T30Stats:
        """Return spandsp's transfer statistics."""
        return self._state.t30.transfer_statistics()

    def remote_station_id(self) -> str:
        """Return the TSI or CSI the far end sent, or ""."""
        return self._state.t30.rx_ident()

    def close(self) -> None:
        """Free the spandsp state; a received TIFF is complete after this."""
        self._state.close()

    # Phase handlers, called by spandsp on the thread that drives the audio

    def _progress(self, phase: str) -> None:
        if self._on_progress is None:
            return
        stats = self.statistics()
        pages_total = self.document.pages if self.document else None
        done = stats.pages_tx if self.sending else stats.pages_rx
        self._on_progress(FaxProgress(pages_done=done, pages_total=pages_total,
                                      fax_speed=stats.bit_rate,
                                      remote_station_id=self.remote_station_id(),
                                      phase=phase))

    def _phase_b(self, _frame_type: int) -> None:
        self._progress(PHASE_NEGOTIATING)

    def _phase_d(self, _frame_type: int) -> None:
        stats = self.statistics()
        if stats.pages_rx > self._pages_counted:
            self._pages_counted = stats.pages_rx
            self._bad_rows_total += stats.bad_rows
        self._progress(PHASE_TRANSFERRING)

    def _phase_e(self, completion_code: int) -> None:
        self._completion_code = completion_code
        self._finished.set()
        self._progress(PHASE_FINISHED)

    # Result

    def result(self, *, time_elapsed: float, call_duration: float,
               received_path: str | None = None) -> FaxResult:
        """Build the result of the finished call from spandsp's statistics.

        A sender whose far end did not confirm every page has failed, even if
        T.30 reported OK. That happens when the line drops between pages, and
        the result code then becomes CALLDROPPED.
        """
        stats = self.statistics()
        remote = self.remote_station_id()
        code = self._completion_code
        if code is None:
            code = int(T30Error.CALLDROPPED)
        pages_total = self.document.pages if self.document else stats.pages_rx
        pages_done = stats.pages_tx if self.sending else stats.pages_rx
        complete = pages_done >= pages_total > 0
        if code == T30Error.OK and not complete:
            code = int(T30Error.CALLDROPPED)
        success = code == T30Error.OK
        # spandsp reports its defaults (14400 bit/s, no coding) until a page
        # moves, so the transfer fields count only once one has.
        transferred = pages_done > 0
        text = spandsp.completion_code_text(code)
        hangup_cause = self._hangup_cause(code, remote, success)
        return FaxResult(
            success=success,
            result_code=code,
            result_text=text,
            error_message=self._error_message(success, hangup_cause, text, pages_done,
                                              pages_total),
            pages_sent=pages_done,
            pages_total=pages_total,
            time_elapsed=time_elapsed,
            call_duration=call_duration,
            fax_speed=stats.bit_rate if transferred else 0,
            fax_error_correction=transferred and bool(stats.error_correcting_mode),
            fax_receiver_id=remote if self.sending else self._station_id(),
            fax_bad_rows=self._bad_rows_total,
            ecm_retries=stats.error_correcting_mode_retries,
            resolution=resolution_from_stats(stats) or self._document_resolution(),
            encoding=encoding_from_stats(stats) if transferred else "",
            hangup_cause=hangup_cause,
            remote_station_id=remote,
            pages_received=stats.pages_rx,
            received_path=received_path,
        )

    def _station_id(self) -> str:
        return self._state.t30.tx_ident()

    def _document_resolution(self) -> str:
        return self.document.resolution if self.document else ""

    @staticmethod
    def _hangup_cause(code: int, remote: str, success: bool) -> str:
        if success:
            return HANGUP_NORMAL
        if code in _NO_FAX_CODES and not remote:
            return HANGUP_NOT_A_FAX
        return HANGUP_LINE_ERROR

    def _error_message(self, success: bool, hangup_cause: str, text: str,
                       pages_done: int, pages_total: int) -> str:
        if success:
            return ""
        if hangup_cause == HANGUP_NOT_A_FAX:
            return f"The call was answered, but no fax machine responded ({text})."
        if self.sending:
            return (f"The far end confirmed {pages_done} of {pages_total} pages "
                    f"before the call ended: {text}.")
        return f"{pages_done} pages were received before the call failed: {text}."

"""Results of fax calls and progress reports while they run.

`FaxResult.to_dict()` is the `tx_result` object of an outgoing fax and the
`rx_result` object of a received one. Every figure comes from the T.30 engine
that carried the call, except `time_elapsed` and `call_duration`, which the
trunk measures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

# Values of FaxResult.hangup_cause.
HANGUP_NORMAL: Final = "normal"
HANGUP_BUSY: Final = "busy"
HANGUP_NO_ANSWER: Final = "no_answer"
HANGUP_NOT_A_FAX: Final = "not_a_fax"
HANGUP_LINE_ERROR: Final = "line_error"

RESULT_CODE_NO_T30: Final = -1
"""`result_code` of a call that ended before a T.30 exchange began (busy, no answer).

Every other result code is a T.30 completion code as spandsp numbers them
(`faxgate.fax.spandsp.T30Error`), where 0 means OK.
"""

# Values of FaxProgress.phase.
PHASE_NEGOTIATING: Final = "negotiating"
"""The capabilities exchange ended; the remote station id is known."""
PHASE_TRANSFERRING: Final = "transferring"
"""A page finished; `pages_done` counts it."""
PHASE_FINISHED: Final = "finished"
"""T.30 reached phase E; a FaxResult follows."""


@dataclass(frozen=True)
class FaxProgress:
    """A snapshot of a running call, for live status.

    `pages_done` counts pages the far end confirmed (sending) or pages
    received (receiving). `pages_total` is None on the receiving side, which
    does not know it.
    """

    pages_done: int
    pages_total: int | None
    fax_speed: int
    remote_station_id: str
    phase: str


@dataclass
class FaxResult:
    """The measurements of one fax call.

    `success` is true only when T.30 ended without error and, when sending,
    the far end confirmed every page of the document. `time_elapsed` is wall
    clock seconds spent on the call and `call_duration` is line seconds. The
    two are equal on a real line and differ on a simulated one.
    `pages_sent` counts the pages that crossed the line: confirmed by the
    far end when sending, received when receiving. `pages_received` is the
    same count on the receiving side and 0 on the sending side.
    `fax_speed`, `fax_error_correction` and `encoding` describe how pages
    moved, so they are 0, False and "" when no page did.
    `fax_bad_rows` counts rows the receiving side could not decode. A sender
    on a real line cannot see them, so there it is 0 unless the trunk can read
    the far end's count, as the loopback trunk does.
    `received_path` is where the receiving side stored the image when the
    trunk has it (loopback calls, received faxes). It is a server path, so
    `to_dict` leaves it out.
    """

    success: bool
    result_code: int
    result_text: str
    error_message: str
    pages_sent: int
    pages_total: int
    time_elapsed: float
    call_duration: float
    fax_speed: int
    fax_error_correction: bool
    fax_receiver_id: str
    fax_bad_rows: int
    ecm_retries: int
    resolution: str
    encoding: str
    hangup_cause: str
    remote_station_id: str
    pages_received: int = 0
    received_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as the JSON object stored as `tx_result` or `rx_result`."""
        data = dataclasses.asdict(self)
        del data["received_path"]
        data["time_elapsed"] = round(self.time_elapsed, 3)
        data["call_duration"] = round(self.call_duration, 2)
        return data

"""The trunk interface: the pluggable place where a call leaves faxgate.

A trunk takes a prepared class F TIFF, the sender's identity and a
destination number, carries the call and returns what it measured. It has no
notion of jobs, accounts or HTTP. Calls arriving on a trunk go to the
InboundHandler that the application registers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from faxgate.fax.limits import MAX_IDENT_LENGTH, MAX_PAGE_HEADER_LENGTH
from faxgate.fax.result import FaxProgress, FaxResult

ProgressCallback = Callable[[FaxProgress], None]


def validate_station_id(value: str, field: str = "station_id") -> str:
    """Return `value` if it can be sent as a TSI or CSI, else raise ValueError.

    spandsp sends at most 20 characters. T.30 expects digits, "+" and
    spaces; other printable ASCII passes through spandsp unchanged, so it is
    allowed.
    """
    if len(value) > MAX_IDENT_LENGTH:
        raise ValueError(f"{field} {value!r} is {len(value)} characters long; "
                         f"the maximum is {MAX_IDENT_LENGTH}")
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"{field} {value!r} must contain only printable ASCII characters")
    return value


@dataclass(frozen=True)
class FaxIdentity:
    """The sender's station id (TSI), page header text, caller id and caller name.

    Raises ValueError when `station_id` breaks `validate_station_id` or
    `header_text` is longer than 50 characters. Non-ASCII header characters
    are allowed; the engine folds them to ASCII for the header line.
    """

    station_id: str
    header_text: str = ""
    caller_id: str = ""
    caller_name: str = ""

    def __post_init__(self) -> None:
        validate_station_id(self.station_id)
        if len(self.header_text) > MAX_PAGE_HEADER_LENGTH:
            raise ValueError(f"header_text is {len(self.header_text)} characters long; "
                             f"the maximum is {MAX_PAGE_HEADER_LENGTH}")


class InboundSink(Protocol):
    """Where a trunk delivers one received fax.

    `tiff_path` is the file the receive side writes and `station_id` is the
    CSI it answers with.
    """

    tiff_path: Path
    station_id: str

    def on_progress(self, progress: FaxProgress) -> None:
        """Take a progress report; may be called from any thread, so must be thread-safe."""
        ...

    async def on_complete(self, result: FaxResult) -> None:
        """Take the final result, on the event loop. The TIFF is complete by then."""
        ...


class InboundHandler(Protocol):
    """The application side of incoming calls."""

    async def offer(self, to_number: str, from_number: str) -> InboundSink | None:
        """Return a sink for a call to `to_number`, or None to reject it (not our number)."""
        ...


class Trunk(abc.ABC):
    """Carries fax calls out of faxgate and brings calls in."""

    name: str

    @abc.abstractmethod
    async def send(self, tiff_path: Path, identity: FaxIdentity, destination: str,
                   on_progress: ProgressCallback | None = None) -> FaxResult:
        """Fax `tiff_path` to `destination` and return what the call measured.

        A failed call is a FaxResult with `success` False, not an exception.
        Raises DocumentError if the TIFF is not class F and TrunkError if
        the trunk cannot place calls at all (for example, after `close`).
        """

    @abc.abstractmethod
    def set_inbound_handler(self, handler: InboundHandler | None) -> None:
        """Register the handler for incoming calls; None rejects them all."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop taking calls, end the running ones and release resources."""

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """Return channel usage for /health and /metrics."""

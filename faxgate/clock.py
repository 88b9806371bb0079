"""Time: an injectable clock and the Gregorian-second timestamps Kazoo clients expect."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

# Kazoo documents count seconds from 0001-01-01 (the Gregorian calendar's
# year 1), which is this many seconds before the Unix epoch.
GREGORIAN_OFFSET = 62167219200


class Clock(Protocol):
    def time(self) -> float:
        """Return the current Unix time in seconds."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()


def to_gregorian(unix_seconds: float) -> int:
    return int(unix_seconds) + GREGORIAN_OFFSET


def from_gregorian(gregorian_seconds: int) -> float:
    return float(gregorian_seconds - GREGORIAN_OFFSET)


def month_prefix(unix_seconds: float) -> str:
    """Return the YYYYMM prefix of the month-scoped ids of documents made at that time."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y%m")


def iso_timestamp(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z"
    )

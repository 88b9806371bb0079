"""Template values: a fax record turned into the words and figures a notification shows.

Every value is a string. A figure the record lacks reads "unknown" or
"not reported" rather than being left out, so templates never show a
placeholder for a value that the fax engine did not measure.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from faxgate.clock import from_gregorian

UNKNOWN = "unknown"
NOT_REPORTED = "not reported"

# Q.850 cause names, as SIP and Kazoo report them, in plain words.
_HANGUP_CAUSES = {
    "USER_BUSY": "The line was busy.",
    "NO_ANSWER": "Nobody answered the call.",
    "NO_USER_RESPONSE": "Nobody answered the call.",
    "CALL_REJECTED": "The called line rejected the call.",
    "UNALLOCATED_NUMBER": "The number is not in service.",
    "NO_ROUTE_DESTINATION": "The number is not in service.",
    "INVALID_NUMBER_FORMAT": "The number is not valid.",
    "NUMBER_CHANGED": "The number has changed.",
    "DESTINATION_OUT_OF_ORDER": "The called line is out of order.",
    "NORMAL_TEMPORARY_FAILURE": "The telephone network could not connect the call.",
    "NETWORK_OUT_OF_ORDER": "The telephone network could not connect the call.",
    "NORMAL_CIRCUIT_CONGESTION": "The telephone network was congested.",
    "SWITCH_CONGESTION": "The telephone network was congested.",
    "RECOVERY_ON_TIMER_EXPIRE": "The telephone network did not respond in time.",
}

# NOTE: the fax engine's rx_result key for the calling station's id is not
# fixed yet. These are guesses, tried in order.
_REMOTE_STATION_KEYS = ("remote_station_id", "fax_remote_station_id", "fax_sender_id")


def zone_for(fax: Mapping[str, Any], faxbox: Mapping[str, Any] | None) -> zoneinfo.ZoneInfo:
    """Return the fax's time zone, else the faxbox's, else UTC."""
    for name in (fax.get("fax_timezone"), (faxbox or {}).get("fax_timezone")):
        if isinstance(name, str) and name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def event_time(fax: Mapping[str, Any], keys: tuple[str, ...], now: float) -> float:
    """Return the Unix time of the first Gregorian timestamp of `keys` in `fax`, else `now`."""
    for key in keys:
        value = fax.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return from_gregorian(int(value))
    return now


def format_time(unix_seconds: float, zone: zoneinfo.ZoneInfo) -> str:
    moment = datetime.fromtimestamp(unix_seconds, UTC).astimezone(zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def format_duration(seconds: Any) -> str:
    """Return a duration in seconds as "45 s", "2 min 5 s" or "1 h 3 min"."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return UNKNOWN
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _text(value: Any, missing: str = UNKNOWN) -> str:
    if value is None or value == "":
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def failure_reason(result: Mapping[str, Any]) -> tuple[str, str]:
    """Return why a fax failed in plain words, and the technical details behind it."""
    cause = str(result.get("hangup_cause") or "").upper()
    message = str(result.get("error_message") or "").strip()
    result_text = str(result.get("result_text") or "").strip()

    details = []
    if message:
        details.append(message)
    if result_text and result_text != message:
        details.append(result_text)
    if result.get("result_code") not in (None, ""):
        details.append(f"result code {result['result_code']}")
    if cause:
        details.append(f"hangup cause {cause}")

    if cause in _HANGUP_CAUSES:
        reason = _HANGUP_CAUSES[cause]
    elif message or result_text:
        reason = _sentence(message or result_text)
    else:
        reason = "The fax could not be sent, and no reason was reported."
    return reason, "; ".join(details) or NOT_REPORTED


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def common_values(
    account_id: str, fax: Mapping[str, Any], faxbox: Mapping[str, Any] | None
) -> dict[str, str]:
    return {
        "account_id": account_id,
        "fax_id": _text(fax.get("id")),
        "faxbox_id": _text((faxbox or {}).get("id") or fax.get("faxbox_id"), ""),
        "faxbox_name": _text((faxbox or {}).get("name"), ""),
        "to_number": _text(fax.get("to_number")),
        "to_name": _text(fax.get("to_name"), ""),
        "from_number": _text(fax.get("from_number")),
        "from_name": _text(fax.get("from_name"), ""),
    }


def outbound_values(
    account_id: str, fax: Mapping[str, Any], faxbox: Mapping[str, Any] | None, now: float
) -> dict[str, str]:
    """Return the values of the outbound_success and outbound_failure templates."""
    result: Mapping[str, Any] = fax.get("tx_result") or {}
    zone = zone_for(fax, faxbox)
    finished = event_time(fax, ("delivered", "modified"), now)
    pages_sent = _text(result.get("pages_sent"), "0")
    pages_total = _text(result.get("pages_total") or fax.get("pages"))
    reason, details = failure_reason(result)
    if fax.get("status") == "completed":
        reason, details = "", ""
    return {
        **common_values(account_id, fax, faxbox),
        "time": format_time(finished, zone),
        "timezone": str(zone.key),
        "pages_sent": pages_sent,
        "pages_total": pages_total,
        "pages": f"{pages_sent} of {pages_total}",
        "duration": format_duration(_first(result, ("call_duration", "time_elapsed"))),
        "far_end_id": _text(result.get("fax_receiver_id"), NOT_REPORTED),
        "fax_speed": _speed(result.get("fax_speed")),
        "attempts": _text(fax.get("attempts")),
        "retries": _text(fax.get("retries")),
        "reason": reason,
        "details": details,
    }


def inbound_values(
    account_id: str, fax: Mapping[str, Any], faxbox: Mapping[str, Any] | None, now: float
) -> dict[str, str]:
    """Return the values of the inbound template."""
    result: Mapping[str, Any] = fax.get("rx_result") or {}
    zone = zone_for(fax, faxbox)
    received = event_time(fax, ("received", "modified", "created"), now)
    return {
        **common_values(account_id, fax, faxbox),
        "time": format_time(received, zone),
        "timezone": str(zone.key),
        "pages": _text(_first(result, ("pages_received", "pages")) or fax.get("pages")),
        "duration": format_duration(_first(result, ("call_duration", "time_elapsed"))),
        "far_end_id": _text(_first(result, _REMOTE_STATION_KEYS), NOT_REPORTED),
        "fax_speed": _speed(result.get("fax_speed")),
    }


def smtp_failure_values(
    account_id: str,
    fax: Mapping[str, Any],
    faxbox: Mapping[str, Any] | None,
    sender: str,
    reason: str,
    now: float,
) -> dict[str, str]:
    """Return the values of the smtp_failure template."""
    zone = zone_for(fax, faxbox)
    return {
        **common_values(account_id, fax, faxbox),
        "time": format_time(event_time(fax, ("created",), now), zone),
        "timezone": str(zone.key),
        "sender": sender,
        "subject": _text(fax.get("subject"), "(no subject)"),
        "reason": _sentence(reason.strip()) if reason.strip() else "No reason was reported.",
    }


def _speed(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{value} bit/s"
    return NOT_REPORTED

"""Event logging: one line per event, a stable event name and key=value context.

Levels: ERROR means a person must act, WARNING a peer misbehaved, INFO a
state changed, DEBUG is chatter. Context keys that name secrets, also keys
of nested mappings such as a header dict, are masked before any handler
receives them. Masking is a safety net: code should not pass secrets at all.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

_SECRET_WORDS = ("password", "token", "api_key", "secret", "authorization", "credential")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _mask(key: str, value: Any) -> Any:
    """Return "***" for a secret key, else the value with secrets in nested mappings masked."""
    if _is_secret(key):
        return "***"
    if isinstance(value, Mapping):
        return {str(inner): _mask(str(inner), item) for inner, item in value.items()}
    return value


def _clean(context: dict[str, Any]) -> dict[str, Any]:
    return {key: _mask(key, value) for key, value in context.items()}


class EventLogger:
    """A logger that writes events with context bound once per connection or job."""

    def __init__(self, name: str, **context: Any) -> None:
        self._logger = logging.getLogger(name)
        self._context = context

    def bind(self, **context: Any) -> EventLogger:
        bound = EventLogger(self._logger.name, **{**self._context, **context})
        return bound

    def debug(self, event: str, **context: Any) -> None:
        self._log(logging.DEBUG, event, context)

    def info(self, event: str, **context: Any) -> None:
        self._log(logging.INFO, event, context)

    def warning(self, event: str, **context: Any) -> None:
        self._log(logging.WARNING, event, context)

    def error(self, event: str, **context: Any) -> None:
        self._log(logging.ERROR, event, context)

    def exception(self, event: str, **context: Any) -> None:
        self._log(logging.ERROR, event, context, exc_info=True)

    def _log(self, level: int, event: str, context: dict[str, Any], exc_info: bool = False) -> None:
        if not self._logger.isEnabledFor(level):
            return
        merged = _clean({**self._context, **context})
        self._logger.log(
            level, event, extra={"event": event, "context": merged}, exc_info=exc_info
        )


def _format_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`time level logger event key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "context", None) or {}
        event = getattr(record, "event", None) or record.getMessage()
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [when, record.levelname, record.name, event]
        parts += [f"{key}={_format_value(value)}" for key, value in context.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        context = getattr(record, "context", None) or {}
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        for key, value in context.items():
            if key not in entry and key not in _RESERVED:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _FaxgateHandler(logging.StreamHandler[TextIO]):
    """The stderr handler that configure_logging installs, so that a reload can find it."""


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = _FaxgateHandler(sys.stderr)
    handler.setFormatter(_formatter(fmt))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library chatter (aiohttp access lines, aiosmtpd session traces) stays at
    # WARNING; faxgate logs the events that matter itself.
    for noisy in ("aiohttp.access", "mail.log", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def reconfigure_logging(level: str, fmt: str) -> None:
    """Apply a new level and line format to the running process, keeping its handlers.

    Only the handler that configure_logging installed changes its format;
    handlers added by others (a test's log capture) are left alone.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in root.handlers:
        if isinstance(handler, _FaxgateHandler):
            handler.setFormatter(_formatter(fmt))


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()

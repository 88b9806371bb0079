"""Identifiers: 32 lowercase hex characters, and month-scoped `YYYYMM-<hex>` ids."""

from __future__ import annotations

import re
import secrets
import uuid

from faxgate.clock import month_prefix

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_MONTH_ID = re.compile(r"^(\d{6})-([0-9a-f]{32})$")


def new_id() -> str:
    return uuid.uuid4().hex


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_hex(nbytes)


def is_hex_id(value: str) -> bool:
    return bool(_HEX_ID.match(value))


def month_id(unix_seconds: float, hex_id: str) -> str:
    return f"{month_prefix(unix_seconds)}-{hex_id}"


def split_month_id(value: str) -> tuple[str | None, str] | None:
    """Split `YYYYMM-<hex>` or a bare `<hex>` id into (month or None, hex); None if neither."""
    match = _MONTH_ID.match(value)
    if match:
        return match.group(1), match.group(2)
    if _HEX_ID.match(value):
        return None, value
    return None

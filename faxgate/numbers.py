"""Fax numbers: parsing what people type into E.164 with phonenumbers."""

from __future__ import annotations

import re

import phonenumbers

from faxgate.errors import FaxgateError

# Characters people put into numbers for readability; phonenumbers ignores
# them too, but anything else (letters, '@', '*') makes the number invalid.
_ALLOWED = re.compile(r"^[0-9+()\-. \t/]+$")


class InvalidNumberError(FaxgateError):
    """The fax number is not a valid phone number."""

    code = "invalid_number"


def normalize_number(text: str, region: str) -> str:
    """Return `text` as an E.164 number, reading national numbers in `region`."""
    stripped = text.strip()
    if not stripped:
        raise InvalidNumberError("the fax number is empty")
    if not _ALLOWED.match(stripped):
        raise InvalidNumberError(
            f"{text!r} is not a fax number: use digits, '+', spaces, dashes, dots or parentheses"
        )
    if stripped.startswith("00"):
        stripped = "+" + stripped[2:]
    try:
        parsed = phonenumbers.parse(stripped, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumberError(f"{text!r} is not a valid phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_number(parsed) or region.upper()
        raise InvalidNumberError(f"{text!r} is not a valid phone number in {where}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def region_of(number: str) -> str | None:
    """Return the ISO region of an E.164 number, or None when it has none."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed)

"""Sender permission patterns of a faxbox's smtp_permission_list.

An entry is a whole address (`alice@example.com`), every address of one
domain (`*@example.com`), or every address of the subdomains of a domain
(`*@*.example.com`). Matching ignores case and is anchored, so
`alice@example.com.evil.test` matches none of those entries.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from faxgate.errors import FaxgateError


class InvalidSenderPatternError(FaxgateError):
    """The permission list entry is not an address, `*@domain` or `*@*.domain`."""

    code = "invalid_sender_pattern"


def _domain(text: str) -> str:
    checked = validate_email(f"x@{text}", check_deliverability=False)
    return checked.ascii_domain.lower()


def normalize_address(address: str) -> str | None:
    """Return the address lower-cased with an ASCII domain, or None when it is not valid."""
    try:
        checked = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return f"{checked.local_part.lower()}@{checked.ascii_domain.lower()}"


def normalize_sender_pattern(entry: str) -> str:
    """Return the entry in the form `sender_allowed` compares against."""
    text = entry.strip()
    try:
        if text.startswith("*@*."):
            return "*@*." + _domain(text[4:])
        if text.startswith("*@"):
            return "*@" + _domain(text[2:])
    except EmailNotValidError as exc:
        raise InvalidSenderPatternError(f"{entry!r} has an invalid domain: {exc}") from exc
    address = normalize_address(text)
    if address is None:
        raise InvalidSenderPatternError(
            f"{entry!r} is not an address, '*@domain' or '*@*.domain'"
        )
    return address


def sender_allowed(patterns: list[str], address: str) -> bool:
    """Return whether `address` matches one of the normalized `patterns`."""
    normalized = normalize_address(address)
    if normalized is None:
        return False
    domain = normalized.rsplit("@", 1)[1]
    for pattern in patterns:
        if pattern.startswith("*@*."):
            if domain.endswith("." + pattern[4:]):
                return True
        elif pattern.startswith("*@"):
            if domain == pattern[2:]:
                return True
        elif normalized == pattern:
            return True
    return False

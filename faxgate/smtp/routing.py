"""Recipient routing and sender permission checks, pure functions over faxbox documents."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from faxgate.errors import FaxgateError
from faxgate.numbers import normalize_number
from faxgate.senders import normalize_address, sender_allowed


class InvalidRecipientError(FaxgateError):
    """The recipient address is not `<fax number>@<faxbox domain>`."""

    code = "invalid_recipient"


@dataclass(frozen=True)
class Route:
    """An accepted recipient: the faxbox whose domain it names and the number to fax."""

    address: str
    account_id: str
    faxbox: dict[str, Any]
    original_number: str
    number: str

    @property
    def faxbox_id(self) -> str:
        return str(self.faxbox["id"])

    @property
    def duplicate_key(self) -> str:
        """The recipient as duplicate detection compares it: the number at the faxbox."""
        return f"{self.number}@{self.faxbox_id}"


_QUOTED_PAIR = re.compile(r"\\(.)")


def split_recipient(address: str) -> tuple[str, str]:
    """Split an envelope address into its local part (unquoted) and its lower-cased domain.

    A quoted local part such as `"+1 (555) 123-4567"` loses its quotes and
    backslash escapes (RFC 5321 section 4.1.2). A non-ASCII domain becomes
    its IDNA (punycode) form, the form faxbox domains are stored in.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidRecipientError(f"{address!r} is not an address of the form number@domain")
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local, ascii_domain(domain)


def ascii_domain(domain: str) -> str:
    """Return the domain lower-cased, in IDNA form, without a trailing dot."""
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidRecipientError(f"{domain!r} is not a valid domain") from exc


def faxbox_region(faxbox: dict[str, Any], default_region: str) -> str:
    return str(faxbox.get("fax_region") or default_region).upper()


def recipient_number(local_part: str, faxbox: dict[str, Any], default_region: str) -> str:
    """Return the local part as an E.164 number; raise InvalidNumberError with the reason."""
    return normalize_number(local_part, faxbox_region(faxbox, default_region))


def is_null_sender(address: str) -> bool:
    """Return whether a MAIL FROM address, as aiosmtpd parsed it, names no mailbox.

    aiosmtpd 1.4 passes the null reverse-path `<>` on as the string "<>".
    A quoted local part that is empty or blank names no mailbox either,
    with or without a domain: `<"">` arrives as '""', `<""@example.com>`
    as '""@example.com' and the unbracketed `""@example.com` as
    '@example.com'. No fax report can reach any of them.
    """
    if address == "<>":
        return True
    local, at, _domain = address.rpartition("@")
    if not at:
        local = address
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return not local.strip()


def sender_permitted(faxbox: dict[str, Any], sender: str) -> bool:
    """Return whether the faxbox's permission list admits `sender`.

    An empty list admits no sender unless the faxbox sets smtp_allow_all_senders.
    """
    patterns = list(faxbox.get("smtp_permission_list") or [])
    if not patterns:
        return bool(faxbox.get("smtp_allow_all_senders"))
    return sender_allowed(patterns, sender)


def same_address(first: str, second: str) -> bool:
    """Return whether two addresses are equal, ignoring case (and IDNA forms of the domain)."""
    left, right = normalize_address(first), normalize_address(second)
    if left is None or right is None:
        return first.strip().lower() == second.strip().lower()
    return left == right

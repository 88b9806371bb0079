"""The exception root of faxgate.

Each subclass carries a stable machine `code` and a message that states what
went wrong and what to do. Only the REST layer maps these to HTTP statuses
and only the SMTP layer maps them to reply codes.
"""

from __future__ import annotations

from typing import Any


class FaxgateError(Exception):
    """faxgate failed to do what was requested."""

    code = "error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)


class ConfigError(FaxgateError):
    """The configuration is invalid; fix the named key and start again."""

    code = "config_error"


class NotFoundError(FaxgateError):
    """No such object in this account."""

    code = "not_found"


class ConflictError(FaxgateError):
    """The object clashes with one that exists already."""

    code = "conflict"


class ValidationError(FaxgateError):
    """The request failed validation.

    `errors` maps a dotted field path to {rule: {"message": ..., "cause"?: ...}},
    the shape Kazoo clients parse.
    """

    code = "validation_error"

    def __init__(self, errors: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.errors = errors
        fields = ", ".join(sorted(errors))
        super().__init__(f"invalid fields: {fields}")


class DocumentError(FaxgateError):
    """The document cannot be turned into fax pages.

    `code` names the kind of failure (for example `password_protected`,
    `corrupt`, `unsupported_type`, `too_many_pages`, `too_large`, `timeout`).
    """

    code = "document_error"

    def __init__(self, message: str, code: str = "document_error", **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code


class FetchError(FaxgateError):
    """A document URL could not be fetched."""

    code = "fetch_failed"


class AddressNotAllowedError(FetchError):
    """The URL resolves to an address that faxgate may not connect to."""

    code = "address_not_allowed"


class TrunkError(FaxgateError):
    """The trunk could not place or carry a call."""

    code = "trunk_error"

"""Callbacks: a fax record sent over HTTP to a faxbox's callback URL, signed.

Signature scheme. Each request carries

    X-Faxgate-Timestamp: <Unix time in whole seconds when the request was sent>
    X-Faxgate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>

keyed with the account's callback secret (UTF-8). The body is signed as the
exact bytes sent. The receiver recomputes the HMAC over the timestamp
header, a dot and the raw body, compares it in constant time, and rejects
timestamps older than a few minutes, so a captured request cannot be
replayed later. Each retry is signed again with a new timestamp.
`X-Faxgate-Delivery` is the same on every attempt of one notification,
so a receiver can drop a repeat it already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from faxgate.errors import AddressNotAllowedError
from faxgate.notify.errors import PermanentDeliveryError, TemporaryDeliveryError
from faxgate.notify.guard import AddressGuard

SIGNATURE_HEADER = "X-Faxgate-Signature"
TIMESTAMP_HEADER = "X-Faxgate-Timestamp"
EVENT_HEADER = "X-Faxgate-Event"
DELIVERY_HEADER = "X-Faxgate-Delivery"

# Body types of the faxbox schema; Kazoo spells the form type this way.
JSON_BODY = "json"
FORM_BODY = "www-url-form-encoded"

# HTTP statuses worth retrying: timeout, too early, too many requests, and 5xx.
_RETRY_STATUSES = frozenset({408, 425, 429})


def encode_body(payload: Mapping[str, Any], body_type: str) -> tuple[bytes, str]:
    """Return the request body and its Content-Type for `body_type` (json or form)."""
    if body_type == FORM_BODY:
        return urlencode(form_fields(payload)).encode("ascii"), "application/x-www-form-urlencoded"
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    return body.encode("utf-8"), "application/json"


def form_fields(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested objects to form fields: `a[b]=1`, lists as `a[]=x`.

    true and false are sent as the words, null as an empty value.
    """
    if isinstance(value, Mapping):
        fields = []
        for key, item in value.items():
            name = f"{prefix}[{key}]" if prefix else str(key)
            fields.extend(form_fields(item, name))
        return fields
    if isinstance(value, list | tuple):
        fields = []
        for item in value:
            fields.extend(form_fields(item, f"{prefix}[]"))
        return fields
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, "" if value is None else str(value))]


def redact_url(url: str) -> str:
    """Return `url` without user info, query and fragment, which may carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the X-Faxgate-Signature value for `body` sent at `timestamp`."""
    signed = timestamp.encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class CallbackSender:
    """Sends callback requests after the address guard allows the URL."""

    def __init__(
        self, session: aiohttp.ClientSession, guard: AddressGuard, timeout: float
    ) -> None:
        self._session = session
        self._guard = guard
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, url: str, method: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Send one request; redirects are not followed.

        Raises PermanentDeliveryError when the address is not allowed or the
        receiver responds with 3xx or 4xx (other than 408, 425 and 429), and
        TemporaryDeliveryError on a network error, a timeout or another status.
        """
        try:
            await self._guard.check_url(url)
            async with self._session.request(
                method.upper(),
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
        except AddressNotAllowedError as exc:
            raise PermanentDeliveryError(exc.message) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TemporaryDeliveryError(f"callback to {redact_url(url)} failed: {exc!r}") from exc

        if 200 <= status < 300:
            return
        message = f"callback receiver {redact_url(url)} responded with HTTP {status}"
        if status >= 500 or status in _RETRY_STATUSES:
            raise TemporaryDeliveryError(message)
        raise PermanentDeliveryError(message)

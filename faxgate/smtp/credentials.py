"""SMTP AUTH credentials of faxboxes: scrypt password hashes.

A faxbox may set `smtp_auth: {"username", "password"}`. The stored faxbox
keeps only the user name in `smtp_auth` and the password hash in the
private field `pvt_smtp_password_hash`, which the API never returns.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from typing import Any

from faxgate.errors import ValidationError

PASSWORD_HASH_FIELD = "pvt_smtp_password_hash"

# scrypt cost parameters (RFC 7914): 16 MiB of memory and about 50 ms per
# check on one core, which slows guessing without slowing a mail client.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_BYTES = 32


def hash_password(password: str) -> str:
    """Return a self-describing scrypt hash of `password`."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(key)]
    )


def verify_password(password: str, encoded: str) -> bool:
    """Return whether `password` matches a hash made by `hash_password`."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024,
        dklen=_KEY_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def store_smtp_credentials(
    doc: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    """Replace `smtp_auth.password` in a validated faxbox document with its hash.

    Without a new password, the hash of `current` (the stored faxbox) is kept
    when the user name is unchanged. Removing `smtp_auth` removes the hash.
    """
    result = dict(doc)
    auth = result.get("smtp_auth")
    if not isinstance(auth, dict):
        result.pop(PASSWORD_HASH_FIELD, None)
        return result

    username = auth["username"]
    password = auth.get("password")
    result["smtp_auth"] = {"username": username}
    if password:
        result[PASSWORD_HASH_FIELD] = await asyncio.to_thread(hash_password, password)
        return result

    previous = (current or {}).get("smtp_auth") or {}
    previous_hash = (current or {}).get(PASSWORD_HASH_FIELD)
    if previous.get("username") == username and previous_hash:
        result[PASSWORD_HASH_FIELD] = previous_hash
        return result
    raise ValidationError(
        {
            "smtp_auth.password": {
                "required": {"message": "Field is required when smtp_auth.username is new"}
            }
        }
    )


def public_faxbox(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the faxbox without private fields, as the API serves it."""
    return {key: value for key, value in doc.items() if not key.startswith("pvt_")}

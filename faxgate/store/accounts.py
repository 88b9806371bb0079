"""Accounts, their API keys and auth tokens."""

from __future__ import annotations

import hashlib
from typing import Any

from faxgate.clock import to_gregorian
from faxgate.ids import new_id, new_secret
from faxgate.store.base import StoreBase


def hash_secret(secret: str) -> str:
    # API keys and tokens are 256-bit random values, so a plain SHA-256 is
    # enough to make a stolen database useless for logging in; a slow
    # password hash only matters for secrets people choose.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AccountsMixin(StoreBase):
    async def create_account(self, name: str) -> tuple[dict[str, Any], str]:
        """Create an account with one API key; return the account and the key in clear."""
        account_id = new_id()
        api_key = new_secret()
        now = to_gregorian(self.clock.time())
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO accounts (id, name, callback_secret, created) VALUES (?, ?, ?, ?)",
                (account_id, name, new_secret(), now),
            )
            await db.execute(
                "INSERT INTO api_keys (key_hash, account_id, created) VALUES (?, ?, ?)",
                (hash_secret(api_key), account_id, now),
            )
        return {"id": account_id, "name": name, "created": now}, api_key

    async def rotate_api_key(self, account_id: str) -> str | None:
        """Replace every API key of the account with a new one; None if no such account."""
        api_key = new_secret()
        now = to_gregorian(self.clock.time())
        async with self.transaction() as db:
            async with db.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)) as cursor:
                if await cursor.fetchone() is None:
                    return None
            await db.execute("DELETE FROM api_keys WHERE account_id = ?", (account_id,))
            await db.execute(
                "INSERT INTO api_keys (key_hash, account_id, created) VALUES (?, ?, ?)",
                (hash_secret(api_key), account_id, now),
            )
        return api_key

    async def get_account(self, account_id: str) -> dict[str, Any] | None:
        row = await self.fetch_one(
            "SELECT id, name, created, callback_secret FROM accounts WHERE id = ?", (account_id,)
        )
        return dict(row) if row else None

    async def get_callback_secret(self, account_id: str) -> str | None:
        """Return the key that signs the account's callbacks; None if no such account."""
        row = await self.fetch_one(
            "SELECT callback_secret FROM accounts WHERE id = ?", (account_id,)
        )
        return str(row["callback_secret"]) if row else None

    async def rotate_callback_secret(self, account_id: str) -> str | None:
        """Replace the account's callback secret; return the new one, or None if no such account."""
        secret = new_secret()
        changed = await self.execute(
            "UPDATE accounts SET callback_secret = ? WHERE id = ?", (secret, account_id)
        )
        return secret if changed else None

    async def list_accounts(self) -> list[dict[str, Any]]:
        rows = await self.fetch_all("SELECT id, name, created FROM accounts ORDER BY created, id")
        return [dict(row) for row in rows]

    async def count_accounts(self) -> int:
        row = await self.fetch_one("SELECT COUNT(*) AS n FROM accounts")
        return int(row["n"]) if row else 0

    async def account_for_api_key(self, api_key: str) -> str | None:
        row = await self.fetch_one(
            "SELECT account_id FROM api_keys WHERE key_hash = ?", (hash_secret(api_key),)
        )
        return str(row["account_id"]) if row else None

    async def create_token(self, account_id: str, ttl_seconds: float) -> tuple[str, float]:
        """Issue an auth token for the account; return it with its Unix expiry time."""
        token = new_secret()
        now = self.clock.time()
        expires = now + ttl_seconds
        async with self.transaction() as db:
            await db.execute("DELETE FROM auth_tokens WHERE expires <= ?", (now,))
            await db.execute(
                "INSERT INTO auth_tokens (token_hash, account_id, expires) VALUES (?, ?, ?)",
                (hash_secret(token), account_id, expires),
            )
        return token, expires

    async def account_for_token(self, token: str) -> str | None:
        row = await self.fetch_one(
            "SELECT account_id FROM auth_tokens WHERE token_hash = ? AND expires > ?",
            (hash_secret(token), self.clock.time()),
        )
        return str(row["account_id"]) if row else None

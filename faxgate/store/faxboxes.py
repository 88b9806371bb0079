"""Faxboxes: an account's fax identities, mail routing domains and numbers."""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from faxgate.clock import to_gregorian
from faxgate.errors import ConflictError, NotFoundError
from faxgate.ids import new_id
from faxgate.store.base import Page, PageRequest, StoreBase, from_json, to_json


class FaxboxDomainTakenError(ConflictError):
    """Another faxbox already receives mail for this domain."""

    code = "domain_taken"


class FaxboxesMixin(StoreBase):
    async def create_faxbox(
        self, account_id: str, fields: dict[str, Any], default_domain: str
    ) -> dict[str, Any]:
        """Store a new faxbox; `fields` are validated API fields without id."""
        faxbox_id = new_id()
        now = to_gregorian(self.clock.time())
        for _ in range(5):
            # The generated domain is short for people to type, so it is
            # random rather than derived from the id and may clash: retry.
            smtp_domain = f"{secrets.token_hex(4)}.{default_domain}"
            doc = {**fields, "id": faxbox_id, "smtp_email_address": smtp_domain}
            try:
                await self._insert_faxbox(account_id, faxbox_id, smtp_domain, doc, now)
            except FaxboxDomainTakenError:
                if fields.get("custom_smtp_email_address"):
                    raise
                continue
            return doc
        raise ConflictError("could not generate a unique faxbox domain; try again")

    async def _insert_faxbox(
        self, account_id: str, faxbox_id: str, smtp_domain: str, doc: dict[str, Any], now: int
    ) -> None:
        try:
            await self.execute(
                "INSERT INTO faxboxes (id, account_id, smtp_domain, custom_domain, caller_id,"
                " created, modified, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    faxbox_id,
                    account_id,
                    smtp_domain.lower(),
                    _custom_domain(doc),
                    doc.get("caller_id") or None,
                    now,
                    now,
                    to_json(doc),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise _domain_conflict(exc) from exc

    async def get_faxbox(self, account_id: str, faxbox_id: str) -> dict[str, Any]:
        row = await self.fetch_one(
            "SELECT doc FROM faxboxes WHERE id = ? AND account_id = ?", (faxbox_id, account_id)
        )
        if row is None:
            raise NotFoundError(f"faxbox {faxbox_id} not found", id=faxbox_id)
        doc: dict[str, Any] = from_json(row["doc"])
        return doc

    async def list_faxboxes(self, account_id: str, page: PageRequest) -> Page:
        rows, next_key = await self.fetch_page(
            "faxboxes", "account_id = ?", (account_id,), page, columns="seq, doc"
        )
        return Page([from_json(row["doc"]) for row in rows], page.start_key, next_key)

    async def replace_faxbox(
        self, account_id: str, faxbox_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace the faxbox's fields, keeping its id and generated domain."""
        current = await self.get_faxbox(account_id, faxbox_id)
        doc = {**fields, "id": faxbox_id, "smtp_email_address": current["smtp_email_address"]}
        try:
            changed = await self.execute(
                "UPDATE faxboxes SET custom_domain = ?, caller_id = ?, modified = ?, doc = ?"
                " WHERE id = ? AND account_id = ?",
                (
                    _custom_domain(doc),
                    doc.get("caller_id") or None,
                    to_gregorian(self.clock.time()),
                    to_json(doc),
                    faxbox_id,
                    account_id,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise _domain_conflict(exc) from exc
        if changed == 0:
            raise NotFoundError(f"faxbox {faxbox_id} not found", id=faxbox_id)
        return doc

    async def delete_faxbox(self, account_id: str, faxbox_id: str) -> dict[str, Any]:
        doc = await self.get_faxbox(account_id, faxbox_id)
        changed = await self.execute(
            "DELETE FROM faxboxes WHERE id = ? AND account_id = ?", (faxbox_id, account_id)
        )
        if changed == 0:
            raise NotFoundError(f"faxbox {faxbox_id} not found", id=faxbox_id)
        return doc

    async def find_faxbox_by_domain(self, domain: str) -> tuple[str, dict[str, Any]] | None:
        """Return (account id, faxbox) for the faxbox that receives mail for `domain`."""
        domain = domain.lower()
        row = await self.fetch_one(
            "SELECT account_id, doc FROM faxboxes WHERE custom_domain = ? OR smtp_domain = ?"
            " ORDER BY custom_domain IS NULL LIMIT 1",
            (domain, domain),
        )
        if row is None:
            return None
        return str(row["account_id"]), from_json(row["doc"])

    async def find_faxbox_by_number(self, number: str) -> tuple[str, dict[str, Any]] | None:
        """Return (account id, faxbox) of the oldest faxbox whose caller_id is `number`."""
        row = await self.fetch_one(
            "SELECT account_id, doc FROM faxboxes WHERE caller_id = ? ORDER BY seq LIMIT 1",
            (number,),
        )
        if row is None:
            return None
        return str(row["account_id"]), from_json(row["doc"])


def _custom_domain(doc: dict[str, Any]) -> str | None:
    value = doc.get("custom_smtp_email_address")
    return value.lower() if isinstance(value, str) and value else None


def _domain_conflict(exc: sqlite3.IntegrityError) -> ConflictError:
    text = str(exc)
    if "custom_domain" in text or "smtp_domain" in text:
        return FaxboxDomainTakenError(
            "custom_smtp_email_address is already used by another faxbox",
            field="custom_smtp_email_address",
        )
    return ConflictError(f"faxbox conflicts with an existing one: {text}")

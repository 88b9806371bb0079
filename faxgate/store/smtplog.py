"""The SMTP gateway's tables: accepted raw messages and the smtplog.

One smtplog entry exists per message and envelope recipient, accepted or
refused. Entries without an account are the system log: mail refused before
a faxbox was known (unknown domains, the null sender).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiosqlite

from faxgate.errors import NotFoundError
from faxgate.store.base import Page, PageRequest, StoreBase, from_json, to_json
from faxgate.store.faxes import NewFax, insert_fax

# Values of an entry's `status` field.
ACCEPTED = "accepted"
REFUSED = "refused"
DUPLICATE = "duplicate"


@dataclass
class SmtpLogEntry:
    """An smtplog entry to insert.

    `doc` is the document the API serves and carries id, created (Gregorian
    seconds), account_id and faxbox_id. `recipient` is the key that
    duplicate detection compares, `dedupe_id` the Message-ID it compares.
    """

    doc: dict[str, Any]
    recipient: str
    dedupe_id: str | None = None


@dataclass
class Delivery:
    """One accepted recipient of a message: its job and its smtplog entry."""

    job: NewFax
    entry: SmtpLogEntry


@dataclass
class StoredMessage:
    """A raw message written under the data directory, referenced by its jobs."""

    id: str
    path: str
    size: int
    created: int


class SmtpLogMixin(StoreBase):
    async def add_smtplog_entries(self, entries: list[SmtpLogEntry]) -> None:
        """Insert entries that created no job (refusals) in one transaction."""
        async with self.transaction() as db:
            for entry in entries:
                await _insert_entry(db, entry, fax_id=None)

    async def accept_smtp_message(
        self, message: StoredMessage, deliveries: list[Delivery], duplicates_since: int
    ) -> list[dict[str, Any]]:
        """Store a message, a job per recipient and the smtplog entries in one transaction.

        A recipient whose entry has the same Message-ID and recipient key as
        an entry that created a job at or after `duplicates_since` (Gregorian
        seconds) gets no job and is logged as a duplicate. When no recipient
        gets a job, the message row is not kept. Returns the entry documents.
        """
        entries: list[dict[str, Any]] = []
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO smtp_messages (id, path, size, created) VALUES (?, ?, ?, ?)",
                (message.id, message.path, message.size, message.created),
            )
            jobs = 0
            for delivery in deliveries:
                entry = delivery.entry
                original = await _find_original(db, entry, duplicates_since)
                if original is not None:
                    entry.doc.update(status=DUPLICATE, duplicate_of=original, fax_id=None)
                    await _insert_entry(db, entry, fax_id=None)
                else:
                    await insert_fax(db, delivery.job, self.clock.time())
                    entry.doc.update(status=ACCEPTED, fax_id=delivery.job.id)
                    await _insert_entry(db, entry, fax_id=delivery.job.id)
                    jobs += 1
                entries.append(entry.doc)
            if jobs == 0:
                await db.execute("DELETE FROM smtp_messages WHERE id = ?", (message.id,))
        return entries

    async def get_smtp_message(self, message_id: str) -> StoredMessage | None:
        row = await self.fetch_one("SELECT * FROM smtp_messages WHERE id = ?", (message_id,))
        if row is None:
            return None
        return StoredMessage(row["id"], row["path"], row["size"], row["created"])

    async def list_smtplog(
        self, account_id: str | None, page: PageRequest, faxbox_id: str | None = None
    ) -> Page:
        """Return rows {id, from, to, error?, created}; account None lists the system log."""
        where, params = _scope(account_id, faxbox_id)
        rows, next_key = await self.fetch_page(
            "smtplog", where, params, page, columns="seq, doc"
        )
        return Page([listing_row(from_json(row["doc"])) for row in rows], page.start_key, next_key)

    async def list_smtplog_entries(
        self, account_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Return the newest entries of an account (None: the system log) as full documents."""
        where, params = _scope(account_id, None)
        rows = await self.fetch_all(
            f"SELECT doc FROM smtplog WHERE {where} ORDER BY seq DESC LIMIT ?", [*params, limit]
        )
        return [from_json(row["doc"]) for row in rows]

    async def get_smtplog_entry(
        self, account_id: str, entry_id: str, faxbox_id: str | None = None
    ) -> dict[str, Any]:
        where, params = _scope(account_id, faxbox_id)
        row = await self.fetch_one(
            f"SELECT doc FROM smtplog WHERE id = ? AND {where}", [entry_id, *params]
        )
        if row is None:
            raise NotFoundError(f"smtplog entry {entry_id} not found", id=entry_id)
        doc: dict[str, Any] = from_json(row["doc"])
        return doc

    async def find_smtp_logins(self, username: str) -> list[tuple[str, dict[str, Any]]]:
        """Return (account id, faxbox) of every faxbox whose SMTP AUTH user name is `username`."""
        rows = await self.fetch_all(
            "SELECT account_id, doc FROM faxboxes"
            " WHERE json_extract(doc, '$.smtp_auth.username') = ? ORDER BY seq",
            (username,),
        )
        return [(str(row["account_id"]), from_json(row["doc"])) for row in rows]


def listing_row(doc: dict[str, Any]) -> dict[str, Any]:
    row = {"id": doc["id"], "from": doc.get("from"), "to": doc.get("to"), "created": doc["created"]}
    errors = doc.get("errors") or []
    if errors:
        row["error"] = errors[0]
    return row


def _scope(account_id: str | None, faxbox_id: str | None) -> tuple[str, list[Any]]:
    if account_id is None:
        return "account_id IS NULL", []
    if faxbox_id is None:
        return "account_id = ?", [account_id]
    return "account_id = ? AND faxbox_id = ?", [account_id, faxbox_id]


async def _find_original(
    db: aiosqlite.Connection, entry: SmtpLogEntry, since: int
) -> str | None:
    if entry.dedupe_id is None:
        return None
    async with db.execute(
        "SELECT fax_id FROM smtplog WHERE message_id_header = ? AND recipient = ?"
        " AND created >= ? AND fax_id IS NOT NULL ORDER BY seq LIMIT 1",
        (entry.dedupe_id, entry.recipient, since),
    ) as cursor:
        row = await cursor.fetchone()
    return str(row["fax_id"]) if row is not None else None


async def _insert_entry(db: aiosqlite.Connection, entry: SmtpLogEntry, fax_id: str | None) -> None:
    doc = entry.doc
    await db.execute(
        "INSERT INTO smtplog (id, account_id, faxbox_id, message_id_header, recipient, created,"
        " fax_id, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            doc["id"],
            doc.get("account_id"),
            doc.get("faxbox_id"),
            entry.dedupe_id,
            entry.recipient,
            doc["created"],
            fax_id,
            to_json(doc),
        ),
    )

"""Outgoing faxes: queued jobs and, once finished, the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from faxgate.clock import to_gregorian
from faxgate.errors import NotFoundError
from faxgate.ids import new_id
from faxgate.store.base import StoreBase, from_json, to_json

# Job states, in the order a job moves through them.
ATTACHING_FILES = "attaching_files"
PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
QUEUED_STATES = (ATTACHING_FILES, PENDING, PROCESSING)
FINISHED_STATES = (COMPLETED, FAILED)


@dataclass
class NewFax:
    """A job to insert: the indexed columns and the JSON document served by the API."""

    account_id: str
    to_number: str
    from_number: str
    retries: int
    doc: dict[str, Any]
    faxbox_id: str | None = None
    status: str = ATTACHING_FILES
    message_id: str | None = None
    id: str = field(default_factory=new_id)


@dataclass
class FaxFile:
    """A file that belongs to a fax: `kind` is original, tiff, pdf or sent_tiff."""

    kind: str
    path: str
    content_type: str
    size: int
    filename: str | None = None
    position: int = 0


async def insert_fax(db: aiosqlite.Connection, fax: NewFax, now: float) -> dict[str, Any]:
    """Insert `fax` inside the caller's transaction; return the stored document."""
    created = to_gregorian(now)
    doc = {
        **fax.doc,
        "id": fax.id,
        "to_number": fax.to_number,
        "from_number": fax.from_number,
        "retries": fax.retries,
        "faxbox_id": fax.faxbox_id,
    }
    await db.execute(
        "INSERT INTO faxes (id, account_id, faxbox_id, status, to_number, from_number, attempts,"
        " retries, due, message_id, created, modified, doc)"
        " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
        (
            fax.id,
            fax.account_id,
            fax.faxbox_id,
            fax.status,
            fax.to_number,
            fax.from_number,
            fax.retries,
            now,
            fax.message_id,
            created,
            created,
            to_json(doc),
        ),
    )
    return doc


async def insert_fax_files(db: aiosqlite.Connection, fax_id: str, files: list[FaxFile]) -> None:
    for item in files:
        await db.execute(
            "INSERT OR REPLACE INTO fax_files (fax_id, kind, position, path, content_type,"
            " filename, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (fax_id, item.kind, item.position, item.path, item.content_type, item.filename,
             item.size),
        )


class FaxesMixin(StoreBase):
    async def create_fax(self, fax: NewFax, files: list[FaxFile] | None = None) -> dict[str, Any]:
        """Insert a job and its files in one transaction."""
        async with self.transaction() as db:
            doc = await insert_fax(db, fax, self.clock.time())
            await insert_fax_files(db, fax.id, files or [])
        return doc

    async def get_fax_row(self, account_id: str, fax_id: str) -> dict[str, Any]:
        """Return the job's columns with `doc` decoded; NotFoundError if not in the account."""
        row = await self.fetch_one(
            "SELECT * FROM faxes WHERE id = ? AND account_id = ?", (fax_id, account_id)
        )
        if row is None:
            raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
        result = dict(row)
        result["doc"] = from_json(row["doc"])
        return result

    async def list_fax_files(self, fax_id: str, kind: str | None = None) -> list[FaxFile]:
        sql = "SELECT * FROM fax_files WHERE fax_id = ?"
        params: list[Any] = [fax_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = await self.fetch_all(sql + " ORDER BY kind, position", params)
        return [
            FaxFile(
                kind=row["kind"],
                path=row["path"],
                content_type=row["content_type"],
                size=row["size"],
                filename=row["filename"],
                position=row["position"],
            )
            for row in rows
        ]

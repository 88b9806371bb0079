"""Outgoing faxes: queued jobs and, once finished, the outbox.

A worker owns a job while it holds the job's lease (`lease_owner`,
`lease_expires`). Every write a worker makes is conditional on still holding
the lease, so a worker whose lease expired (a stalled or killed process)
cannot overwrite what the next owner does. `attempts` counts started
attempts and is raised when a worker claims a job that no worker held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from faxgate.clock import to_gregorian
from faxgate.errors import FaxgateError, NotFoundError
from faxgate.ids import new_id
from faxgate.store.base import Page, PageRequest, StoreBase, from_json, to_json

# Job states, in the order a job moves through them.
ATTACHING_FILES = "attaching_files"
PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
QUEUED_STATES = (ATTACHING_FILES, PENDING, PROCESSING)
FINISHED_STATES = (COMPLETED, FAILED)

# Values of the `folder` column.
OUTGOING = "outgoing"
OUTBOX = "outbox"

# Kinds of fax files.
ORIGINAL = "original"
TIFF = "tiff"
PDF = "pdf"
SENT_TIFF = "sent_tiff"

_LISTING_COLUMNS = (
    "seq, id, faxbox_id, status, to_number, from_number, attempts, retries, created,"
    " delivered, pages, progress"
)


class LeaseLostError(FaxgateError):
    """The worker no longer holds the job's lease; another worker may own the job now."""

    code = "lease_lost"


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


@dataclass
class Job:
    """A job as a worker claimed it.

    `resumed` is true when the job was taken over from a worker whose lease
    expired: that worker's attempt is then continued, not counted again.
    """

    id: str
    account_id: str
    faxbox_id: str | None
    status: str
    to_number: str
    from_number: str
    attempts: int
    retries: int
    message_id: str | None
    created: int
    call_started: float | None
    pages: int | None
    doc: dict[str, Any]
    resumed: bool


@dataclass
class AttemptEnd:
    """The record a worker writes when an attempt ends.

    `status` is PENDING (another attempt follows at `due`), COMPLETED or
    FAILED. `doc_updates` are merged into the job document.
    """

    status: str
    due: float
    doc_updates: dict[str, Any]
    attempt: dict[str, Any]
    delivered: float | None = None


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
        "INSERT INTO faxes (id, account_id, faxbox_id, status, folder, to_number, from_number,"
        " attempts, retries, due, message_id, created, modified, doc, notified)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, 0)",
        (
            fax.id,
            fax.account_id,
            fax.faxbox_id,
            fax.status,
            OUTBOX if fax.status in FINISHED_STATES else OUTGOING,
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


def _fax_file(row: aiosqlite.Row) -> FaxFile:
    return FaxFile(
        kind=row["kind"],
        path=row["path"],
        content_type=row["content_type"],
        size=row["size"],
        filename=row["filename"],
        position=row["position"],
    )


def _decoded(row: aiosqlite.Row) -> dict[str, Any]:
    result = dict(row)
    result["doc"] = from_json(row["doc"])
    return result


class FaxesMixin(StoreBase):
    async def create_fax(self, fax: NewFax, files: list[FaxFile] | None = None) -> dict[str, Any]:
        """Insert a job and its files in one transaction."""
        async with self.transaction() as db:
            doc = await insert_fax(db, fax, self.clock.time())
            await insert_fax_files(db, fax.id, files or [])
        return doc

    async def create_faxes(self, faxes: Sequence[tuple[NewFax, list[FaxFile]]]) -> int:
        """Insert many jobs with their files in one transaction; return how many."""
        now = self.clock.time()
        async with self.transaction() as db:
            for fax, files in faxes:
                await insert_fax(db, fax, now)
                await insert_fax_files(db, fax.id, files)
        return len(faxes)

    async def get_fax_row(self, account_id: str, fax_id: str) -> dict[str, Any]:
        """Return the job's columns with `doc` decoded; NotFoundError if not in the account."""
        row = await self.fetch_one(
            "SELECT * FROM faxes WHERE id = ? AND account_id = ?", (fax_id, account_id)
        )
        if row is None:
            raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
        return _decoded(row)

    async def find_fax_row(
        self, account_id: str, fax_id: str, folder: str, faxbox_id: str | None = None
    ) -> dict[str, Any] | None:
        """Return the fax in `folder` of the account (and faxbox, when given), or None."""
        sql = "SELECT * FROM faxes WHERE id = ? AND account_id = ? AND folder = ?"
        params: list[Any] = [fax_id, account_id, folder]
        if faxbox_id is not None:
            sql += " AND faxbox_id = ?"
            params.append(faxbox_id)
        row = await self.fetch_one(sql, params)
        return _decoded(row) if row is not None else None

    async def list_faxes(
        self, account_id: str, folder: str, page: PageRequest, faxbox_id: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one keyset page of the folder's listing columns, and the next start key."""
        where = "account_id = ? AND folder = ?"
        params: list[Any] = [account_id, folder]
        if faxbox_id is not None:
            where += " AND faxbox_id = ?"
            params.append(faxbox_id)
        rows, next_key = await self.fetch_page(
            "faxes", where, params, page, columns=_LISTING_COLUMNS
        )
        return [dict(row) for row in rows], next_key

    async def list_fax_files(self, fax_id: str, kind: str | None = None) -> list[FaxFile]:
        sql = "SELECT * FROM fax_files WHERE fax_id = ?"
        params: list[Any] = [fax_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = await self.fetch_all(sql + " ORDER BY kind, position", params)
        return [_fax_file(row) for row in rows]

    async def delete_fax_files(self, fax_id: str) -> list[FaxFile]:
        """Forget every file of the fax and return them, so the caller can remove them."""
        async with self.transaction() as db:
            async with db.execute("SELECT * FROM fax_files WHERE fax_id = ?", (fax_id,)) as cur:
                files = [_fax_file(row) for row in await cur.fetchall()]
            await db.execute("DELETE FROM fax_files WHERE fax_id = ?", (fax_id,))
            await db.execute(
                "UPDATE faxes SET modified = ? WHERE id = ?",
                (to_gregorian(self.clock.time()), fax_id),
            )
        return files

    async def delete_fax(self, account_id: str, fax_id: str, folder: str) -> list[FaxFile]:
        """Delete the fax and its file rows; return the files for the caller to remove."""
        async with self.transaction() as db:
            async with db.execute(
                "DELETE FROM faxes WHERE id = ? AND account_id = ? AND folder = ?",
                (fax_id, account_id, folder),
            ) as cursor:
                if cursor.rowcount == 0:
                    raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
            async with db.execute("SELECT * FROM fax_files WHERE fax_id = ?", (fax_id,)) as cur:
                files = [_fax_file(row) for row in await cur.fetchall()]
            await db.execute("DELETE FROM fax_files WHERE fax_id = ?", (fax_id,))
        return files

    # The job worker's side.

    async def claim_job(
        self, owner: str, lease_seconds: float, per_account_max: int
    ) -> Job | None:
        """Lease the next due job to `owner`, or return None when no job may start now.

        A job is due when it waits in attaching_files or pending and its
        `due` time has come, or when another worker's lease on it expired.
        A job is skipped while any other leased job calls the same number
        (one call per destination) or while its account already has
        `per_account_max` leased jobs.
        """
        now = self.clock.time()
        async with self.transaction() as db:
            row = await _next_claimable(db, now, per_account_max)
            if row is None:
                return None
            resumed = row["lease_owner"] is not None
            await db.execute(
                "UPDATE faxes SET lease_owner = ?, lease_expires = ?, attempts = ?,"
                " modified = ? WHERE id = ?",
                (
                    owner,
                    now + lease_seconds,
                    row["attempts"] if resumed else row["attempts"] + 1,
                    to_gregorian(now),
                    row["id"],
                ),
            )
        return Job(
            id=row["id"],
            account_id=row["account_id"],
            faxbox_id=row["faxbox_id"],
            status=row["status"],
            to_number=row["to_number"],
            from_number=row["from_number"],
            attempts=row["attempts"] if resumed else row["attempts"] + 1,
            retries=row["retries"],
            message_id=row["message_id"],
            created=row["created"],
            call_started=row["call_started"],
            pages=row["pages"],
            doc=from_json(row["doc"]),
            resumed=resumed,
        )

    async def next_due_time(self) -> float | None:
        """Return the earliest `due` of the jobs that wait and nobody holds."""
        row = await self.fetch_one(
            "SELECT MIN(due) AS due FROM faxes WHERE status IN (?, ?) AND lease_owner IS NULL",
            (ATTACHING_FILES, PENDING),
        )
        return float(row["due"]) if row is not None and row["due"] is not None else None

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        """Extend every lease `owner` holds; return how many jobs it holds."""
        return await self.execute(
            "UPDATE faxes SET lease_expires = ? WHERE lease_owner = ?",
            (self.clock.time() + lease_seconds, owner),
        )

    async def set_job_progress(
        self, job_id: str, owner: str, progress: str, status: str | None = None
    ) -> None:
        """Store the live status text (and, when given, the status) of a held job."""
        sql = "UPDATE faxes SET progress = ?, modified = ?"
        params: list[Any] = [progress, to_gregorian(self.clock.time())]
        if status is not None:
            sql += ", status = ?"
            params.append(status)
        await self._update_held(job_id, owner, sql, params)

    async def attach_job_files(
        self, job_id: str, owner: str, files: list[FaxFile], doc_updates: dict[str, Any]
    ) -> None:
        """Record the job's fetched or extracted documents and move it to pending."""
        async with self.transaction() as db:
            doc = await _held_doc(db, job_id, owner)
            doc.update(doc_updates)
            await insert_fax_files(db, job_id, files)
            await db.execute(
                "UPDATE faxes SET status = ?, doc = ?, modified = ? WHERE id = ?",
                (PENDING, to_json(doc), to_gregorian(self.clock.time()), job_id),
            )

    async def record_rendering(
        self, job_id: str, owner: str, files: list[FaxFile], pages: int
    ) -> None:
        """Record the rendered fax image and PDF of a held job."""
        async with self.transaction() as db:
            await _held_doc(db, job_id, owner)
            await insert_fax_files(db, job_id, files)
            await db.execute(
                "UPDATE faxes SET pages = ?, modified = ? WHERE id = ?",
                (pages, to_gregorian(self.clock.time()), job_id),
            )

    async def mark_call_started(self, job_id: str, owner: str) -> None:
        """Note that the held job's call is being placed, before the first dial."""
        now = self.clock.time()
        await self._update_held(
            job_id,
            owner,
            "UPDATE faxes SET call_started = ?, status = ?, progress = ?, modified = ?",
            [now, PROCESSING, "dialing", to_gregorian(now)],
        )

    async def list_unnotified_faxes(self, limit: int = 100) -> list[tuple[str, str]]:
        """Return (account id, fax id) of finished faxes whose notifications were not queued."""
        rows = await self.fetch_all(
            "SELECT account_id, id FROM faxes WHERE notified = 0 AND status IN (?, ?)"
            " ORDER BY seq LIMIT ?",
            (COMPLETED, FAILED, limit),
        )
        return [(str(row["account_id"]), str(row["id"])) for row in rows]

    async def mark_fax_notified(self, fax_id: str) -> None:
        await self.execute("UPDATE faxes SET notified = 1 WHERE id = ?", (fax_id,))

    async def finish_attempt(self, job_id: str, owner: str, end: AttemptEnd) -> dict[str, Any]:
        """Record an ended attempt, release the lease and return the updated document."""
        now = self.clock.time()
        async with self.transaction() as db:
            doc = await _held_doc(db, job_id, owner)
            doc.update(end.doc_updates)
            doc["attempt_history"] = [*doc.get("attempt_history", []), end.attempt]
            await db.execute(
                "UPDATE faxes SET status = ?, folder = ?, due = ?, lease_owner = NULL,"
                " lease_expires = NULL, call_started = NULL, progress = NULL,"
                " delivered = ?, modified = ?, doc = ? WHERE id = ?",
                (
                    end.status,
                    OUTBOX if end.status in FINISHED_STATES else OUTGOING,
                    end.due,
                    to_gregorian(end.delivered) if end.delivered is not None else None,
                    to_gregorian(now),
                    to_json(doc),
                    job_id,
                ),
            )
        return doc

    async def release_job(self, job_id: str, owner: str) -> bool:
        """Hand a held job back unchanged, as if its current attempt never started.

        Only for an attempt that did not reach the line: the attempt is not
        counted and the job is due at once. Return whether the lease was held.
        """
        now = self.clock.time()
        changed = await self.execute(
            "UPDATE faxes SET lease_owner = NULL, lease_expires = NULL, attempts = attempts - 1,"
            " status = CASE WHEN status = ? THEN ? ELSE status END, progress = NULL, due = ?,"
            " modified = ? WHERE id = ? AND lease_owner = ? AND call_started IS NULL",
            (PROCESSING, PENDING, now, to_gregorian(now), job_id, owner),
        )
        return changed > 0

    async def _update_held(
        self, job_id: str, owner: str, sql: str, params: list[Any]
    ) -> None:
        changed = await self.execute(
            sql + " WHERE id = ? AND lease_owner = ?", [*params, job_id, owner]
        )
        if changed == 0:
            raise LeaseLostError(f"job {job_id} is no longer leased to {owner}")


async def _held_doc(db: aiosqlite.Connection, job_id: str, owner: str) -> dict[str, Any]:
    async with db.execute(
        "SELECT doc FROM faxes WHERE id = ? AND lease_owner = ?", (job_id, owner)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise LeaseLostError(f"job {job_id} is no longer leased to {owner}")
    doc: dict[str, Any] = from_json(row["doc"])
    return doc


async def _next_claimable(
    db: aiosqlite.Connection, now: float, per_account_max: int
) -> aiosqlite.Row | None:
    # Jobs of workers whose lease expired come first: they waited longest.
    # The NOT EXISTS and COUNT conditions read only leased rows, which the
    # partial indexes faxes_leased_destination and faxes_leased_account cover.
    busy = (
        " AND NOT EXISTS (SELECT 1 FROM faxes AS other WHERE other.lease_owner IS NOT NULL"
        " AND other.lease_expires >= ? AND other.to_number = f.to_number AND other.id != f.id)"
        " AND (SELECT COUNT(*) FROM faxes AS other WHERE other.lease_owner IS NOT NULL"
        " AND other.lease_expires >= ? AND other.account_id = f.account_id) < ?"
    )
    queries = (
        "SELECT * FROM faxes AS f WHERE f.lease_owner IS NOT NULL AND f.lease_expires < ?"
        + busy
        + " ORDER BY f.lease_expires LIMIT 1",
        "SELECT * FROM faxes AS f WHERE f.status IN (?, ?) AND f.due <= ?"
        " AND f.lease_owner IS NULL" + busy + " ORDER BY f.due, f.seq LIMIT 1",
    )
    parameters: tuple[tuple[Any, ...], ...] = (
        (now, now, now, per_account_max),
        (ATTACHING_FILES, PENDING, now, now, now, per_account_max),
    )
    for sql, params in zip(queries, parameters, strict=True):
        async with db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        if row is not None:
            return row
    return None


def listing_page(rows: list[dict[str, Any]], page: PageRequest, next_key: str | None) -> Page:
    return Page(rows, page.start_key, next_key)

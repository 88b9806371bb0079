"""Received faxes: being received (`incoming`), then the inbox."""

from __future__ import annotations

from typing import Any

from faxgate.clock import from_gregorian, to_gregorian
from faxgate.errors import NotFoundError
from faxgate.ids import month_id, new_id, split_month_id
from faxgate.store.base import Page, PageRequest, from_json, to_json
from faxgate.store.faxes import FaxesMixin, FaxFile, insert_fax_files

RECEIVING = "receiving"
RECEIVED = "received"
RECEIVE_FAILED = "failed"
INBOX_STATES = (RECEIVED, RECEIVE_FAILED)


def inbox_row(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the listing row of a received fax."""
    row = {
        "id": doc["id"],
        "faxbox_id": doc.get("faxbox_id"),
        "from": doc.get("from_number"),
        "to": doc.get("to_number"),
        "status": doc.get("status"),
        "pages": doc.get("pages", 0),
        "created": doc.get("created"),
    }
    if doc.get("status") == RECEIVING:
        row["progress"] = doc.get("progress", {})
    return row


class InboxMixin(FaxesMixin):
    async def create_incoming(
        self, account_id: str, faxbox_id: str, from_number: str, to_number: str
    ) -> dict[str, Any]:
        """Record a fax that has started to arrive; return its document."""
        fax_id = new_id()
        now = self.clock.time()
        created = to_gregorian(now)
        doc = {
            "id": fax_id,
            "faxbox_id": faxbox_id,
            "from_number": from_number,
            "to_number": to_number,
            "status": RECEIVING,
            "created": created,
            "progress": {"pages_received": 0, "started": created},
        }
        await self.execute(
            "INSERT INTO inbox (id, account_id, faxbox_id, status, from_number, to_number,"
            " created, modified, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fax_id, account_id, faxbox_id, RECEIVING, from_number, to_number, created, created,
             to_json(doc)),
        )
        return doc

    async def update_incoming_progress(self, fax_id: str, progress: dict[str, Any]) -> None:
        async with self.transaction() as db:
            async with db.execute(
                "SELECT doc FROM inbox WHERE id = ? AND status = ?", (fax_id, RECEIVING)
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return
            doc = from_json(row["doc"])
            doc["progress"] = {**doc.get("progress", {}), **progress}
            await db.execute(
                "UPDATE inbox SET doc = ?, modified = ? WHERE id = ?",
                (to_json(doc), to_gregorian(self.clock.time()), fax_id),
            )

    async def finish_incoming(
        self,
        fax_id: str,
        status: str,
        fields: dict[str, Any],
        files: list[FaxFile],
    ) -> dict[str, Any]:
        """Move a fax from incoming to the inbox with its result and files."""
        now = to_gregorian(self.clock.time())
        async with self.transaction() as db:
            async with db.execute("SELECT doc FROM inbox WHERE id = ?", (fax_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise NotFoundError(f"incoming fax {fax_id} not found", id=fax_id)
            doc = from_json(row["doc"])
            doc.update(fields)
            doc["status"] = status
            doc["received"] = now
            doc.pop("progress", None)
            await insert_fax_files(db, fax_id, files)
            await db.execute(
                "UPDATE inbox SET status = ?, doc = ?, modified = ? WHERE id = ?",
                (status, to_json(doc), now, fax_id),
            )
        return self._with_inbox_id(doc)

    async def discard_incoming(self, fax_id: str) -> None:
        """Delete the record of a reception that is not kept."""
        await self.execute("DELETE FROM inbox WHERE id = ? AND status = ?", (fax_id, RECEIVING))

    async def interrupted_incoming(self) -> list[dict[str, Any]]:
        """Return receptions left in progress by a process that stopped; used at start-up."""
        rows = await self.fetch_all(
            "SELECT account_id, doc FROM inbox WHERE status = ?", (RECEIVING,)
        )
        return [{"account_id": row["account_id"], **from_json(row["doc"])} for row in rows]

    async def get_inbox_fax(
        self, account_id: str, fax_id: str, states: tuple[str, ...] = INBOX_STATES
    ) -> dict[str, Any]:
        """Return a received fax by its month-scoped or bare id; NotFoundError otherwise."""
        parts = split_month_id(fax_id)
        if parts is None:
            raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
        month, hex_id = parts
        placeholders = ",".join("?" for _ in states)
        row = await self.fetch_one(
            f"SELECT doc FROM inbox WHERE id = ? AND account_id = ? AND status IN ({placeholders})",
            (hex_id, account_id, *states),
        )
        if row is None:
            raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
        doc = self._with_inbox_id(from_json(row["doc"]))
        if month is not None and doc["id"] != fax_id:
            raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
        return doc

    async def list_inbox(
        self,
        account_id: str,
        page: PageRequest,
        states: tuple[str, ...] = INBOX_STATES,
        faxbox_id: str | None = None,
    ) -> Page:
        where = f"account_id = ? AND status IN ({','.join('?' for _ in states)})"
        params: list[Any] = [account_id, *states]
        if faxbox_id is not None:
            where += " AND faxbox_id = ?"
            params.append(faxbox_id)
        rows, next_key = await self.fetch_page("inbox", where, params, page, columns="seq, doc")
        docs = [self._with_inbox_id(from_json(row["doc"])) for row in rows]
        return Page([inbox_row(doc) for doc in docs], page.start_key, next_key)

    async def delete_inbox_files(self, fax_id: str) -> list[FaxFile]:
        """Forget the files of a received fax and return them, for the caller to unlink."""
        files = await self.list_fax_files(fax_id)
        async with self.transaction() as db:
            await db.execute("DELETE FROM fax_files WHERE fax_id = ?", (fax_id,))
            async with db.execute("SELECT doc FROM inbox WHERE id = ?", (fax_id,)) as cursor:
                row = await cursor.fetchone()
            if row is not None:
                doc = from_json(row["doc"])
                doc["attachments_deleted"] = True
                await db.execute("UPDATE inbox SET doc = ? WHERE id = ?", (to_json(doc), fax_id))
        return files

    async def delete_inbox_fax(self, fax_id: str) -> list[FaxFile]:
        files = await self.list_fax_files(fax_id)
        async with self.transaction() as db:
            await db.execute("DELETE FROM fax_files WHERE fax_id = ?", (fax_id,))
            await db.execute("DELETE FROM inbox WHERE id = ?", (fax_id,))
        return files

    @staticmethod
    def _with_inbox_id(doc: dict[str, Any]) -> dict[str, Any]:
        """Give a finished fax its month-scoped id, as Kazoo's inbox documents have."""
        if doc.get("status") in INBOX_STATES and "-" not in doc["id"]:
            doc = {**doc, "id": month_id(from_gregorian(doc["created"]), doc["id"])}
        return doc

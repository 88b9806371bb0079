"""Queued notifications: mail and callbacks waiting for delivery, and their outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faxgate.clock import from_gregorian, to_gregorian
from faxgate.ids import new_id
from faxgate.store.base import StoreBase, from_json, to_json

# Notification states.
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"

EMAIL = "email"
CALLBACK = "callback"


@dataclass
class NewNotification:
    """A notification to queue; its payload file must already be on disk."""

    dedupe_key: str
    account_id: str
    fax_id: str
    event: str
    channel: str
    recipient: str
    payload_path: str
    doc: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)


@dataclass
class Notification:
    """A stored notification row."""

    id: str
    dedupe_key: str
    account_id: str
    fax_id: str
    event: str
    channel: str
    recipient: str
    status: str
    attempts: int
    due: float
    payload_path: str
    last_error: str | None
    created: int
    sent: int | None
    doc: dict[str, Any]

    @property
    def created_unix(self) -> float:
        return from_gregorian(self.created)


def _notification(row: Any) -> Notification:
    return Notification(
        id=row["id"],
        dedupe_key=row["dedupe_key"],
        account_id=row["account_id"],
        fax_id=row["fax_id"],
        event=row["event"],
        channel=row["channel"],
        recipient=row["recipient"],
        status=row["status"],
        attempts=row["attempts"],
        due=row["due"],
        payload_path=row["payload_path"],
        last_error=row["last_error"],
        created=row["created"],
        sent=row["sent"],
        doc=from_json(row["doc"]),
    )


class NotificationsMixin(StoreBase):
    async def existing_notification_keys(self, dedupe_keys: Sequence[str]) -> set[str]:
        """Return those of `dedupe_keys` that are already queued, sent or failed."""
        if not dedupe_keys:
            return set()
        marks = ", ".join("?" for _ in dedupe_keys)
        rows = await self.fetch_all(
            f"SELECT dedupe_key FROM notifications WHERE dedupe_key IN ({marks})",
            list(dedupe_keys),
        )
        return {str(row["dedupe_key"]) for row in rows}

    async def queue_notifications(self, items: Sequence[NewNotification]) -> list[str]:
        """Insert the notifications due now, in one transaction; return the ids inserted.

        An item whose dedupe key exists already is skipped, so the caller
        can delete its payload file.
        """
        now = self.clock.time()
        created = to_gregorian(now)
        inserted = []
        async with self.transaction() as db:
            for item in items:
                async with db.execute(
                    "INSERT OR IGNORE INTO notifications (id, dedupe_key, account_id, fax_id,"
                    " event, channel, recipient, status, attempts, due, payload_path, created,"
                    " modified, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
                    (
                        item.id,
                        item.dedupe_key,
                        item.account_id,
                        item.fax_id,
                        item.event,
                        item.channel,
                        item.recipient,
                        QUEUED,
                        now,
                        item.payload_path,
                        created,
                        created,
                        to_json(item.doc),
                    ),
                ) as cursor:
                    if cursor.rowcount:
                        inserted.append(item.id)
        return inserted

    async def due_notifications(self, channel: str, now: float, limit: int) -> list[Notification]:
        """Return up to `limit` queued notifications of `channel` that are due, oldest due first."""
        rows = await self.fetch_all(
            "SELECT * FROM notifications WHERE status = ? AND channel = ? AND due <= ?"
            " ORDER BY due, seq LIMIT ?",
            (QUEUED, channel, now, limit),
        )
        return [_notification(row) for row in rows]

    async def next_notification_due(self, channel: str) -> float | None:
        """Return the earliest due time of a queued notification of `channel`, if any."""
        row = await self.fetch_one(
            "SELECT MIN(due) AS due FROM notifications WHERE status = ? AND channel = ?",
            (QUEUED, channel),
        )
        if row is None or row["due"] is None:
            return None
        return float(row["due"])

    async def mark_notification_sent(self, notification_id: str, attempts: int) -> None:
        now = to_gregorian(self.clock.time())
        await self.execute(
            "UPDATE notifications SET status = ?, attempts = ?, sent = ?, modified = ?,"
            " last_error = NULL WHERE id = ?",
            (SENT, attempts, now, now, notification_id),
        )

    async def defer_notification(
        self, notification_id: str, attempts: int, due: float, error: str
    ) -> None:
        """Keep the notification queued until `due`, recording the failed attempt."""
        await self.execute(
            "UPDATE notifications SET attempts = ?, due = ?, last_error = ?, modified = ?"
            " WHERE id = ? AND status = ?",
            (attempts, due, error, to_gregorian(self.clock.time()), notification_id, QUEUED),
        )

    async def fail_notification(self, notification_id: str, attempts: int, error: str) -> None:
        """Stop trying the notification and keep the reason for a person to read."""
        await self.execute(
            "UPDATE notifications SET status = ?, attempts = ?, last_error = ?, modified = ?"
            " WHERE id = ?",
            (FAILED, attempts, error, to_gregorian(self.clock.time()), notification_id),
        )

    async def get_notification(self, notification_id: str) -> Notification | None:
        row = await self.fetch_one("SELECT * FROM notifications WHERE id = ?", (notification_id,))
        return _notification(row) if row else None

    async def list_notifications(
        self, fax_id: str | None = None, status: str | None = None
    ) -> list[Notification]:
        """Return notifications in the order they were queued, optionally of one fax or status."""
        conditions = ["1 = 1"]
        params: list[Any] = []
        if fax_id is not None:
            conditions.append("fax_id = ?")
            params.append(fax_id)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        rows = await self.fetch_all(
            f"SELECT * FROM notifications WHERE {' AND '.join(conditions)} ORDER BY seq", params
        )
        return [_notification(row) for row in rows]

    async def notification_payload_paths(self) -> set[str]:
        """Return the payload paths of queued and failed notifications, which must stay."""
        rows = await self.fetch_all(
            "SELECT payload_path FROM notifications WHERE status IN (?, ?)", (QUEUED, FAILED)
        )
        return {str(row["payload_path"]) for row in rows}

    async def count_notifications(self, status: str) -> int:
        row = await self.fetch_one(
            "SELECT COUNT(*) AS n FROM notifications WHERE status = ?", (status,)
        )
        return int(row["n"]) if row else 0

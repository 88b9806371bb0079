"""Counts for /health and /metrics, read at request time."""

from __future__ import annotations

from faxgate.store.base import StoreBase
from faxgate.store.faxes import PENDING


class StatsMixin(StoreBase):
    async def count_faxes_by_status(self) -> dict[str, int]:
        """Return the number of outgoing faxes in each status that has any."""
        rows = await self.fetch_all("SELECT status, COUNT(*) AS n FROM faxes GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in rows}

    async def count_due_faxes(self, now: float) -> int:
        """Return the number of pending jobs whose next attempt may start at `now` (Unix time)."""
        row = await self.fetch_one(
            "SELECT COUNT(*) AS n FROM faxes WHERE status = ? AND due <= ?", (PENDING, now)
        )
        return int(row["n"]) if row else 0

    async def count_inbox_by_status(self) -> dict[str, int]:
        """Return the number of received faxes in each status (receiving, received, failed)."""
        rows = await self.fetch_all("SELECT status, COUNT(*) AS n FROM inbox GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in rows}

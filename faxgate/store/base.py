"""Connection handling, migrations and the helpers every table module shares.

All SQL of faxgate lives in this package. Each concept has its own mixin
module (accounts, faxboxes, faxes, inbox, smtplog); `faxgate.store.Store`
combines them over one aiosqlite connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from faxgate.clock import Clock, SystemClock
from faxgate.errors import FaxgateError

log = logging.getLogger("faxgate.store")

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreError(FaxgateError):
    """The store failed; the data directory may be unreadable or full."""

    code = "store_error"


class InvalidStartKeyError(FaxgateError):
    """The start_key is not one this server issued; restart the listing without it."""

    code = "invalid_start_key"


@dataclass(frozen=True)
class PageRequest:
    """A keyset page request: rows after `start_key`, newest first unless ascending."""

    page_size: int | None = 50
    start_key: str | None = None
    ascending: bool = False
    created_from: int | None = None
    created_to: int | None = None


@dataclass
class Page:
    rows: list[dict[str, Any]]
    start_key: str | None
    next_start_key: str | None


def decode_start_key(start_key: str | None) -> int | None:
    """Turn an opaque start_key back into the sequence number it stands for."""
    if start_key is None or start_key == "":
        return None
    digits = start_key[1:]
    if not start_key.startswith("k") or not digits.isascii() or not digits.isdigit():
        raise InvalidStartKeyError()
    if len(digits) > 18:
        # Sequence numbers are SQLite integers, below 2**63.
        raise InvalidStartKeyError()
    return int(start_key[1:])


def encode_start_key(seq: int) -> str:
    return f"k{seq}"


class StoreBase:
    """The connection, the clock and shared query helpers."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = path
        self.clock: Clock = clock or SystemClock()
        self._db: aiosqlite.Connection | None = None
        # aiosqlite runs every statement on one thread in order; this lock
        # keeps multi-statement transactions from interleaving.
        self._write_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
        except Exception as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        # FULL makes every commit durable across power loss, not only process
        # death; accepted mail and jobs must survive both.
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> bool:
        """Return whether the database responds to a trivial query."""
        try:
            async with self.db.execute("SELECT 1") as cursor:
                return (await cursor.fetchone()) is not None
        except (StoreError, aiosqlite.Error):
            return False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block in one IMMEDIATE transaction, committed on success."""
        async with self._write_lock:
            await self._begin()
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _begin(self) -> None:
        try:
            await self.db.execute("BEGIN IMMEDIATE")
        except asyncio.CancelledError:
            # aiosqlite runs the BEGIN on its own thread even when the await is
            # cancelled, and an open transaction would make the next BEGIN fail.
            # Statements run in the order they are sent, so this ROLLBACK ends it.
            # OperationalError: the BEGIN itself failed, so no transaction is open.
            with suppress(sqlite3.OperationalError):
                await self.db.execute("ROLLBACK")
            raise

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self.db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        async with self.transaction() as db, db.execute(sql, params) as cursor:
            return cursor.rowcount

    async def fetch_page(
        self,
        table: str,
        where: str,
        params: Sequence[Any],
        page: PageRequest,
        columns: str = "*",
    ) -> tuple[list[aiosqlite.Row], str | None]:
        """Return one keyset page of `table` rows matching `where`, and the next start key.

        Rows are ordered by the table's `seq` column, so a page costs the
        same wherever it starts, and rows added during a listing never
        shift the rows not yet read.
        """
        conditions = [where]
        values = list(params)
        start = decode_start_key(page.start_key)
        if start is not None:
            conditions.append("seq >= ?" if page.ascending else "seq <= ?")
            values.append(start)
        if page.created_from is not None:
            conditions.append("created >= ?")
            values.append(page.created_from)
        if page.created_to is not None:
            conditions.append("created <= ?")
            values.append(page.created_to)
        order = "ASC" if page.ascending else "DESC"
        sql = f"SELECT {columns} FROM {table} WHERE {' AND '.join(conditions)} ORDER BY seq {order}"
        if page.page_size is not None:
            sql += " LIMIT ?"
            values.append(page.page_size + 1)
        rows = await self.fetch_all(sql, values)

        next_key = None
        if page.page_size is not None and len(rows) > page.page_size:
            next_key = encode_start_key(rows[page.page_size]["seq"])
            rows = rows[: page.page_size]
        return rows, next_key

    async def _migrate(self) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        row = await self.fetch_one("SELECT MAX(version) AS version FROM schema_version")
        current = row["version"] if row and row["version"] is not None else 0
        for version, name, sql in _migrations():
            if version <= current:
                continue
            log.info("store.migrate version=%d name=%s", version, name)
            async with self.transaction() as db:
                for statement in _split_statements(sql):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    folder = resources.files("faxgate.store") / "migrations"
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def _split_statements(sql: str) -> list[str]:
    """Split a migration file into statements (no semicolons inside literals)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def from_json(text: str) -> Any:
    return json.loads(text)

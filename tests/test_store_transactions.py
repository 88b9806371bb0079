"""Store transactions cut off by task cancellation, on a real SQLite file.

Shutdown cancels tasks that may be inside a store write. Whatever point the
cancellation hits, the next write must still work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faxgate.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store(tmp_path / "faxgate.sqlite3")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def insert_message(store: Store, message_id: str) -> None:
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO smtp_messages (id, path, size, created) VALUES (?, ?, 1, 0)",
            (message_id, f"mail/{message_id}.eml"),
        )


async def test_cancel_during_begin(store: Store) -> None:
    cut_off = asyncio.create_task(insert_message(store, "m1"))
    # One turn of the loop brings the task to its wait for BEGIN IMMEDIATE,
    # which aiosqlite's thread then runs whether or not the task is cancelled.
    await asyncio.sleep(0)
    cut_off.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut_off

    await insert_message(store, "m2")

    assert await store.get_smtp_message("m1") is None
    assert await store.get_smtp_message("m2") is not None


async def test_cancel_during_commit(store: Store) -> None:
    body_done = asyncio.Event()

    async def insert_then_signal() -> None:
        async with store.transaction() as db:
            await db.execute(
                "INSERT INTO smtp_messages (id, path, size, created) VALUES ('m1', 'a', 1, 0)"
            )
            body_done.set()

    cut_off = asyncio.create_task(insert_then_signal())
    await body_done.wait()
    # The task has sent COMMIT and waits for it.
    cut_off.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut_off

    await insert_message(store, "m2")

    # The COMMIT had reached SQLite, so the write stands although its task was cancelled.
    assert await store.get_smtp_message("m1") is not None
    assert await store.get_smtp_message("m2") is not None

"""The job worker: retries and their delays, call limits, leases and shutdown."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faxgate.jobs import ExtractedPart, write_originals
from faxgate.service import Service
from faxgate.store import Store
from faxgate.store.faxes import PENDING, NewFax
from faxgate.worker import retry_delay
from tests.conftest import make_config, wait_for
from tests.outgoing_support import StandInDialer, StandInPipeline, make_pdf

BUSY_NUMBER = "+12125550111"
TO = "+12125550123"
FROM = "+12125550100"


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in services:
        await service.stop()


async def start_service(
    services: list[Service], data_dir: Path, dialer: StandInDialer, **worker: Any
) -> Service:
    settings = {"poll_interval": 0.05, **worker}
    service = Service(
        make_config(data_dir, worker=settings), dialer=dialer, pipeline=StandInPipeline()
    )
    await service.start()
    services.append(service)
    return service


async def queue(service: Service, account_id: str, to_number: str, retries: int) -> str:
    """Queue a one-page upload job straight through the store, as the API does."""
    fax = NewFax(account_id, to_number, FROM, retries, {"source": "test"}, status=PENDING)
    files = write_originals(
        service.config.data_dir, fax.id, [ExtractedPart(make_pdf(1), "application/pdf", None)]
    )
    await service.store.create_fax(fax, files)
    service.context.components["worker"].wake()
    return fax.id


async def finished_row(service: Service, account_id: str, job_id: str) -> dict[str, Any]:
    async def row() -> dict[str, Any] | None:
        found = await service.store.get_fax_row(account_id, job_id)
        return found if found["folder"] == "outbox" else None

    result: dict[str, Any] = await wait_for(row, within=20)
    return result


def test_retry_delay_grows() -> None:
    delays = [retry_delay(n, "no_answer", 10, 2, 35) for n in (1, 2, 3, 4)]
    assert delays == [10, 20, 35, 35]
    assert retry_delay(2, "busy", 10, 2, 35) == 4


async def test_busy_number_fails_after_retries(
    running: list[Service], tmp_path: Path
) -> None:
    dialer = StandInDialer(busy=(BUSY_NUMBER,))
    service = await start_service(
        running, tmp_path / "data", dialer, busy_retry_delay=0.3, retry_delay=5.0
    )
    account, _key = await service.store.create_account("a")
    job_id = await queue(service, account["id"], BUSY_NUMBER, retries=3)

    row = await finished_row(service, account["id"], job_id)
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert [call.destination for call in dialer.calls] == [BUSY_NUMBER] * 3
    gaps = [b.started - a.ended for a, b in zip(dialer.calls, dialer.calls[1:], strict=False)]
    assert 0.3 <= gaps[0] < 0.3 + 0.5
    assert 0.6 <= gaps[1] < 0.6 + 0.5
    history = row["doc"]["attempt_history"]
    assert [entry["cause"] for entry in history] == ["busy", "busy", "busy"]
    assert [entry.get("retry_in") for entry in history] == [0.3, 0.6, None]
    assert row["doc"]["tx_result"]["success"] is False


async def test_busy_once_then_completes(running: list[Service], tmp_path: Path) -> None:
    dialer = StandInDialer(busy_times={BUSY_NUMBER: 1})
    service = await start_service(running, tmp_path / "data", dialer, busy_retry_delay=0.1)
    account, _key = await service.store.create_account("a")
    job_id = await queue(service, account["id"], BUSY_NUMBER, retries=3)

    row = await finished_row(service, account["id"], job_id)
    assert row["status"] == "completed"
    assert row["attempts"] == 2
    assert row["delivered"] is not None
    assert row["doc"]["tx_result"]["success"] is True


async def test_one_call_per_destination(running: list[Service], tmp_path: Path) -> None:
    dialer = StandInDialer(page_seconds=0.1)
    service = await start_service(running, tmp_path / "data", dialer, max_calls=4)
    account, _key = await service.store.create_account("a")
    same = [await queue(service, account["id"], TO, 1) for _ in range(3)]
    other = await queue(service, account["id"], BUSY_NUMBER.replace("111", "122"), 1)

    for job_id in [*same, other]:
        await finished_row(service, account["id"], job_id)
    assert dialer.max_active_per_destination == 1
    calls_to_same = sorted((c.started, c.ended) for c in dialer.calls if c.destination == TO)
    for (_start, end), (next_start, _end) in itertools.pairwise(calls_to_same):
        assert next_start >= end


async def test_claim_respects_account_cap(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", clock=ManualClock())
    await store.open()
    try:
        account, _key = await store.create_account("a")
        for index in range(3):
            number = f"+1212555012{index}"
            await store.create_fax(NewFax(account["id"], number, FROM, 1, {}, status=PENDING))
        first = await store.claim_job("w1", 60, per_account_max=2)
        second = await store.claim_job("w1", 60, per_account_max=2)
        third = await store.claim_job("w2", 60, per_account_max=2)
    finally:
        await store.close()
    assert first is not None
    assert second is not None
    assert third is None


async def test_expired_lease_resumes_without_new_attempt(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store(tmp_path / "db.sqlite3", clock=clock)
    await store.open()
    try:
        account, _key = await store.create_account("a")
        await store.create_fax(NewFax(account["id"], TO, FROM, 2, {}, status=PENDING))
        claimed = await store.claim_job("dead-worker", 60, per_account_max=10)
        assert claimed is not None
        assert await store.claim_job("live-worker", 60, per_account_max=10) is None

        clock.now += 61
        resumed = await store.claim_job("live-worker", 60, per_account_max=10)
    finally:
        await store.close()
    assert resumed is not None
    assert resumed.id == claimed.id
    assert resumed.resumed is True
    assert resumed.attempts == 1


async def test_interrupted_call_counts_as_attempt(
    running: list[Service], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    store = Store(data_dir / "faxgate.sqlite3")
    await store.open()
    account, _key = await store.create_account("a")
    fax = NewFax(account["id"], TO, FROM, 1, {}, status=PENDING)
    await store.create_fax(fax)
    claimed = await store.claim_job("dead-worker", 0.2, per_account_max=10)
    assert claimed is not None
    await store.mark_call_started(fax.id, "dead-worker")
    await store.close()
    await asyncio.sleep(0.3)

    dialer = StandInDialer()
    service = await start_service(running, data_dir, dialer)
    row = await finished_row(service, account["id"], fax.id)
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["doc"]["attempt_history"][0]["cause"] == "interrupted"
    assert dialer.calls == []


async def test_stop_hands_back_unstarted_job(running: list[Service], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    service = Service(
        make_config(data_dir, worker={"poll_interval": 0.05}),
        dialer=StandInDialer(),
        pipeline=StandInPipeline(render_delay=5.0),
    )
    await service.start()
    account, _key = await service.store.create_account("a")
    job_id = await queue(service, account["id"], TO, retries=1)

    async def rendering() -> bool:
        row = await service.store.get_fax_row(account["id"], job_id)
        return row["progress"] == "rendering the document"

    await wait_for(rendering)
    await service.stop()

    store = Store(data_dir / "faxgate.sqlite3")
    await store.open()
    try:
        row = await store.get_fax_row(account["id"], job_id)
    finally:
        await store.close()
    assert row["status"] == "pending"
    assert row["attempts"] == 0
    assert row["lease_owner"] is None


async def stop_during_call(tmp_path: Path, shutdown_timeout: float) -> dict[str, Any]:
    data_dir = tmp_path / "data"
    worker = {"poll_interval": 0.05, "shutdown_timeout": shutdown_timeout}
    service = Service(
        make_config(data_dir, worker=worker),
        dialer=StandInDialer(page_seconds=0.5),
        pipeline=StandInPipeline(),
    )
    await service.start()
    account, _key = await service.store.create_account("a")
    job_id = await queue(service, account["id"], TO, retries=2)

    async def calling() -> bool:
        row = await service.store.get_fax_row(account["id"], job_id)
        return str(row["progress"]).startswith("sending page")

    await wait_for(calling)
    await service.stop()

    store = Store(data_dir / "faxgate.sqlite3")
    await store.open()
    try:
        return await store.get_fax_row(account["id"], job_id)
    finally:
        await store.close()


async def test_stop_lets_call_finish(tmp_path: Path) -> None:
    row = await stop_during_call(tmp_path, shutdown_timeout=10.0)
    assert row["status"] == "completed"
    assert row["attempts"] == 1


async def test_stop_cuts_off_long_call(tmp_path: Path) -> None:
    row = await stop_during_call(tmp_path, shutdown_timeout=0.1)
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["lease_owner"] is None
    assert row["call_started"] is None
    assert row["doc"]["attempt_history"][0]["cause"] == "interrupted"


async def test_blocked_jobs_do_not_spin(running: list[Service], tmp_path: Path) -> None:
    dialer = StandInDialer(page_seconds=1.5)
    service = await start_service(running, tmp_path / "data", dialer, poll_interval=1.0)
    account, _key = await service.store.create_account("a")
    for _ in range(3):
        await queue(service, account["id"], TO, 1)

    async def calling() -> bool:
        return bool(dialer.active.get(TO))

    await wait_for(calling)
    cpu_before = time.process_time()
    await asyncio.sleep(1.0)
    # Two jobs are due but wait for the call to their number. Polling for
    # them in a loop would use a whole core for this second.
    assert time.process_time() - cpu_before < 0.3

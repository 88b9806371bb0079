"""Crash safety: a server killed with SIGKILL loses no job and sends none twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from faxgate.store import Store
from tests.conftest import ApiClient, ServerProcess, wait_for
from tests.outgoing_support import make_pdf

FROM = "+12125550100"
# Enough pages that rendering takes long enough to kill the server inside it.
PAGES = 30


async def create_account(data_dir: Path) -> str:
    store = Store(data_dir / "faxgate.sqlite3")
    await store.open()
    try:
        _account, api_key = await store.create_account("crash")
    finally:
        await store.close()
    return api_key


def worker_env() -> dict[str, str]:
    return {
        "FAXGATE_WORKER_MAX_CALLS": "1",
        "FAXGATE_WORKER_LEASE": "2",
        "FAXGATE_WORKER_POLL_INTERVAL": "0.1",
        "FAXGATE_WORKER_RETRY_DELAY": "0.2",
        "FAXGATE_WORKER_BUSY_RETRY_DELAY": "0.2",
    }


async def test_sigkill_loses_no_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    api_key = await create_account(data_dir)
    server = ServerProcess(data_dir, env=worker_env())
    server.start()
    try:
        async with aiohttp.ClientSession() as http:
            client = ApiClient(http, server.http_url)
            await client.authenticate(api_key)
            job_ids = [await queue_upload(client, index) for index in range(4)]
            await wait_for(lambda: any_rendering(client), within=30, interval=0.01)
            server.kill()
            assert await calls_in_progress(data_dir) == [], "the kill came during a call"

            server.start()
            client.base_url = server.http_url
            finished = [await outbox_entry(client, job_id) for job_id in job_ids]
    finally:
        server.kill()

    received = [path.name.split("-")[1] for path in (data_dir / "received").glob("*.tif")]
    for fax in finished:
        digits = fax["to_number"].lstrip("+")
        assert received.count(digits) == 1, (digits, received)
        assert fax["status"] == "completed", fax
        assert fax["attempts"] == 1, fax
        history = fax["attempt_history"]
        assert [entry["cause"] for entry in history] == ["normal"], fax
        assert fax["tx_result"]["pages_sent"] == PAGES


async def queue_upload(client: ApiClient, index: int) -> str:
    path = client.account_path(f"/faxes?to_number=+1212555{index:04d}&from_number={FROM}")
    status, body = await client.request(
        "PUT", path, data=make_pdf(PAGES), headers={"Content-Type": "application/pdf"}
    )
    assert status == 201, body
    job_id: str = body["data"]["id"]
    return job_id


async def calls_in_progress(data_dir: Path) -> list[str]:
    """Return the ids of jobs whose call had started when the server died."""
    store = Store(data_dir / "faxgate.sqlite3")
    await store.open()
    try:
        rows = await store.fetch_all("SELECT id FROM faxes WHERE call_started IS NOT NULL")
    finally:
        await store.close()
    return [row["id"] for row in rows]


async def any_rendering(client: ApiClient) -> bool:
    status, body = await client.request("GET", client.account_path("/faxes/outgoing"))
    assert status == 200, body
    return any(row.get("progress") == "rendering the document" for row in body["data"])


async def outbox_entry(client: ApiClient, job_id: str) -> dict[str, Any]:
    async def entry() -> dict[str, Any] | None:
        status, body = await client.request(
            "GET", client.account_path(f"/faxes/outbox/{job_id}")
        )
        return body["data"] if status == 200 else None

    found: dict[str, Any] = await wait_for(entry, within=120, interval=0.2)
    return found

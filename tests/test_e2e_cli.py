"""`faxgate send` and `faxgate status` as child processes against a running faxgate.

The server runs in this process with the loopback trunk, the document
renderer and the worker, so `send --wait` follows a fax that is really
rendered and transmitted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faxgate.service import Service
from tests.conftest import ApiClient, make_config, run_cli, start_service, wait_for
from tests.smtp_corpus import make_pdf

TO = "+12125550123"
FROM = "+12125550100"
# The loopback rule below makes this number busy.
BUSY_TO = "+12125550199"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Service]:
    config = make_config(
        tmp_path / "data",
        fax={"resolution": "standard"},
        # A busy number is tried again only after five minutes, so its job
        # stays in the queue for the rest of the test.
        worker={"poll_interval": 0.05, "busy_retry_delay": 300.0},
        loopback={"rules": [{"pattern": BUSY_TO, "behaviour": "busy"}]},
        documents={"workers": 1},
        log={"level": "INFO"},
    )
    service = await start_service(config)
    try:
        yield service
    finally:
        await service.stop()


async def api_key_for(service: Service) -> str:
    _account, api_key = await service.store.create_account("cli")
    return api_key


def cli_env(service: Service, api_key: str) -> dict[str, str]:
    return {"FAXGATE_API_KEY": api_key, "FAXGATE_STORAGE_DATA_DIR": str(service.config.data_dir)}


async def test_send_wait_completes(server: Service, tmp_path: Path) -> None:
    api_key = await api_key_for(server)
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(make_pdf(2))

    result = await run_cli(
        "send", "--url", server.http_url, "--to", TO, "--from", FROM,
        "--wait", "--interval", "0.1", str(letter),
        env=cli_env(server, api_key),
    )

    assert result.code == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["status"] == "completed"
    assert final["to_number"] == TO
    assert final["tx_result"]["success"] is True
    assert final["tx_result"]["pages_sent"] == 2
    job_id = final["id"].split("-", 1)[1]
    progress = result.stderr.splitlines()
    assert any(line.startswith("uploading: 100% of") for line in progress), progress
    queued = progress.index(f"queued fax {job_id} to {TO}")
    # One line per change of the job's state, ending with the outbox entry.
    states = progress[queued + 1:]
    assert all(line.startswith(f"fax {job_id}: ") for line in states[:-1]), states
    assert states[-1] == f"fax {final['id']}: completed, attempt 1 of 3, 2 pages sent"
    assert api_key not in result.stderr


async def test_status_shows_queue(
    server: Service, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    api_key = await api_key_for(server)
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(make_pdf(1))
    env = cli_env(server, api_key)
    sent = await run_cli(
        "send", "--url", server.http_url, "--to", TO, "--wait", "--interval", "0.1",
        "--from", FROM, str(letter), env=env,
    )
    assert sent.code == 0, sent.stderr
    queued = await run_cli(
        "send", "--url", server.http_url, "--to", BUSY_TO, "--from", FROM, "--retries", "2",
        str(letter), env=env,
    )
    assert queued.code == 0, queued.stderr
    busy_job = json.loads(queued.stdout)["id"]

    api = ApiClient(http, server.http_url)
    await api.authenticate(api_key)

    async def waiting_for_retry() -> dict[str, Any] | None:
        status, body = await api.request("GET", api.account_path(f"/faxes/outgoing/{busy_job}"))
        assert status == 200, body
        job: dict[str, Any] = body["data"]
        return job if "retry_after" in job else None

    await wait_for(waiting_for_retry, within=60, interval=0.1)

    result = await run_cli("status", "--url", server.http_url, env=env)

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"faxgate 0.1.0 at {server.http_url}: ok"
    assert "queue: 1 jobs (attaching_files 0, pending 1, processing 0), 0 due now" in lines
    assert "finished: completed 1, failed 0" in lines
    assert "trunk loopback: ok, 0 of 4 channels in use" in lines

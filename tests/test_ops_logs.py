"""Log lines: events with ids, JSON when configured, and no secret anywhere in the output."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from faxgate.api.app import create_app
from faxgate.logs import EventLogger, JsonFormatter, TextFormatter
from faxgate.service import Service
from tests.conftest import REPO, ApiClient, ServerProcess


def create_account(data_dir: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "faxgate.cli", "account", "create", "logs"],
        cwd=REPO,
        env={**os.environ, "FAXGATE_STORAGE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    created: dict[str, str] = json.loads(result.stdout)
    return created


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_secrets_absent_from_log(
    tmp_path: Path, http: aiohttp.ClientSession, log_format: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    created = create_account(data_dir)
    wrong_key = "f" * 64
    server = ServerProcess(data_dir, env={"FAXGATE_LOG_FORMAT": log_format})
    try:
        server.start()
        client = ApiClient(http, server.http_url)
        token = await client.authenticate(created["api_key"])
        status, _ = await client.request(
            "PUT", client.account_path("/faxboxes"), {"data": {"name": "Desk"}}
        )
        assert status == 201
        status, _ = await client.request("GET", client.account_path("/faxboxes"))
        assert status == 200
        status, _ = await client.request("PUT", "/v2/api_auth", {"data": {"api_key": wrong_key}})
        assert status == 401
        status, _ = await client.request(
            "GET", client.account_path("/faxboxes"), token=token[::-1]
        )
        assert status == 401
        server.signal(signal.SIGHUP)
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.kill()

    output = server.output()
    assert "http.request" in output
    for secret in (created["api_key"], token, token[::-1], wrong_key):
        assert secret not in output
    if log_format == "json":
        for line in output.splitlines():
            json.loads(line)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("faxgate.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_masks_nested_secret_keys(captured: io.StringIO) -> None:
    log = EventLogger("faxgate.test_logs", account_id="a1")
    log.info(
        "test.event",
        headers={"X-Auth-Token": "tok-123", "Accept": "application/json"},
        smtp_password="pw-456",
        auth={"inner": {"Authorization": "Basic xyz"}},
    )

    line = captured.getvalue()
    assert "tok-123" not in line
    assert "pw-456" not in line
    assert "Basic xyz" not in line
    assert "application/json" in line
    assert "account_id=a1" in line


def test_text_line_has_event(captured: io.StringIO) -> None:
    EventLogger("faxgate.test_logs").bind(peer="127.0.0.1").warning("smtp.bad_command", verb="X")

    (line,) = captured.getvalue().splitlines()
    fields = line.split(" ")
    assert fields[1:4] == ["WARNING", "faxgate.test_logs", "smtp.bad_command"]
    assert fields[4:] == ["peer=127.0.0.1", "verb=X"]


def test_json_line_is_object() -> None:
    record = logging.LogRecord("faxgate.x", logging.INFO, __file__, 1, "job.done", (), None)
    record.event = "job.done"
    record.context = {"job_id": "j1", "level": "ignored"}

    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "job.done"
    assert entry["job_id"] == "j1"
    assert entry["level"] == "INFO"


async def test_request_event_has_ids(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    created = create_account(data_dir)
    server = ServerProcess(data_dir, env={"FAXGATE_LOG_FORMAT": "json"})
    try:
        server.start()
        client = ApiClient(http, server.http_url)
        await client.authenticate(created["api_key"])
        await client.request(
            "GET", client.account_path("/faxboxes"), headers={"X-Request-ID": "req-42"}
        )
        server.signal(signal.SIGTERM)
        server.wait()
    finally:
        server.kill()

    events = [json.loads(line) for line in server.output().splitlines()]
    requests = [e for e in events if e["event"] == "http.request" and e["request_id"] == "req-42"]
    assert len(requests) == 1
    assert requests[0]["level"] == "DEBUG"
    assert requests[0]["account_id"] == created["account_id"]
    assert requests[0]["status"] == 200
    assert requests[0]["peer"] == "127.0.0.1"


async def test_unhandled_error_logged(
    service: Service, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("disk on fire")

    app = create_app(service.context)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with caplog.at_level(logging.ERROR, logger="faxgate.api"):
            async with http.get(
                f"http://127.0.0.1:{port}/broken", headers={"X-Request-ID": "req-500"}
            ) as response:
                status = response.status
                body = await response.json()
    finally:
        await runner.cleanup()

    assert status == 500
    assert body["status"] == "error"
    assert body["request_id"] == "req-500"
    assert "disk on fire" not in json.dumps(body)
    (record,) = [r for r in caplog.records if r.getMessage() == "api.unhandled_error"]
    assert record.levelname == "ERROR"
    assert record.context["request_id"] == "req-500"  # type: ignore[attr-defined]
    assert record.exc_info is not None
    samples = service.context.metrics.registry.get_sample_value(
        "faxgate_http_requests_total", {"method": "GET", "route": "/broken", "status": "500"}
    )
    assert samples == 1

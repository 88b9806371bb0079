"""`faxgate send` and `faxgate status` as child processes.

Here `send` runs against a small aiohttp server on 127.0.0.1 that speaks the
Kazoo protocol for the requests `send` makes: PUT /v2/api_auth, the multipart
upload and the outgoing/outbox reads. The fake server records each request and
serves fax states that the test chooses. `status` runs against a real faxgate.
test_e2e_cli.py runs both commands against a real server that sends the fax.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import BodyPartReader, web

from faxgate.client import resolve_api_url
from faxgate.service import RUNTIME_FILE, Service
from faxgate.store.faxes import NewFax
from tests.conftest import run_cli

API_KEY = "a" * 64
TOKEN = "t" * 64
ACCOUNT = "1" * 32
FAX_ID = "2" * 32
FAXBOX_ID = "3" * 32


@dataclass
class Upload:
    headers: dict[str, str]
    data: bytes


@dataclass
class FakeApi:
    """The recorded requests and the fax states the fake server serves in turn."""

    final_status: str = "completed"
    uploads: list[Upload] = field(default_factory=list)
    tokens_seen: list[str] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def envelope(self, data: Any, status: int = 200) -> web.Response:
        body = {"status": "success", "data": data, "auth_token": TOKEN, "request_id": "r"}
        return web.json_response(body, status=status)

    async def api_auth(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["data"]["api_key"] != API_KEY:
            error = {"status": "error", "error": "401", "message": "invalid credentials",
                     "data": {"message": "invalid api_key"}}
            return web.json_response(error, status=401)
        return self.envelope({"account_id": ACCOUNT}, status=201)

    async def create_fax(self, request: web.Request) -> web.Response:
        self.tokens_seen.append(request.headers.get("X-Auth-Token", ""))
        assert request.content_type == "multipart/mixed"
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            self.uploads.append(Upload(dict(part.headers), bytes(await part.read())))
        self.states = [
            {"id": FAX_ID, "status": "pending", "attempts": 0, "retries": 3},
            {"id": FAX_ID, "status": "processing", "attempts": 1, "retries": 3,
             "progress": "sending page 1 of 2"},
            {"id": FAX_ID, "status": "processing", "attempts": 1, "retries": 3,
             "progress": "sending page 2 of 2"},
        ]
        return self.envelope({"id": FAX_ID, "status": "attaching_files"}, status=201)

    async def faxboxes(self, request: web.Request) -> web.Response:
        return self.envelope([{"id": FAXBOX_ID, "name": "Front desk"}])

    async def outgoing(self, request: web.Request) -> web.Response:
        self.tokens_seen.append(request.headers.get("X-Auth-Token", ""))
        if not self.states:
            error = {"status": "error", "error": "404", "message": "bad_identifier",
                     "data": {"cause": FAX_ID, "message": "bad identifier"}}
            return web.json_response(error, status=404)
        return self.envelope(self.states.pop(0))

    async def outbox(self, request: web.Request) -> web.Response:
        result = {"success": self.final_status == "completed", "pages_sent": 2,
                  "error_message": "" if self.final_status == "completed" else "busy"}
        return self.envelope({"id": "202601-" + FAX_ID, "status": self.final_status,
                              "attempts": 1, "retries": 3, "tx_result": result})


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_put("/v2/api_auth", fake.api_auth)
    app.router.add_put(f"/v2/accounts/{ACCOUNT}/faxes", fake.create_fax)
    app.router.add_get(f"/v2/accounts/{ACCOUNT}/faxboxes", fake.faxboxes)
    app.router.add_get(f"/v2/accounts/{ACCOUNT}/faxes/outgoing/{{fax_id}}", fake.outgoing)
    app.router.add_get(f"/v2/accounts/{ACCOUNT}/faxes/outbox/{{fax_id}}", fake.outbox)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def documents(tmp_path: Path) -> list[Path]:
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    tiff = tmp_path / "scan.tif"
    tiff.write_bytes(b"II*\x00" + b"\x01" * 5000)
    return [pdf, tiff]


async def test_send_uploads_and_waits(fake_api: FakeApi, tmp_path: Path) -> None:
    pdf, tiff = documents(tmp_path)
    result = await run_cli(
        "send", "--url", fake_api.base_url, "--to", "+12125550100", "--from", "+12125550101",
        "--wait", "--interval", "0.05", str(pdf), str(tiff),
        env={"FAXGATE_API_KEY": API_KEY, "FAXGATE_STORAGE_DATA_DIR": str(tmp_path)},
    )

    assert result.code == 0, result.stderr
    json_part, pdf_part, tiff_part = fake_api.uploads
    assert json_part.headers["Content-Type"].startswith("application/json")
    assert json.loads(json_part.data) == {
        "data": {"to_number": "+12125550100", "from_number": "+12125550101"}
    }
    assert pdf_part.headers["Content-Type"] == "application/pdf"
    assert 'filename="letter.pdf"' in pdf_part.headers["Content-Disposition"]
    assert pdf_part.data == pdf.read_bytes()
    assert tiff_part.headers["Content-Type"] == "image/tiff"
    assert tiff_part.data == tiff.read_bytes()
    assert set(fake_api.tokens_seen) == {TOKEN}

    progress = result.stderr.splitlines()
    assert any(line.startswith("uploading: 100% of") for line in progress)
    assert f"queued fax {FAX_ID} to +12125550100" in progress
    assert f"fax {FAX_ID}: processing, sending page 1 of 2, attempt 1 of 3" in progress
    assert f"fax {FAX_ID}: processing, sending page 2 of 2, attempt 1 of 3" in progress
    assert progress[-1].startswith(f"fax 202601-{FAX_ID}: completed")
    assert json.loads(result.stdout)["status"] == "completed"


async def test_send_failed_fax_exits_one(fake_api: FakeApi, tmp_path: Path) -> None:
    fake_api.final_status = "failed"
    pdf, _tiff = documents(tmp_path)
    result = await run_cli(
        "send", "--url", fake_api.base_url, "--api-key", API_KEY, "--to", "+12125550100",
        "--wait", "--interval", "0.05", str(pdf),
        env={"FAXGATE_STORAGE_DATA_DIR": str(tmp_path)},
    )

    assert result.code == 1
    assert "failed" in result.stderr.splitlines()[-1]
    assert "busy" in result.stderr.splitlines()[-1]


async def test_send_without_wait(fake_api: FakeApi, tmp_path: Path) -> None:
    pdf, _tiff = documents(tmp_path)
    result = await run_cli(
        "send", "--url", fake_api.base_url, "--api-key", API_KEY, "--to", "+12125550100",
        str(pdf), env={"FAXGATE_STORAGE_DATA_DIR": str(tmp_path)},
    )

    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == FAX_ID
    # Without --from or --faxbox the account's only faxbox is the sender.
    assert json.loads(fake_api.uploads[0].data)["data"]["faxbox_id"] == FAXBOX_ID
    assert f"sending from faxbox {FAXBOX_ID}" in result.stderr
    assert len(fake_api.states) == 3


async def test_send_wrong_api_key(fake_api: FakeApi, tmp_path: Path) -> None:
    pdf, _tiff = documents(tmp_path)
    result = await run_cli(
        "send", "--url", fake_api.base_url, "--api-key", "b" * 64, "--to", "+12125550100",
        str(pdf), env={"FAXGATE_STORAGE_DATA_DIR": str(tmp_path)},
    )

    assert result.code == 1
    assert "authentication failed (401)" in result.stderr
    assert "b" * 64 not in result.stderr
    assert fake_api.uploads == []


async def test_send_needs_api_key(fake_api: FakeApi, tmp_path: Path) -> None:
    pdf, _tiff = documents(tmp_path)
    result = await run_cli(
        "send", "--url", fake_api.base_url, "--to", "+12125550100", str(pdf),
    )

    assert result.code == 1
    assert "FAXGATE_API_KEY" in result.stderr


async def test_send_missing_file(fake_api: FakeApi, tmp_path: Path) -> None:
    result = await run_cli(
        "send", "--url", fake_api.base_url, "--api-key", API_KEY, "--to", "+12125550100",
        str(tmp_path / "absent.pdf"),
    )

    assert result.code == 1
    assert "absent.pdf: no such file" in result.stderr
    assert fake_api.uploads == []


def test_send_requires_to() -> None:
    from faxgate.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["send", "file.pdf"])


def test_runtime_url_wildcard_host(tmp_path: Path) -> None:
    runtime = {"pid": 1, "http_url": "http://0.0.0.0:8123", "smtp_port": 2525}
    (tmp_path / RUNTIME_FILE).write_text(json.dumps(runtime))

    assert resolve_api_url(None, tmp_path) == "http://127.0.0.1:8123"
    assert resolve_api_url("http://h:1/", tmp_path) == "http://h:1"


class HalfBusyTrunk:
    def status(self) -> dict[str, Any]:
        return {"name": "pstn", "channels_total": 4, "channels_in_use": 1}


async def test_status_prints_queue(service: Service) -> None:
    account, _key = await service.store.create_account("status")
    for status in ("pending", "pending", "processing", "completed"):
        await service.store.create_fax(
            NewFax(account["id"], "+12125550100", "+12125550101", 3, {}, status=status)
        )
    service.context.trunks["pstn"] = HalfBusyTrunk()

    result = await run_cli("status", env={"FAXGATE_STORAGE_DATA_DIR": str(service.config.data_dir)})
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"faxgate 0.1.0 at {service.http_url}: ok"
    assert "queue: 3 jobs (attaching_files 0, pending 2, processing 1), 2 due now" in lines
    assert "finished: completed 1, failed 0" in lines
    assert "trunk pstn: ok, 1 of 4 channels in use" in lines


async def test_status_json_and_failing(service: Service) -> None:
    service.context.trunks["pstn"] = HalfBusyTrunk()

    class Down:
        def health(self) -> dict[str, str]:
            return {"status": "failing", "reason": "listener closed"}

    service.context.components["smtp"] = Down()
    result = await run_cli(
        "status", "--json", env={"FAXGATE_STORAGE_DATA_DIR": str(service.config.data_dir)}
    )

    assert result.code == 1
    health = json.loads(result.stdout)
    assert health["checks"]["smtp"] == {"status": "failing", "reason": "listener closed"}
    assert health["trunks"]["pstn"]["channels_in_use"] == 1


async def test_status_not_running(tmp_path: Path) -> None:
    result = await run_cli("status", env={"FAXGATE_STORAGE_DATA_DIR": str(tmp_path)})

    assert result.code == 3
    assert RUNTIME_FILE in result.stderr

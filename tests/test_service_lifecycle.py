"""The faxgate process: CLI, configuration errors, SIGTERM and restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.conftest import REPO, ApiClient, ServerProcess


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faxgate.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_account_create_prints_key(tmp_path: Path) -> None:
    env = {"FAXGATE_STORAGE_DATA_DIR": str(tmp_path)}
    result = run_cli("account", "create", "Acme", env=env)

    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert len(created["account_id"]) == 32
    assert len(created["api_key"]) == 64
    assert created["api_key"] not in result.stderr

    listed = run_cli("account", "list", env=env)
    assert json.loads(listed.stdout)[0]["name"] == "Acme"


def test_bad_config_value_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", env={"FAXGATE_HTTP_PORT": "eighty"})

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "http.port" in lines[0]
    assert "'eighty'" in lines[0]


def test_bad_config_file_key(tmp_path: Path) -> None:
    path = tmp_path / "faxgate.toml"
    path.write_text("[smtp]\nport = 25\nmax_message_size = -1\n")
    result = run_cli("--config", str(path), "check-config")

    assert result.returncode == 2
    assert "smtp.max_message_size" in result.stderr


def test_default_config_file_valid() -> None:
    result = run_cli("--config", str(REPO / "config" / "faxgate.toml"), "check-config")

    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["http"]["port"] == 8000
    assert settings["smtp"]["port"] == 2525


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "faxgate.toml"
    path.write_text('[http]\nport = 9000\n[fetch]\nallow_networks = ["10.0.0.0/8"]\n')
    result = run_cli(
        "--config",
        str(path),
        "check-config",
        env={"FAXGATE_HTTP_PORT": "8081", "FAXGATE_FETCH_ALLOW_NETWORKS": "127.0.0.0/8,::1/128"},
    )

    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["http"]["port"] == 8081
    assert settings["fetch"]["allow_networks"] == ["127.0.0.0/8", "::1/128"]


async def slow_body(started: asyncio.Event, release: asyncio.Event) -> AsyncIterator[bytes]:
    yield b'{"data": {"name": '
    started.set()
    await release.wait()
    yield b'"sent during shutdown"}}'


async def test_sigterm_lets_request_finish(
    server_process: ServerProcess, http: aiohttp.ClientSession
) -> None:
    created = json.loads(
        run_cli(
            "account", "create", "t", env={"FAXGATE_STORAGE_DATA_DIR": str(server_process.data_dir)}
        ).stdout
    )
    server_process.start()
    client = ApiClient(http, server_process.http_url)
    await client.authenticate(created["api_key"])

    started, release = asyncio.Event(), asyncio.Event()
    request = asyncio.create_task(
        client.request(
            "PUT",
            client.account_path("/faxboxes"),
            data=slow_body(started, release),
            headers={"Content-Type": "application/json"},
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.2)
    server_process.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    release.set()

    status, body = await asyncio.wait_for(request, 20)
    assert status == 201, body
    assert body["data"]["name"] == "sent during shutdown"
    assert await asyncio.to_thread(server_process.wait, 20) == 0
    assert "service.stopped" in server_process.output()

    # The faxbox whose request was in flight at SIGTERM was stored whole.
    server_process.start()
    client.base_url = server_process.http_url
    status, body = await client.request("GET", client.account_path("/faxboxes"))
    assert status == 200
    assert [row["name"] for row in body["data"]] == ["sent during shutdown"]


async def test_restart_keeps_everything(
    server_process: ServerProcess, http: aiohttp.ClientSession
) -> None:
    created = json.loads(
        run_cli(
            "account", "create", "t", env={"FAXGATE_STORAGE_DATA_DIR": str(server_process.data_dir)}
        ).stdout
    )
    server_process.start()
    client = ApiClient(http, server_process.http_url)
    await client.authenticate(created["api_key"])
    status, body = await client.request(
        "PUT",
        client.account_path("/faxboxes"),
        {"data": {"name": "kept", "custom_smtp_email_address": "kept.example"}},
    )
    assert status == 201
    faxbox = body["data"]

    server_process.kill()
    server_process.start()
    client.base_url = server_process.http_url

    # The token issued before the crash is still valid, and so is the faxbox.
    status, body = await client.request("GET", client.account_path(f"/faxboxes/{faxbox['id']}"))
    assert status == 200
    assert body["data"] == faxbox
    await client.authenticate(created["api_key"])

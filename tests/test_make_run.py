"""The command `make run` starts: it serves, and its demo key works with the API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp

from faxgate.service import RUNTIME_FILE
from tests.conftest import REPO, ApiClient


def serve_command() -> str:
    """Return the line of the Makefile's run recipe that starts the server."""
    dry_run = subprocess.run(
        ["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    lines = [line for line in dry_run.stdout.splitlines() if " serve" in line]
    assert len(lines) == 1, dry_run.stdout
    return lines[0]


def start(command: str, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FAXGATE_STORAGE_DATA_DIR": str(data_dir),
        "FAXGATE_HTTP_PORT": "0",
        "FAXGATE_SMTP_PORT": "0",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=REPO, env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not (data_dir / RUNTIME_FILE).exists():
        assert process.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    # The demo banner is printed right after the listeners are up.
    time.sleep(0.5)
    return process


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


async def test_make_run_demo_key_works(tmp_path: Path) -> None:
    command = serve_command()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "run.log"

    process = start(command, data_dir, log_path)
    try:
        output = log_path.read_text()
        api_key = re.search(r"api_key:\s+([0-9a-f]{64})", output)
        assert api_key, output
        runtime = json.loads((data_dir / RUNTIME_FILE).read_text())
        async with aiohttp.ClientSession() as http:
            client = ApiClient(http, runtime["http_url"])
            await client.authenticate(api_key.group(1))
            status, body = await client.request("GET", client.account_path("/faxboxes"))
        assert status == 200
        assert [row["name"] for row in body["data"]] == ["Demo faxbox"]
    finally:
        assert await asyncio.to_thread(stop, process) == 0

    # A restart keeps the account and does not print a key again.
    process = start(command, data_dir, log_path)
    assert await asyncio.to_thread(stop, process) == 0
    assert log_path.read_text().count("api_key:") == 1

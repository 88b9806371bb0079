"""Shared fixtures: a real faxgate server on 127.0.0.1 with its data in a temporary folder."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faxgate.config import Config, load_config
from faxgate.service import RUNTIME_FILE, Service

REPO = Path(__file__).resolve().parent.parent


def make_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    """Return a configuration for tests: both listeners on 127.0.0.1 port 0, data in data_dir."""
    config = load_config(None, environ={})
    config.storage.data_dir = str(data_dir)
    config.http.port = 0
    config.smtp.port = 0
    config.log.level = "DEBUG"
    for section, values in sections.items():
        target = getattr(config, section)
        for key, value in values.items():
            setattr(target, key, value)
    return config


@dataclass
class Account:
    account_id: str
    api_key: str


class ApiClient:
    """A small Kazoo API client over a real HTTP connection."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token: str | None = None
        self.account_id: str | None = None

    async def authenticate(self, api_key: str) -> str:
        status, body = await self.request("PUT", "/v2/api_auth", {"data": {"api_key": api_key}})
        assert status == 201, body
        self.token = body["auth_token"]
        self.account_id = body["data"]["account_id"]
        return self.token

    def account_path(self, suffix: str = "") -> str:
        return f"/v2/accounts/{self.account_id}{suffix}"

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        use_token = token if token is not None else self.token
        if use_token:
            all_headers["X-Auth-Token"] = use_token
        async with self.session.request(
            method, self.base_url + path, json=json_body, data=data, headers=all_headers
        ) as response:
            raw = await response.read()
            try:
                return response.status, json.loads(raw)
            except ValueError:
                return response.status, raw


async def client_for(service: Service, http: aiohttp.ClientSession) -> ApiClient:
    """Create an account on the service and return a client logged in with its API key."""
    _account, api_key = await service.store.create_account("test")
    client = ApiClient(http, service.http_url)
    await client.authenticate(api_key)
    return client


async def start_service(config: Config) -> Service:
    service = Service(config)
    await service.start()
    return service


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    running = await start_service(make_config(tmp_path / "data"))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def account(service: Service) -> Account:
    created, api_key = await service.store.create_account("test")
    return Account(created["id"], api_key)


@pytest.fixture
async def api(service: Service, http: aiohttp.ClientSession, account: Account) -> ApiClient:
    client = ApiClient(http, service.http_url)
    await client.authenticate(account.api_key)
    return client


class ServerProcess:
    """faxgate serve in a child process, for tests that signal or kill it."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "FAXGATE_STORAGE_DATA_DIR": str(data_dir),
            "FAXGATE_HTTP_PORT": "0",
            "FAXGATE_SMTP_PORT": "0",
            "FAXGATE_LOG_LEVEL": "DEBUG",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.runtime: dict[str, Any] = {}
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout: float = 30.0) -> dict[str, Any]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "faxgate.cli", "serve"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"faxgate exited early:\n{self.log_path.read_text()}")
            try:
                self.runtime = json.loads((self.data_dir / RUNTIME_FILE).read_text())
                return self.runtime
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.05)
        raise AssertionError(f"faxgate did not start:\n{self.log_path.read_text()}")

    @property
    def http_url(self) -> str:
        return str(self.runtime["http_url"])

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data")
    try:
        yield process
    finally:
        process.kill()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the CLI without blocking the event loop that serves the test's servers."""
    # The caller's own API key must not leak into tests that check its absence.
    environment = {key: value for key, value in os.environ.items() if key != "FAXGATE_API_KEY"}
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "faxgate.cli", *args,
        cwd=REPO, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return CliResult(process.returncode, stdout.decode(), stderr.decode())


async def wait_for(condition: Any, within: float = 30.0, interval: float = 0.05) -> Any:
    """Poll the async callable `condition` until it returns a truthy value."""
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value {value!r}")
        await asyncio.sleep(interval)


# Seconds the test process may take to exit after the last test.
EXIT_GRACE_SECONDS = 60.0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Make a hang at interpreter exit visible and bounded.

    Exit joins leftover worker threads and processes. One unexplained run sat
    idle after its tests had finished, where no per-test timeout applies, so a
    daemon thread prints every thread's stack and ends the process with the
    session's exit status if exit takes longer than EXIT_GRACE_SECONDS.
    """

    def watchdog() -> None:
        time.sleep(EXIT_GRACE_SECONDS)
        sys.stderr.write(
            f"tests: the process did not exit within {EXIT_GRACE_SECONDS:.0f} s after the"
            " last test; stacks of the threads that keep it alive:\n"
        )
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(int(exitstatus))

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()

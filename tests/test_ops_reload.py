"""Configuration reload: Service.reload in process, and SIGHUP to a real server."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faxgate.config import Config
from faxgate.service import Service
from tests.conftest import Account, ApiClient, ServerProcess, wait_for


class ReloadingComponent:
    """A component that records the configs its reload hook gets."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[Config] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def health(self) -> str:
        return "ok"

    async def reload(self, config: Config) -> None:
        self.seen.append(config)


@pytest.fixture
def restore_log_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


async def test_reload_applies_live_settings(service: Service) -> None:
    worker_section = service.config.worker
    new = copy.deepcopy(service.config)
    new.worker.max_calls = 9
    new.worker.retry_delay = 5.0
    new.smtp.max_recipients = 7
    new.fetch.allow_networks = ["127.0.0.0/8"]
    new.http.port = 1234

    result = await service.reload(new)
    assert sorted(result.applied) == [
        "fetch.allow_networks", "smtp.max_recipients", "worker.max_calls", "worker.retry_delay",
    ]
    assert result.restart_required == ["http.port"]
    assert service.config.worker is worker_section
    assert worker_section.max_calls == 9
    assert service.config.smtp.max_recipients == 7
    assert service.config.http.port == 0


async def test_reload_copies_lists(service: Service) -> None:
    new = copy.deepcopy(service.config)
    new.fetch.allow_networks = ["127.0.0.0/8"]
    await service.reload(new)

    new.fetch.allow_networks.append("::1/128")
    assert service.config.fetch.allow_networks == ["127.0.0.0/8"]


async def test_reload_calls_component_hook(service: Service) -> None:
    component = ReloadingComponent()
    service._components.append(component)
    new = copy.deepcopy(service.config)
    new.auth.token_ttl = 60

    await service.reload(new)
    assert component.seen == [service.config]
    assert component.seen[0].auth.token_ttl == 60


async def test_reload_sets_log_level(service: Service, restore_log_level: None) -> None:
    new = copy.deepcopy(service.config)
    new.log.level = "WARNING"

    await service.reload(new)
    assert logging.getLogger().level == logging.WARNING


async def test_reload_token_ttl_effect(
    service: Service, api: ApiClient, account: Account
) -> None:
    new = copy.deepcopy(service.config)
    new.auth.token_ttl = 1
    await service.reload(new)

    token = await api.authenticate(account.api_key)
    status, _ = await api.request("GET", api.account_path("/faxboxes"), token=token)
    assert status == 200
    await asyncio.sleep(1.2)
    status, _ = await api.request("GET", api.account_path("/faxboxes"), token=token)
    assert status == 401


def write_config(path: Path, **sections: dict[str, Any]) -> None:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


def log_lines(server: ServerProcess, event: str) -> list[str]:
    return [line for line in server.output().splitlines() if event in line]


async def test_sighup_rereads_file(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = tmp_path / "faxgate.toml"
    write_config(config, smtp={"hostname": "one.example", "max_recipients": 50})
    server = ServerProcess(tmp_path / "data", env={"FAXGATE_CONFIG": str(config)})
    try:
        server.start()
        write_config(
            config,
            smtp={"hostname": "two.example", "max_recipients": 5},
            log={"format": "json", "level": "DEBUG"},
        )
        server.signal(signal.SIGHUP)

        async def reloaded() -> list[str]:
            return log_lines(server, "config.reloaded")

        (line,) = await wait_for(reloaded, within=15)
        event = json.loads(line)
        assert sorted(event["applied"].split(",")) == ["log.format", "smtp.max_recipients"]
        assert event["restart_required"] == "smtp.hostname"
        restart = [json.loads(x) for x in log_lines(server, "config.restart_required")]
        assert [(x["level"], x["key"]) for x in restart] == [("WARNING", "smtp.hostname")]
        async with http.get(server.http_url + "/health") as response:
            assert response.status == 200
    finally:
        server.kill()


async def test_sighup_bad_file_kept(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = tmp_path / "faxgate.toml"
    write_config(config, smtp={"max_recipients": 50})
    server = ServerProcess(tmp_path / "data", env={"FAXGATE_CONFIG": str(config)})
    try:
        server.start()
        write_config(config, smtp={"max_recipients": -1})
        server.signal(signal.SIGHUP)

        async def failed() -> list[str]:
            return log_lines(server, "config.reload_failed")

        (line,) = await wait_for(failed, within=15)
        assert " ERROR " in line
        assert "smtp.max_recipients" in line
        assert log_lines(server, "config.reloaded") == []
        async with http.get(server.http_url + "/metrics") as response:
            text = await response.text()
        assert 'faxgate_config_reloads_total{result="failed"} 1.0' in text
    finally:
        server.kill()

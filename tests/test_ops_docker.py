"""The Dockerfile, parsed with dockerfile-parse, and its health check run for real.

No container engine runs here, so the image is not built. The checks read
the parsed instructions, and the HEALTHCHECK command runs on this machine
against a real faxgate, since it only needs Python's standard library.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from faxgate.service import Service
from tests.conftest import REPO


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    return parser


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [str(item["value"]) for item in parser.structure if item["instruction"] == name]


def healthcheck_command(parser: DockerfileParser) -> list[str]:
    (value,) = instructions(parser, "HEALTHCHECK")
    _options, command = value.split("CMD", 1)
    parsed: list[str] = json.loads(command.strip())
    return parsed


def test_dockerfile_debian_base(dockerfile: DockerfileParser) -> None:
    assert dockerfile.baseimage == "python:3.11-slim-bookworm"
    assert not dockerfile.is_multistage


def test_dockerfile_installs_spandsp(dockerfile: DockerfileParser) -> None:
    runs = " ".join(instructions(dockerfile, "RUN"))

    assert "apt-get install -y --no-install-recommends libspandsp2 libtiff6" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert "pip install ." in runs


def test_dockerfile_runs_unprivileged(dockerfile: DockerfileParser) -> None:
    users = instructions(dockerfile, "USER")

    assert users == ["faxgate"]
    structure = [item["instruction"] for item in dockerfile.structure]
    assert structure.index("USER") > max(
        index for index, name in enumerate(structure) if name == "RUN"
    )


def test_dockerfile_volume_and_ports(dockerfile: DockerfileParser) -> None:
    volumes = [json.loads(value) for value in instructions(dockerfile, "VOLUME")]
    ports = " ".join(instructions(dockerfile, "EXPOSE")).split()
    envs = dockerfile.envs

    assert volumes == [["/var/lib/faxgate"]]
    assert envs["FAXGATE_STORAGE_DATA_DIR"] == "/var/lib/faxgate"
    assert envs["FAXGATE_HTTP_PORT"] in ports
    assert envs["FAXGATE_SMTP_PORT"] in ports
    assert envs["FAXGATE_HTTP_HOST"] == "0.0.0.0"
    assert envs["FAXGATE_SMTP_HOST"] == "0.0.0.0"
    assert envs["FAXGATE_DEMO_ENABLED"] == "false"


def test_dockerfile_entrypoint_serves(dockerfile: DockerfileParser) -> None:
    (entrypoint,) = instructions(dockerfile, "ENTRYPOINT")
    (command,) = instructions(dockerfile, "CMD")

    assert json.loads(entrypoint) == ["faxgate"]
    assert json.loads(command) == ["serve"]
    assert instructions(dockerfile, "STOPSIGNAL") == ["SIGTERM"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'faxgate = "faxgate.cli:main"' in pyproject


def test_dockerfile_copies_existing_files(dockerfile: DockerfileParser) -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for value in instructions(dockerfile, "COPY"):
        *sources, _destination = shlex.split(value)
        for source in sources:
            assert (REPO / source).exists(), source
            assert source not in ignored, source


def test_healthcheck_targets_health(dockerfile: DockerfileParser) -> None:
    (value,) = instructions(dockerfile, "HEALTHCHECK")
    command = healthcheck_command(dockerfile)

    assert "--interval=" in value
    assert "--timeout=" in value
    assert command[0] == "python"
    assert "/health" in command[-1]


async def run_healthcheck(command: list[str], port: int | None) -> int:
    env: dict[str, Any] = {**os.environ, "FAXGATE_HTTP_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


class FailingComponent:
    name = "smtp"

    def health(self) -> dict[str, str]:
        return {"status": "failing"}


async def test_healthcheck_follows_health(dockerfile: DockerfileParser, service: Service) -> None:
    command = healthcheck_command(dockerfile)

    assert await run_healthcheck(command, service.http_port) == 0
    service.context.components["smtp"] = FailingComponent()
    assert await run_healthcheck(command, service.http_port) != 0

"""The worker over the engine's loopback trunk: real T.30 calls, busy lines and retries."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faxgate.fax.result import FaxResult
from faxgate.jobs import ExtractedPart, write_originals
from faxgate.service import Service
from faxgate.store.faxes import PENDING, NewFax
from faxgate.trunks.base import FaxIdentity, InboundHandler, ProgressCallback, Trunk
from faxgate.trunks.loopback import LoopbackTrunk
from faxgate.trunks.loopback_rules import parse_rules
from tests.conftest import make_config, wait_for
from tests.outgoing_support import make_pdf

BUSY_NUMBER = "+12125550111"
FROM = "+12125550100"


class BusyFirstTrunk(Trunk):
    """A trunk that finds each number busy on its first `busy_calls` calls, then answers.

    Both outcomes come from real loopback calls: the first calls go to a
    loopback trunk whose far end is always busy, the rest to one that answers.
    Every call's start and end time is recorded.
    """

    name = "busy-first"

    def __init__(self, data_dir: Path, busy_calls: int) -> None:
        self.busy = LoopbackTrunk(data_dir, parse_rules([{"pattern": "*", "behaviour": "busy"}]))
        self.answering = LoopbackTrunk(data_dir)
        self.busy_calls = busy_calls
        self.calls: list[tuple[str, float, float]] = []

    async def send(
        self,
        tiff_path: Path,
        identity: FaxIdentity,
        destination: str,
        on_progress: ProgressCallback | None = None,
    ) -> FaxResult:
        placed = sum(1 for number, _start, _end in self.calls if number == destination)
        trunk = self.busy if placed < self.busy_calls else self.answering
        started = time.monotonic()
        result = await trunk.send(tiff_path, identity, destination, on_progress)
        self.calls.append((destination, started, time.monotonic()))
        return result

    def set_inbound_handler(self, handler: InboundHandler | None) -> None:
        self.answering.set_inbound_handler(handler)

    async def close(self) -> None:
        await self.busy.close()
        await self.answering.close()

    def status(self) -> dict[str, Any]:
        return self.answering.status()


@pytest.fixture
async def services() -> AsyncIterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        await service.stop()


async def run_job(
    services: list[Service], tmp_path: Path, trunk: Trunk, retries: int
) -> dict[str, Any]:
    config = make_config(
        tmp_path / "data", worker={"poll_interval": 0.05, "busy_retry_delay": 0.3}
    )
    service = Service(config, trunk=trunk)
    await service.start()
    services.append(service)
    account, _key = await service.store.create_account("a")
    fax = NewFax(account["id"], BUSY_NUMBER, FROM, retries, {}, status=PENDING)
    parts = [ExtractedPart(make_pdf(2), "application/pdf", None)]
    await service.store.create_fax(fax, write_originals(config.data_dir, fax.id, parts))
    service.context.components["worker"].wake()

    async def finished() -> dict[str, Any] | None:
        row = await service.store.get_fax_row(account["id"], fax.id)
        return row if row["folder"] == "outbox" else None

    row: dict[str, Any] = await wait_for(finished, within=60)
    return row


async def test_busy_line_exhausts_retries(services: list[Service], tmp_path: Path) -> None:
    trunk = BusyFirstTrunk(tmp_path / "data", busy_calls=99)
    row = await run_job(services, tmp_path, trunk, retries=3)

    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert row["doc"]["tx_result"]["hangup_cause"] == "busy"
    assert row["doc"]["tx_result"]["success"] is False
    gaps = [later[1] - earlier[2] for earlier, later in itertools.pairwise(trunk.calls)]
    assert len(gaps) == 2
    assert 0.3 <= gaps[0] < 0.3 + 0.5
    assert 0.6 <= gaps[1] < 0.6 + 0.5


async def test_busy_once_then_answers(services: list[Service], tmp_path: Path) -> None:
    trunk = BusyFirstTrunk(tmp_path / "data", busy_calls=1)
    row = await run_job(services, tmp_path, trunk, retries=3)

    assert row["status"] == "completed"
    assert row["attempts"] == 2
    assert row["doc"]["tx_result"]["success"] is True
    assert row["doc"]["tx_result"]["pages_sent"] == 2
    causes = [entry["cause"] for entry in row["doc"]["attempt_history"]]
    assert causes == ["busy", "normal"]

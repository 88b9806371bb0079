"""GET /health over HTTP: checks of the store, components and trunks, and job counts."""

from __future__ import annotations

from typing import Any

import aiohttp

from faxgate.service import Service
from faxgate.store.faxes import NewFax


class ReportingComponent:
    """A component whose health() the test sets, as the SMTP listener and worker report theirs."""

    name = "worker"

    def __init__(self, report: Any) -> None:
        self.report = report

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def health(self) -> Any:
        return self.report


class BrokenTrunk:
    def status(self) -> dict[str, Any]:
        raise RuntimeError("line card missing")


async def get_health(http: aiohttp.ClientSession, service: Service) -> tuple[int, Any]:
    async with http.get(service.http_url + "/health") as response:
        return response.status, await response.json()


async def test_health_ok_with_counts(service: Service, http: aiohttp.ClientSession) -> None:
    account, _key = await service.store.create_account("health")
    for status in ("pending", "processing", "failed"):
        await service.store.create_fax(
            NewFax(account["id"], "+12125550100", "+12125550101", 3, {}, status=status)
        )

    status, body = await get_health(http, service)
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"]["store"] == "ok"
    assert body["queue"] == {"attaching_files": 0, "pending": 1, "processing": 1}
    assert body["queue_depth"] == 2
    assert body["finished"] == {"completed": 0, "failed": 1}
    assert body["inbox"] == {"receiving": 0, "received": 0, "failed": 0}
    assert list(body["trunks"]) == ["loopback"]


async def test_health_reports_components(service: Service, http: aiohttp.ClientSession) -> None:
    service.context.components["worker"] = ReportingComponent({"status": "ok", "jobs_running": 2})
    service.context.components["smtp"] = ReportingComponent("ok")

    status, body = await get_health(http, service)
    assert status == 200
    assert body["checks"]["worker"] == {"status": "ok", "jobs_running": 2}
    assert body["checks"]["smtp"] == "ok"


async def test_health_failing_component(service: Service, http: aiohttp.ClientSession) -> None:
    service.context.components["smtp"] = ReportingComponent({"status": "failing"})

    status, body = await get_health(http, service)
    assert status == 503
    assert body["status"] == "failing"


async def test_health_failing_trunk(service: Service, http: aiohttp.ClientSession) -> None:
    service.context.trunks["pstn"] = BrokenTrunk()

    status, body = await get_health(http, service)
    assert status == 503
    assert body["trunks"]["pstn"]["status"] == "failing"
    assert "line card missing" in body["trunks"]["pstn"]["error"]


async def test_health_store_down(service: Service, http: aiohttp.ClientSession) -> None:
    await service.store.close()

    status, body = await get_health(http, service)
    assert status == 503
    assert body["checks"]["store"] == "failing"
    assert "queue" not in body

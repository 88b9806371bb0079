"""GET /metrics over HTTP: metric names, counters that move, store-backed gauges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from faxgate.service import Service
from faxgate.store.faxes import NewFax
from tests.conftest import ApiClient, make_config, start_service

EXPECTED_FAMILIES = {
    "faxgate_http_requests",
    "faxgate_http_request_duration_seconds",
    "faxgate_auth_failures",
    "faxgate_smtp_sessions",
    "faxgate_smtp_messages",
    "faxgate_fax_attempts",
    "faxgate_fax_pages_sent",
    "faxgate_fax_pages_received",
    "faxgate_render_duration_seconds",
    "faxgate_call_duration_seconds",
    "faxgate_fax_jobs",
    "faxgate_queue_depth",
    "faxgate_queue_due",
    "faxgate_inbox_faxes",
    "faxgate_trunk_channels_in_use",
    "faxgate_trunk_channels",
    "faxgate_store_up",
    "faxgate_config_reloads",
    "faxgate_build_info",
}


class CountingTrunk:
    """A stand-in with the status() of faxgate.trunks.base.Trunk, channels set by the test."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0

    def status(self) -> dict[str, Any]:
        return {"name": "test", "channels_total": self.total, "channels_in_use": self.in_use}


Samples = dict[tuple[str, tuple[Any, ...]], float]


async def scrape(http: aiohttp.ClientSession, service: Service) -> Samples:
    """Return every sample of /metrics keyed by (sample name, sorted labels)."""
    async with http.get(service.http_url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def family_names(http: aiohttp.ClientSession, service: Service) -> set[str]:
    async with http.get(service.http_url + "/metrics") as response:
        text = await response.text()
    return {family.name for family in text_string_to_metric_families(text)}


def job(account_id: str, status: str) -> NewFax:
    return NewFax(
        account_id=account_id,
        to_number="+12125550100",
        from_number="+12125550101",
        retries=3,
        doc={},
        status=status,
    )


async def test_metrics_content_type(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(service.http_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")


async def test_metrics_expected_names(service: Service, http: aiohttp.ClientSession) -> None:
    names = await family_names(http, service)

    missing = EXPECTED_FAMILIES - names
    assert missing == set()


async def test_request_counter_moves(service: Service, http: aiohttp.ClientSession) -> None:
    key = ("faxgate_http_requests_total",
           (("method", "GET"), ("route", "/health"), ("status", "200")))
    before = (await scrape(http, service)).get(key, 0.0)
    for _ in range(3):
        async with http.get(service.http_url + "/health") as response:
            assert response.status == 200

    after = await scrape(http, service)
    assert after[key] == before + 3


async def test_route_label_hides_ids(api: ApiClient, service: Service,
                                     http: aiohttp.ClientSession) -> None:
    status, _body = await api.request("GET", api.account_path("/faxboxes/" + "0" * 32))
    assert status == 404

    samples = await scrape(http, service)
    routes = {dict(labels).get("route") for (name, labels) in samples
              if name == "faxgate_http_requests_total"}
    assert "/v2/accounts/{account_id}/faxboxes/{faxbox_id}" in routes
    assert not any(api.account_id in str(route) for route in routes)


async def test_auth_failures_counted(api: ApiClient, service: Service,
                                     http: aiohttp.ClientSession) -> None:
    status, _ = await api.request("PUT", "/v2/api_auth", {"data": {"api_key": "not-a-key"}})
    assert status == 401
    status, _ = await api.request("GET", api.account_path("/faxboxes"), token="not-a-token")
    assert status == 401

    samples = await scrape(http, service)
    assert samples[("faxgate_auth_failures_total", (("reason", "api_key"),))] == 1
    assert samples[("faxgate_auth_failures_total", (("reason", "token"),))] == 1


async def test_job_gauges_follow_store(service: Service, http: aiohttp.ClientSession) -> None:
    account, _key = await service.store.create_account("metrics")
    for status in ("pending", "pending", "processing", "completed"):
        await service.store.create_fax(job(account["id"], status))
    later = job(account["id"], "pending")
    await service.store.create_fax(later)
    await service.store.execute(
        "UPDATE faxes SET due = ? WHERE id = ?", (service.clock.time() + 3600, later.id)
    )

    samples = await scrape(http, service)
    assert samples[("faxgate_fax_jobs", (("status", "pending"),))] == 3
    assert samples[("faxgate_fax_jobs", (("status", "processing"),))] == 1
    assert samples[("faxgate_fax_jobs", (("status", "completed"),))] == 1
    assert samples[("faxgate_fax_jobs", (("status", "failed"),))] == 0
    assert samples[("faxgate_queue_depth", ())] == 4
    assert samples[("faxgate_queue_due", ())] == 2
    assert samples[("faxgate_store_up", ())] == 1


async def test_trunk_channels_read_live(service: Service, http: aiohttp.ClientSession) -> None:
    trunk = CountingTrunk(total=4)
    service.context.trunks["pstn"] = trunk
    trunk.in_use = 1
    first = await scrape(http, service)
    trunk.in_use = 3
    second = await scrape(http, service)

    label = (("trunk", "pstn"),)
    assert first[("faxgate_trunk_channels_in_use", label)] == 1
    assert second[("faxgate_trunk_channels_in_use", label)] == 3
    assert second[("faxgate_trunk_channels", label)] == 4


async def test_counters_per_service(service: Service, http: aiohttp.ClientSession,
                                    tmp_path: Path) -> None:
    service.context.metrics.smtp_messages.labels(outcome="accepted").inc()
    service.context.metrics.fax_attempts.labels(result="busy").inc(2)
    service.context.metrics.call_duration.labels(direction="outgoing").observe(42.0)
    other = await start_service(make_config(tmp_path / "other"))
    try:
        mine = await scrape(http, service)
        theirs = await scrape(http, other)
    finally:
        await other.stop()

    accepted = ("faxgate_smtp_messages_total", (("outcome", "accepted"),))
    assert mine[accepted] == 1
    assert accepted not in theirs
    assert mine[("faxgate_fax_attempts_total", (("result", "busy"),))] == 2
    count = ("faxgate_call_duration_seconds_count", (("direction", "outgoing"),))
    assert mine[count] == 1


async def test_store_down_reported(service: Service, http: aiohttp.ClientSession) -> None:
    await service.store.close()

    samples = await scrape(http, service)
    assert samples[("faxgate_store_up", ())] == 0
    assert ("faxgate_queue_depth", ()) not in samples

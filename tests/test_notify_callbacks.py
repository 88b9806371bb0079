"""Signed callbacks to a real aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from faxgate.store import Store
from faxgate.store.notifications import CALLBACK, FAILED, SENT
from tests.conftest import REPO, wait_for
from tests.notify_support import (
    CallbackReceiver,
    NotifierHarness,
    expected_signature,
    faxbox,
    faxgate_log_text,
    outgoing_fax,
    received_fax,
    running_notifier,
)


class AllowEverything:
    """An address guard that lets every URL through, to test the resolver's own check."""

    async def check_url(self, url: str) -> None:
        return None


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    server = CallbackReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[NotifierHarness]:
    async with running_notifier(tmp_path) as running:
        yield running


async def wait_for_requests(receiver: CallbackReceiver, count: int) -> None:
    async def arrived() -> bool:
        return len(receiver.requests) >= count

    await wait_for(arrived, within=15)


async def test_json_callback_signature_verifies(
    receiver: CallbackReceiver, harness: NotifierHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    box = faxbox(outbound={"callback": {"url": receiver.url("/fax?token=abc"), "method": "post",
                                        "type": "json"}})
    fax = outgoing_fax()
    await harness.notifier.fax_finished(harness.account_id, box, fax, None)
    await wait_for_requests(receiver, 1)

    request = receiver.requests[0]
    secret = await harness.store.get_callback_secret(harness.account_id)
    assert secret is not None
    assert request.method == "POST"
    assert request.path == "/fax?token=abc"
    assert request.headers["Content-Type"] == "application/json"
    assert hmac.compare_digest(
        request.headers["X-Faxgate-Signature"], expected_signature(secret, request)
    )
    assert abs(int(request.headers["X-Faxgate-Timestamp"]) - time.time()) < 60
    assert request.headers["X-Faxgate-Event"] == "outbound_completed"
    body = json.loads(request.body)
    assert body["event"] == "outbound_completed"
    assert body["fax_id"] == fax["id"]
    assert body["faxbox_id"] == box["id"]
    assert body["fax"]["tx_result"]["pages_sent"] == 2

    async def recorded() -> bool:
        rows = await harness.store.list_notifications(fax_id=fax["id"], status=SENT)
        return len(rows) == 1

    await wait_for(recorded, within=5)
    (row,) = await harness.store.list_notifications(fax_id=fax["id"])
    assert request.headers["X-Faxgate-Delivery"] == row.id
    logged = faxgate_log_text(caplog)
    assert "notify.sent" in logged
    assert f"127.0.0.1:{receiver.port}/fax" in logged
    assert secret not in logged
    assert "token=abc" not in logged


async def test_form_callback_put_inbound(
    receiver: CallbackReceiver, harness: NotifierHarness
) -> None:
    box = faxbox(inbound={"callback": {"url": receiver.url(), "method": "put",
                                       "type": "www-url-form-encoded"}})
    fax = received_fax()
    await harness.notifier.fax_received(harness.account_id, box, fax, None, None)
    await wait_for_requests(receiver, 1)

    request = receiver.requests[0]
    secret = await harness.store.get_callback_secret(harness.account_id)
    assert secret is not None
    assert request.method == "PUT"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["X-Faxgate-Signature"] == expected_signature(secret, request)
    fields = parse_qs(request.body.decode())
    assert fields["event"] == ["inbound_received"]
    assert fields["fax[from_number]"] == ["+14155550199"]
    assert fields["fax[rx_result][pages_received]"] == ["1"]
    assert fields["fax[rx_result][success]"] == ["true"]


async def test_failed_callback_is_retried(
    receiver: CallbackReceiver, harness: NotifierHarness
) -> None:
    receiver.statuses = [503, 500]
    box = faxbox(outbound={"callback": {"url": receiver.url()}})
    fax = outgoing_fax("failed")
    await harness.notifier.fax_finished(harness.account_id, box, fax, None)
    await wait_for_requests(receiver, 3)

    async def sent() -> bool:
        rows = await harness.store.list_notifications(fax_id=fax["id"], status=SENT)
        return len(rows) == 1

    await wait_for(sent, within=10)
    await asyncio.sleep(0.6)
    (row,) = await harness.store.list_notifications(fax_id=fax["id"])
    assert row.attempts == 3
    assert len(receiver.requests) == 3
    deliveries = {request.headers["X-Faxgate-Delivery"] for request in receiver.requests}
    assert deliveries == {row.id}
    secret = await harness.store.get_callback_secret(harness.account_id)
    assert secret is not None
    for request in receiver.requests:
        assert request.headers["X-Faxgate-Signature"] == expected_signature(secret, request)


async def test_client_error_is_not_retried(
    receiver: CallbackReceiver, harness: NotifierHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [404]
    box = faxbox(outbound={"callback": {"url": receiver.url("/hook?token=xyz")}})
    fax = outgoing_fax()
    await harness.notifier.fax_finished(harness.account_id, box, fax, None)

    async def failed() -> bool:
        rows = await harness.store.list_notifications(fax_id=fax["id"], status=FAILED)
        return len(rows) == 1

    await wait_for(failed, within=10)
    await asyncio.sleep(0.6)
    (row,) = await harness.store.list_notifications(fax_id=fax["id"])
    assert len(receiver.requests) == 1
    assert row.last_error is not None
    assert "HTTP 404" in row.last_error
    logged = faxgate_log_text(caplog)
    assert "notify.rejected" in logged
    assert "HTTP 404" in logged
    assert "token=xyz" not in logged


async def test_loopback_refused_without_allow_list(
    tmp_path: Path, receiver: CallbackReceiver
) -> None:
    box = faxbox(outbound={"callback": {"url": receiver.url()}})
    fax = outgoing_fax()
    async with running_notifier(tmp_path, allow_networks=[]) as running:
        await running.notifier.fax_finished(running.account_id, box, fax, None)

        async def failed() -> bool:
            rows = await running.store.list_notifications(fax_id=fax["id"], status=FAILED)
            return len(rows) == 1

        await wait_for(failed, within=10)
        (row,) = await running.store.list_notifications(fax_id=fax["id"])

    assert receiver.requests == []
    assert row.channel == CALLBACK
    assert row.attempts == 1
    assert row.last_error is not None
    assert "127.0.0.1, a loopback address" in row.last_error
    assert "fetch.allow_networks" in row.last_error


async def test_resolver_refuses_loopback_name(
    tmp_path: Path, receiver: CallbackReceiver
) -> None:
    # localhost resolves from /etc/hosts, so this needs no DNS server.
    box = faxbox(outbound={"callback": {"url": f"http://localhost:{receiver.port}/hook"}})
    fax = outgoing_fax()
    async with running_notifier(
        tmp_path, allow_networks=[], guard=AllowEverything()
    ) as running:
        await running.notifier.fax_finished(running.account_id, box, fax, None)

        async def failed() -> bool:
            rows = await running.store.list_notifications(fax_id=fax["id"], status=FAILED)
            return len(rows) == 1

        await wait_for(failed, within=10)
        (row,) = await running.store.list_notifications(fax_id=fax["id"])

    assert receiver.requests == []
    assert row.last_error is not None
    assert "loopback address" in row.last_error


def test_account_create_prints_secret(tmp_path: Path) -> None:
    env = {**os.environ, "FAXGATE_STORAGE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "faxgate.cli", "account", "create", "Acme"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)

    async def stored_secret() -> str | None:
        store = Store(tmp_path / "faxgate.sqlite3")
        await store.open()
        try:
            return await store.get_callback_secret(created["account_id"])
        finally:
            await store.close()

    secret = asyncio.run(stored_secret())
    assert secret is not None
    assert len(secret) == 64
    assert created["callback_secret"] == secret
    assert secret not in result.stderr

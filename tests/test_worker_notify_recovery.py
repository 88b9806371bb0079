"""A fax that finished just before a crash still gets its result mail after restart."""

from __future__ import annotations

from pathlib import Path

from notify_support import SmtpSink

from faxgate.config import Config
from faxgate.service import Service
from faxgate.store.faxes import COMPLETED, NewFax
from tests.conftest import make_config, wait_for


def config_for(tmp_path: Path, smtp_port: int) -> Config:
    return make_config(
        tmp_path / "data",
        notify={
            "smarthost": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "retry_delay": 0.1,
            "retry_delay_max": 0.4,
        },
        smtp={"enabled": False},
    )


async def test_missed_notice_sent_once(tmp_path: Path) -> None:
    sink = SmtpSink()
    port = await sink.start()
    config = config_for(tmp_path, port)
    try:
        first = Service(config)
        await first.start()
        account, _ = await first.store.create_account("crash")
        # A job whose last attempt was recorded, but whose notice was never
        # queued, as when the process dies between the two writes.
        job = NewFax(
            account_id=account["id"],
            to_number="+13125550100",
            from_number="+12125550142",
            retries=1,
            status=COMPLETED,
            doc={"notifications": {"email": {"send_to": ["owner@example.com"]}},
                 "tx_result": {"success": True, "pages_sent": 1, "pages_total": 1}},
        )
        await first.store.create_fax(job)
        assert await first.store.list_unnotified_faxes() == [(account["id"], job.id)]
        await first.stop()

        second = Service(config)
        await second.start()
        try:
            await wait_for(lambda: _async_len(sink), within=30)
            assert await second.store.list_unnotified_faxes() == []
        finally:
            await second.stop()

        third = Service(config)
        await third.start()
        await third.stop()
    finally:
        await sink.stop()

    assert len(sink.messages) == 1
    assert sink.messages[0].recipients == ["owner@example.com"]
    assert b"13125550100" in sink.messages[0].content


async def _async_len(sink: SmtpSink) -> int:
    return len(sink.messages)

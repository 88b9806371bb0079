"""Email jobs: the worker takes the documents out of the stored mail and faxes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from faxgate.clock import to_gregorian
from faxgate.errors import DocumentError
from faxgate.files import write_atomic
from faxgate.jobs import ExtractedPart
from faxgate.service import Service
from faxgate.store.faxes import NewFax, insert_fax
from tests.conftest import make_config, wait_for
from tests.outgoing_support import StandInDialer, StandInPipeline, make_pdf


class StandInExtractor:
    """Test stand-in for the mail reader: every part after a blank line is a PDF."""

    def extract(self, raw: bytes, options: dict[str, Any]) -> list[ExtractedPart]:
        assert set(options) == {"min_image_bytes", "fax_text_body", "subject_as_cover"}
        if raw.startswith(b"garbage"):
            raise DocumentError("the message cannot be parsed", code="corrupt")
        parts = raw.split(b"\n\n", 1)[1].split(b"--part--") if b"\n\n" in raw else []
        return [ExtractedPart(part, "application/pdf", None) for part in parts if part]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    running = Service(
        make_config(tmp_path / "data", worker={"poll_interval": 0.05}),
        dialer=StandInDialer(),
        pipeline=StandInPipeline(),
        extractor=StandInExtractor(),
    )
    await running.start()
    yield running
    await running.stop()


async def queue_mail(service: Service, account_id: str, raw: bytes) -> str:
    """Store a mail and its job the way the SMTP gateway does."""
    message_id = "m" + "0" * 31
    relative = Path("mail") / f"{message_id}.eml"
    write_atomic(service.config.data_dir / relative, raw)
    fax = NewFax(
        account_id,
        "+12125550123",
        "+12125550100",
        1,
        {"source": "email", "subject": "Invoice"},
        message_id=message_id,
    )
    async with service.store.transaction() as db:
        await db.execute(
            "INSERT INTO smtp_messages (id, path, size, created) VALUES (?, ?, ?, ?)",
            (message_id, str(relative), len(raw), to_gregorian(service.clock.time())),
        )
        await insert_fax(db, fax, service.clock.time())
    service.context.components["worker"].wake()
    return fax.id


async def outbox_row(service: Service, account_id: str, job_id: str) -> dict[str, Any]:
    async def row() -> dict[str, Any] | None:
        found = await service.store.get_fax_row(account_id, job_id)
        return found if found["folder"] == "outbox" else None

    result: dict[str, Any] = await wait_for(row, within=20)
    return result


async def test_email_documents_faxed_in_order(service: Service) -> None:
    account, _key = await service.store.create_account("a")
    raw = b"Subject: Invoice\n\n" + make_pdf(2) + b"--part--" + make_pdf(1)
    job_id = await queue_mail(service, account["id"], raw)

    row = await outbox_row(service, account["id"], job_id)
    assert row["status"] == "completed"
    assert row["pages"] == 3
    originals = await service.store.list_fax_files(job_id, "original")
    assert [item.position for item in originals] == [0, 1]


async def test_email_without_documents_fails(service: Service) -> None:
    account, _key = await service.store.create_account("a")
    job_id = await queue_mail(service, account["id"], b"Subject: hello\n\n")

    row = await outbox_row(service, account["id"], job_id)
    assert row["status"] == "failed"
    assert "no attachment" in row["doc"]["tx_result"]["error_message"]


async def test_unreadable_email_fails(service: Service) -> None:
    account, _key = await service.store.create_account("a")
    job_id = await queue_mail(service, account["id"], b"garbage")

    row = await outbox_row(service, account["id"], job_id)
    assert row["status"] == "failed"
    assert "cannot be parsed" in row["doc"]["tx_result"]["error_message"]

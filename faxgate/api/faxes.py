"""Outgoing faxes: /v2/accounts/{A}[/faxboxes/{FB}]/faxes, outgoing and outbox.

Queued and sending jobs are served under `outgoing` by their 32-hex id.
Finished faxes (completed or failed) are served under `outbox` by their
month-scoped id `YYYYMM-<32 hex>`; the bare 32-hex id is accepted too.
Under a faxbox, listings hold only that faxbox's faxes and new jobs take
their defaults from it.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

from aiohttp import web

from faxgate.api.app import account_id, context, listing
from faxgate.api.envelope import bad_identifier, success
from faxgate.api.faxboxes import faxbox_id_error
from faxgate.api.submissions import (
    JOB_FIELDS,
    JobFields,
    Submission,
    apply_faxbox_defaults,
    check_job_fields,
    read_submission,
)
from faxgate.api.validation import field_error, page_request, read_action
from faxgate.context import ServiceContext
from faxgate.errors import FaxgateError, NotFoundError
from faxgate.fetch import AddressGuard
from faxgate.ids import is_hex_id, split_month_id
from faxgate.jobs import (
    ExtractedPart,
    fax_view,
    job_dir,
    outbox_id,
    remove_files,
    write_originals,
)
from faxgate.logs import EventLogger
from faxgate.store import Page
from faxgate.store.faxes import (
    ATTACHING_FILES,
    ORIGINAL,
    OUTBOX,
    OUTGOING,
    PDF,
    PENDING,
    SENT_TIFF,
    TIFF,
    FaxFile,
    NewFax,
)

log = EventLogger("faxgate.api.faxes")

RESUBMIT = "resubmit"
_ATTACHMENT_FORMATS = ("pdf", "tiff", "original")


# Views.


def _listing_row(row: dict[str, Any], folder: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": outbox_id(row) if folder == OUTBOX else row["id"],
        "faxbox_id": row["faxbox_id"],
        "status": row["status"],
        "to": row["to_number"],
        "from": row["from_number"],
        "attempts": row["attempts"],
        "created": row["created"],
    }
    for key in ("delivered", "pages", "progress"):
        if row.get(key) is not None:
            item[key] = row[key]
    return item


# Lookups.


async def _scope(request: web.Request) -> str | None:
    """Return the faxbox id of a nested route after checking it exists, else None."""
    faxbox_id = request.match_info.get("faxbox_id")
    if faxbox_id is not None:
        await context(request).store.get_faxbox(account_id(request), faxbox_id)
    return faxbox_id


async def _outgoing_row(request: web.Request) -> dict[str, Any]:
    fax_id = request.match_info["fax_id"]
    faxbox_id = await _scope(request)
    row = None
    if is_hex_id(fax_id):
        row = await context(request).store.find_fax_row(
            account_id(request), fax_id, OUTGOING, faxbox_id
        )
    if row is None:
        raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
    return row


async def _outbox_row(request: web.Request) -> dict[str, Any]:
    fax_id = request.match_info["fax_id"]
    faxbox_id = await _scope(request)
    parts = split_month_id(fax_id)
    row = None
    if parts is not None:
        month, hex_id = parts
        row = await context(request).store.find_fax_row(
            account_id(request), hex_id, OUTBOX, faxbox_id
        )
        if row is not None and month is not None and not outbox_id(row).startswith(month):
            row = None
    if row is None:
        raise NotFoundError(f"fax {fax_id} not found", id=fax_id)
    return row


# Creating jobs.


async def create_outgoing(request: web.Request) -> web.Response:
    ctx = context(request)
    faxbox_id = await _scope(request)
    submission = await read_submission(request, ctx.config.http.max_upload_bytes)
    if faxbox_id is not None:
        submission.fields["faxbox_id"] = faxbox_id
    row = await _queue_job(request, submission, originals=None)
    return success(request, fax_view(row), status=201)


async def _queue_job(
    request: web.Request, submission: Submission, originals: list[ExtractedPart] | None
) -> dict[str, Any]:
    """Check the job, store its uploaded or copied documents, then commit its row."""
    ctx = context(request)
    account = account_id(request)
    fields = submission.fields
    faxbox: dict[str, Any] = {}
    if fields.get("faxbox_id"):
        try:
            faxbox = await ctx.store.get_faxbox(account, str(fields["faxbox_id"]))
        except NotFoundError:
            raise faxbox_id_error(str(fields["faxbox_id"])) from None
        fields = apply_faxbox_defaults(fields, faxbox)

    region = str(faxbox.get("fax_region") or ctx.config.fax.default_region)
    guard = AddressGuard.from_config(ctx.config.fetch)
    has_documents = bool(originals) or bool(submission.uploads)
    job = check_job_fields(fields, region, ctx.config, has_documents, guard)
    parts = originals if originals is not None else await _checked_uploads(ctx, submission)
    doc = await _store_job(ctx, account, job, parts)

    worker = ctx.components.get("worker")
    if worker is not None:
        worker.wake()
    log.info("fax.queued", account_id=account, job_id=doc["id"], documents=len(parts))
    return await ctx.store.get_fax_row(account, doc["id"])


async def _checked_uploads(ctx: ServiceContext, submission: Submission) -> list[ExtractedPart]:
    """Return the uploads with their detected types; DocumentError if one cannot be faxed."""
    if not submission.uploads:
        return []
    if ctx.pipeline is None:
        raise FaxgateError("this server has no document pipeline, so it cannot take uploads")
    parts = []
    for upload in submission.uploads:
        # The check opens the document, which can take a while for a large PDF.
        content_type = await asyncio.to_thread(
            ctx.pipeline.check, upload.data, upload.filename, upload.content_type
        )
        parts.append(ExtractedPart(upload.data, content_type, upload.filename))
    return parts


async def _store_job(
    ctx: ServiceContext, account: str, job: JobFields, parts: list[ExtractedPart]
) -> dict[str, Any]:
    fax = NewFax(
        account_id=account,
        to_number=job.to_number,
        from_number=job.from_number,
        retries=job.retries,
        doc={**job.doc, "source": "api"},
        faxbox_id=job.faxbox_id,
        status=PENDING if parts else ATTACHING_FILES,
    )
    if parts:
        # The uploads are durable before the row that points to them commits,
        # so a crash leaves at most unreferenced files, never a job without them.
        fax.doc.pop("document", None)
    files = await asyncio.to_thread(write_originals, ctx.config.data_dir, fax.id, parts)
    try:
        return await ctx.store.create_fax(fax, files)
    except BaseException:
        await asyncio.to_thread(_remove_job_files, ctx.config.data_dir, fax.id, files)
        raise


# Reading jobs and faxes.


async def list_outgoing(request: web.Request) -> web.Response:
    return await _list(request, OUTGOING)


async def list_outbox(request: web.Request) -> web.Response:
    return await _list(request, OUTBOX)


async def _list(request: web.Request, folder: str) -> web.Response:
    faxbox_id = await _scope(request)
    page = page_request(request)
    rows, next_key = await context(request).store.list_faxes(
        account_id(request), folder, page, faxbox_id
    )
    items = [_listing_row(row, folder) for row in rows]
    return listing(request, Page(items, page.start_key, next_key))


async def get_outgoing(request: web.Request) -> web.Response:
    return success(request, fax_view(await _outgoing_row(request)))


async def get_outbox(request: web.Request) -> web.Response:
    return success(request, fax_view(await _outbox_row(request), OUTBOX))


# Outbox actions.


async def update_outbox(request: web.Request) -> web.Response:
    """PUT /outbox/{id} with {"action": "resubmit", "data": {...}}: queue a copy of the fax."""
    row = await _outbox_row(request)
    body = await read_action(request)
    action = body.get("action")
    if action != RESUBMIT:
        raise field_error(
            "action",
            "enum",
            f"Value not found in enumerated list of values: ['{RESUBMIT}']",
            action,
        )
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise field_error("data", "type", "Value did not match type(s): object", data)

    copied = {key: row["doc"][key] for key in JOB_FIELDS if row["doc"].get(key) is not None}
    fields = _merge(copied, data)
    faxbox_id = request.match_info.get("faxbox_id")
    if faxbox_id is not None:
        fields["faxbox_id"] = faxbox_id
    originals = [] if "document" in data else await _copy_originals(request, row["id"])
    new_row = await _queue_job(request, Submission(fields), originals)
    log.info("fax.resubmitted", account_id=account_id(request), job_id=new_row["id"],
             source_id=row["id"])
    return success(request, fax_view(new_row), status=201)


async def _copy_originals(request: web.Request, fax_id: str) -> list[ExtractedPart]:
    ctx = context(request)
    files = await ctx.store.list_fax_files(fax_id, ORIGINAL)
    parts = []
    for item in files:
        data = await asyncio.to_thread((ctx.config.data_dir / item.path).read_bytes)
        parts.append(ExtractedPart(data, item.content_type, item.filename))
    return parts


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `base` recursively; a null value removes the key (RFC 7396)."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """Serve the fax as PDF (default), as the fax image (?format=tiff) or as sent (original)."""
    row = await _outbox_row(request)
    fmt = request.query.get("format", "pdf").lower()
    if fmt not in _ATTACHMENT_FORMATS:
        raise field_error(
            "format",
            "enum",
            f"Value not found in enumerated list of values: {list(_ATTACHMENT_FORMATS)}",
            fmt,
        )
    ctx = context(request)
    files = await ctx.store.list_fax_files(row["id"])
    name = f"fax-{outbox_id(row)}"
    if fmt == "original":
        originals = [item for item in files if item.kind == ORIGINAL]
        if len(originals) > 1:
            return await _zip_response(ctx.config.data_dir, originals, name)
        chosen = originals[0] if originals else None
    else:
        kinds = (PDF,) if fmt == "pdf" else (SENT_TIFF, TIFF)
        chosen = next((item for kind in kinds for item in files if item.kind == kind), None)
    if chosen is None:
        return bad_identifier(request, f"{request.match_info['fax_id']}/attachment")
    extension = Path(chosen.path).suffix or ".bin"
    return web.FileResponse(
        ctx.config.data_dir / chosen.path,
        headers={
            "Content-Type": chosen.content_type,
            "Content-Disposition": f'attachment; filename="{name}{extension}"',
        },
    )


async def _zip_response(data_dir: Path, files: list[FaxFile], name: str) -> web.Response:
    def build() -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for item in files:
                suffix = Path(item.path).suffix
                archive.write(data_dir / item.path, f"{name}-{item.position + 1}{suffix}")
        return buffer.getvalue()

    body = await asyncio.to_thread(build)
    return web.Response(
        body=body,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}-originals.zip"'},
    )


async def delete_attachment(request: web.Request) -> web.Response:
    row = await _outbox_row(request)
    ctx = context(request)
    files = await ctx.store.delete_fax_files(row["id"])
    await asyncio.to_thread(_remove_job_files, ctx.config.data_dir, row["id"], files)
    log.info("fax.attachment_deleted", account_id=account_id(request), job_id=row["id"])
    return success(request, fax_view(await _outbox_row(request), OUTBOX))


async def delete_outbox(request: web.Request) -> web.Response:
    row = await _outbox_row(request)
    ctx = context(request)
    files = await ctx.store.delete_fax(account_id(request), row["id"], OUTBOX)
    await asyncio.to_thread(_remove_job_files, ctx.config.data_dir, row["id"], files)
    log.info("fax.deleted", account_id=account_id(request), job_id=row["id"])
    return success(request, fax_view(row, OUTBOX))


def _remove_job_files(data_dir: Path, fax_id: str, files: list[FaxFile]) -> None:
    """Remove the fax's recorded files and its folder, which holds only faxgate's own files."""
    remove_files(data_dir, files)
    shutil.rmtree(data_dir / job_dir(fax_id), ignore_errors=True)


def register(app: web.Application) -> None:
    for base in (
        "/v2/accounts/{account_id}/faxes",
        "/v2/accounts/{account_id}/faxboxes/{faxbox_id}/faxes",
    ):
        app.router.add_put(base, create_outgoing)
        app.router.add_put(base + "/outgoing", create_outgoing)
        app.router.add_get(base + "/outgoing", list_outgoing)
        app.router.add_get(base + "/outgoing/{fax_id}", get_outgoing)
        app.router.add_get(base + "/outbox", list_outbox)
        app.router.add_get(base + "/outbox/{fax_id}", get_outbox)
        app.router.add_put(base + "/outbox/{fax_id}", update_outbox)
        app.router.add_delete(base + "/outbox/{fax_id}", delete_outbox)
        app.router.add_get(base + "/outbox/{fax_id}/attachment", get_attachment)
        app.router.add_delete(base + "/outbox/{fax_id}/attachment", delete_attachment)

"""Received faxes: /faxes/inbox and /faxes/incoming, also under /faxboxes/{FB}."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from faxgate.api.app import account_id, context, listing
from faxgate.api.envelope import success
from faxgate.api.validation import field_error, page_request, read_action, validate
from faxgate.files import commit_file, fsync_directory
from faxgate.ids import new_id
from faxgate.logs import EventLogger
from faxgate.numbers import InvalidNumberError, normalize_number
from faxgate.store.faxes import PENDING, FaxFile, NewFax
from faxgate.store.inbox import RECEIVING

log = EventLogger("faxgate.api.inbox")

DEFAULT_RETRIES = 3
FORWARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": ["forward"]},
        "data": {
            "type": "object",
            "required": ["to_number"],
            "properties": {
                "to_number": {"type": "string", "minLength": 1},
                "to_name": {"type": "string"},
                "retries": {"type": "integer", "minimum": 0, "maximum": 4},
            },
        },
    },
}


def _faxbox_filter(request: web.Request) -> str | None:
    return request.match_info.get("faxbox_id")


async def _check_faxbox(request: web.Request) -> None:
    faxbox_id = _faxbox_filter(request)
    if faxbox_id is not None:
        await context(request).store.get_faxbox(account_id(request), faxbox_id)


async def _get(request: web.Request, states: tuple[str, ...] | None = None) -> dict[str, Any]:
    await _check_faxbox(request)
    store = context(request).store
    fax_id = request.match_info["fax_id"]
    doc = (
        await store.get_inbox_fax(account_id(request), fax_id, states)
        if states
        else await store.get_inbox_fax(account_id(request), fax_id)
    )
    faxbox_id = _faxbox_filter(request)
    if faxbox_id is not None and doc.get("faxbox_id") != faxbox_id:
        raise web.HTTPNotFound()
    return doc


async def list_inbox(request: web.Request) -> web.Response:
    await _check_faxbox(request)
    page = await context(request).store.list_inbox(
        account_id(request), page_request(request), faxbox_id=_faxbox_filter(request)
    )
    return listing(request, page)


async def list_incoming(request: web.Request) -> web.Response:
    await _check_faxbox(request)
    page = await context(request).store.list_inbox(
        account_id(request), page_request(request), (RECEIVING,), _faxbox_filter(request)
    )
    return listing(request, page)


async def get_inbox(request: web.Request) -> web.Response:
    return success(request, await _get(request))


async def get_incoming(request: web.Request) -> web.Response:
    return success(request, await _get(request, (RECEIVING,)))


async def get_attachment(request: web.Request) -> web.StreamResponse:
    doc = await _get(request)
    file_format = request.query.get("format", "pdf")
    if file_format not in ("pdf", "tiff"):
        raise field_error("format", "enum", "Value not found in enumerated list of values: "
                          "['pdf', 'tiff']", file_format)
    hex_id = doc["id"].split("-")[-1]
    files = await context(request).store.list_fax_files(hex_id, file_format)
    if not files or not Path(files[0].path).exists():
        raise field_error("attachment", "exists", "this fax has no attachment", doc["id"])
    extension = "pdf" if file_format == "pdf" else "tif"
    return web.FileResponse(
        files[0].path,
        headers={
            "Content-Type": files[0].content_type,
            "Content-Disposition": f'attachment; filename="fax-{doc["id"]}.{extension}"',
        },
    )


async def _unlink(files: list[FaxFile]) -> None:
    def remove() -> None:
        folders = set()
        for item in files:
            path = Path(item.path)
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        for folder in folders:
            if folder.exists():
                fsync_directory(folder)

    await asyncio.to_thread(remove)


async def delete_attachment(request: web.Request) -> web.Response:
    doc = await _get(request)
    files = await context(request).store.delete_inbox_files(doc["id"].split("-")[-1])
    await _unlink(files)
    return success(request, {**doc, "attachments_deleted": True})


async def delete_inbox(request: web.Request) -> web.Response:
    doc = await _get(request)
    files = await context(request).store.delete_inbox_fax(doc["id"].split("-")[-1])
    await _unlink(files)
    return success(request, doc)


async def forward(request: web.Request) -> web.Response:
    """Send a received fax on to another number as a new outgoing job."""
    doc = await _get(request)
    ctx = context(request)
    body = await read_action(request)
    validate(FORWARD_SCHEMA, body)
    data = body.get("data", {})

    faxbox = await ctx.store.get_faxbox(account_id(request), doc["faxbox_id"])
    region = str(faxbox.get("fax_region") or ctx.config.fax.default_region)
    try:
        to_number = normalize_number(data["to_number"], region)
    except InvalidNumberError as exc:
        raise field_error("to_number", "format", exc.message, data["to_number"]) from exc

    hex_id = doc["id"].split("-")[-1]
    tiffs = await ctx.store.list_fax_files(hex_id, "tiff")
    if not tiffs or not Path(tiffs[0].path).exists():
        raise field_error("attachment", "exists", "the fax image was deleted; cannot forward",
                          doc["id"])

    job_id = new_id()
    target = ctx.config.data_dir / "faxes" / job_id / "original-0.tif"
    target.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_copy_durably, Path(tiffs[0].path), target)
    job = NewFax(
        id=job_id,
        account_id=account_id(request),
        faxbox_id=faxbox["id"],
        to_number=to_number,
        from_number=str(faxbox.get("caller_id") or ""),
        retries=int(data.get("retries", faxbox.get("retries", DEFAULT_RETRIES))),
        status=PENDING,
        doc={
            "to_name": data.get("to_name", ""),
            "from_name": faxbox.get("caller_name", ""),
            "fax_timezone": faxbox.get("fax_timezone", "UTC"),
            "source": "forward",
            "forwarded_from": doc["id"],
            "status": PENDING,
            "attempts": 0,
        },
    )
    original = FaxFile("original", str(target), "image/tiff", target.stat().st_size,
                       f"fax-{doc['id']}.tif")
    created = await ctx.store.create_fax(job, [original])
    log.info("inbound.forwarded", account_id=account_id(request), fax_id=doc["id"],
             job_id=job_id, to_number=to_number)
    return success(request, created, status=201)


def _copy_durably(source: Path, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temporary)
    commit_file(temporary, target)


def register(app: web.Application) -> None:
    for prefix in ("/v2/accounts/{account_id}", "/v2/accounts/{account_id}/faxboxes/{faxbox_id}"):
        base = prefix + "/faxes"
        app.router.add_get(base + "/inbox", list_inbox)
        app.router.add_get(base + "/inbox/{fax_id}", get_inbox)
        app.router.add_put(base + "/inbox/{fax_id}", forward)
        app.router.add_delete(base + "/inbox/{fax_id}", delete_inbox)
        app.router.add_get(base + "/inbox/{fax_id}/attachment", get_attachment)
        app.router.add_delete(base + "/inbox/{fax_id}/attachment", delete_attachment)
        app.router.add_get(base + "/incoming", list_incoming)
        app.router.add_get(base + "/incoming/{fax_id}", get_incoming)

"""The smtplog resource: GET /v2/accounts/{A}[/faxboxes/{FB}]/faxes/smtplog[/{id}]."""

from __future__ import annotations

from aiohttp import web

from faxgate.api.app import account_id, context, listing
from faxgate.api.envelope import success
from faxgate.api.validation import page_request
from faxgate.errors import NotFoundError
from faxgate.ids import split_month_id


async def _faxbox_scope(request: web.Request) -> str | None:
    """Return the faxbox id of a nested route after checking that it is in the account."""
    faxbox_id = request.match_info.get("faxbox_id")
    if faxbox_id is not None:
        await context(request).store.get_faxbox(account_id(request), faxbox_id)
    return faxbox_id


async def list_smtplog(request: web.Request) -> web.Response:
    faxbox_id = await _faxbox_scope(request)
    page = await context(request).store.list_smtplog(
        account_id(request), page_request(request), faxbox_id=faxbox_id
    )
    return listing(request, page)


async def get_smtplog(request: web.Request) -> web.Response:
    faxbox_id = await _faxbox_scope(request)
    entry_id = request.match_info["smtplog_id"]
    parts = split_month_id(entry_id)
    if parts is None or parts[0] is None:
        raise NotFoundError(f"smtplog entry {entry_id} not found", id=entry_id)
    doc = await context(request).store.get_smtplog_entry(
        account_id(request), entry_id, faxbox_id=faxbox_id
    )
    return success(request, doc)


def register(app: web.Application) -> None:
    for base in (
        "/v2/accounts/{account_id}/faxes/smtplog",
        "/v2/accounts/{account_id}/faxboxes/{faxbox_id}/faxes/smtplog",
    ):
        app.router.add_get(base, list_smtplog)
        app.router.add_get(base + "/{smtplog_id}", get_smtplog)

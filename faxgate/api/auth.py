"""PUT /v2/api_auth: trade an account's API key for an auth token."""

from __future__ import annotations

from aiohttp import web

from faxgate.api.app import context
from faxgate.api.envelope import AUTH_TOKEN, error, success
from faxgate.api.validation import read_envelope, validate
from faxgate.logs import EventLogger

log = EventLogger("faxgate.api.auth")

API_AUTH_SCHEMA = {
    "type": "object",
    "required": ["api_key"],
    "properties": {"api_key": {"type": "string", "minLength": 1, "maxLength": 256}},
}


async def put_api_auth(request: web.Request) -> web.Response:
    data = await read_envelope(request)
    validate(API_AUTH_SCHEMA, data)
    ctx = context(request)

    account_id = await ctx.store.account_for_api_key(data["api_key"])
    if account_id is None:
        log.warning("auth.rejected", peer=request.remote)
        return error(request, 401, "invalid credentials", {"message": "invalid api_key"})

    token, _expires = await ctx.store.create_token(account_id, ctx.config.auth.token_ttl)
    request[AUTH_TOKEN] = token
    log.info("auth.token_issued", account_id=account_id, peer=request.remote)
    return success(request, {"account_id": account_id}, status=201)


def register(app: web.Application) -> None:
    app.router.add_put("/v2/api_auth", put_api_auth)

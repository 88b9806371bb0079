"""The Kazoo response envelope and error shapes."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from aiohttp import web

from faxgate import __version__
from faxgate.clock import iso_timestamp

REQUEST_ID = web.RequestKey("request_id", str)
AUTH_TOKEN = web.RequestKey("auth_token", str)
NODE = socket.gethostname()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def envelope(request: web.Request, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "auth_token": request.get(AUTH_TOKEN, ""),
        "request_id": request.get(REQUEST_ID, ""),
        "revision": "undefined",
        "timestamp": iso_timestamp(time.time()),
        "version": __version__,
        "node": NODE,
    }
    body.update(fields)
    return body


def success(request: web.Request, data: Any, status: int = 200, **extra: Any) -> web.Response:
    body = envelope(request, data=data, status="success", **extra)
    return web.json_response(body, status=status, dumps=_dumps)


def error(
    request: web.Request, status: int, message: str, data: Any = None
) -> web.Response:
    body = envelope(
        request,
        data=data if data is not None else {},
        error=str(status),
        message=message,
        status="error",
    )
    return web.json_response(body, status=status, dumps=_dumps)


def bad_identifier(request: web.Request, identifier: str) -> web.Response:
    return error(request, 404, "bad_identifier", {"cause": identifier, "message": "bad identifier"})


def validation_error(
    request: web.Request, errors: dict[str, dict[str, dict[str, Any]]]
) -> web.Response:
    return error(request, 400, "validation error", errors)

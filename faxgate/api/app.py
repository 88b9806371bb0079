"""The aiohttp application: middlewares, error mapping and route registration.

This is the only layer that uses HTTP status codes. Faxgate errors raised
below it are mapped to Kazoo's error envelope here.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from faxgate.api.envelope import AUTH_TOKEN, REQUEST_ID, bad_identifier, error, success
from faxgate.api.validation import InvalidRequestError
from faxgate.context import ServiceContext
from faxgate.errors import (
    ConflictError,
    DocumentError,
    FaxgateError,
    FetchError,
    NotFoundError,
    ValidationError,
)
from faxgate.logs import EventLogger
from faxgate.store import Page

ACCOUNT_ID = web.RequestKey("account_id", str)


class InFlightRequests:
    """Counter of requests being handled, so that shutdown can wait for them.

    aiohttp's own graceful shutdown (3.14) stops reading from connections at
    once, which cuts off a request whose body is still arriving. So the
    service stops listening first and waits here before that shutdown.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Wait until no request is in flight; return False if `within` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True


CONTEXT = web.AppKey("context", ServiceContext)
IN_FLIGHT = web.AppKey("in_flight", InFlightRequests)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = EventLogger("faxgate.api")

_ACCOUNT_PATH = re.compile(r"^/v2/accounts/([^/]+)(/|$)")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def context(request: web.Request) -> ServiceContext:
    return request.app[CONTEXT]


def account_id(request: web.Request) -> str:
    return request[ACCOUNT_ID]


def listing(request: web.Request, page: Page, **extra: Any) -> web.Response:
    fields: dict[str, Any] = {"page_size": len(page.rows), **extra}
    if page.start_key is not None:
        fields["start_key"] = page.start_key
    if page.next_start_key is not None:
        fields["next_start_key"] = page.next_start_key
    return success(request, page.rows, **fields)


@web.middleware
async def in_flight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tracker = request.app[IN_FLIGHT]
    tracker.enter()
    try:
        return await handler(request)
    finally:
        tracker.leave()


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID] = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    response = await handler(request)
    response.headers["X-Request-ID"] = request[REQUEST_ID]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        return error(request, 400, "validation error", exc.errors)
    except InvalidRequestError as exc:
        return error(request, 400, "invalid request", {"message": exc.message})
    except NotFoundError as exc:
        return bad_identifier(request, str(exc.details.get("id", request.path)))
    except ConflictError as exc:
        field = exc.details.get("field")
        if field:
            return error(
                request, 400, "validation error", {field: {"unique": {"message": exc.message}}}
            )
        return error(request, 409, "conflict", {"message": exc.message})
    except DocumentError as exc:
        data = {"document": {exc.code: {"message": exc.message}}}
        return error(request, 400, "validation error", data)
    except FetchError as exc:
        data = {"document.url": {exc.code: {"message": exc.message}}}
        return error(request, 400, "validation error", data)
    except FaxgateError as exc:
        log.error("api.request_failed", path=request.path, code=exc.code, error=exc.message)
        return error(request, 500, "internal error", {"message": exc.message})
    except web.HTTPMethodNotAllowed as exc:
        response = error(
            request, 405, "method not allowed", {"allowed": sorted(exc.allowed_methods)}
        )
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return error(request, 413, "payload too large", {"message": exc.text or ""})
    except web.HTTPNotFound:
        return bad_identifier(request, request.path)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error(request, exc.status, exc.reason.lower(), {"message": exc.text or ""})
        raise
    except ConnectionError as exc:
        # The client disconnected while its request was in progress.
        log.warning("api.connection_lost", path=request.path, peer=request.remote, error=exc)
        raise
    except Exception as exc:
        log.exception(
            "api.unhandled_error",
            method=request.method,
            path=request.path,
            request_id=request.get(REQUEST_ID, ""),
            error=exc,
        )
        return error(
            request,
            500,
            "internal error",
            {"message": "the server failed to handle this request; its log names the request_id"},
        )


def _route_template(request: web.Request) -> str:
    """Return the matched route's template, which keeps ids out of metric labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request, and log it at DEBUG with its ids."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client closed the connection; nginx's code for it
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics = context(request).metrics
        route = _route_template(request)
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_request_duration.labels(request.method, route).observe(elapsed)
        if status == 401:
            reason = "api_key" if request.path == "/v2/api_auth" else "token"
            metrics.auth_failures.labels(reason).inc()
        log.debug(
            "http.request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round(elapsed * 1000, 1),
            request_id=request.get(REQUEST_ID, ""),
            account_id=request.get(ACCOUNT_ID, ""),
            peer=request.remote,
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require X-Auth-Token on account routes and serve only the token's own account."""
    match = _ACCOUNT_PATH.match(request.path)
    if match is None:
        return await handler(request)

    token = request.headers.get("X-Auth-Token", "")
    token_account = await context(request).store.account_for_token(token) if token else None
    if token_account is None:
        return error(
            request,
            401,
            "invalid credentials",
            {"message": "missing, invalid or expired X-Auth-Token; get one with PUT /v2/api_auth"},
        )
    request[AUTH_TOKEN] = token
    requested = match.group(1)
    if requested != token_account:
        # Another account's id gets the same 404 as an id that does not exist.
        return bad_identifier(request, requested)
    request[ACCOUNT_ID] = token_account
    return await handler(request)


def create_app(ctx: ServiceContext) -> web.Application:
    from faxgate.api import auth, faxboxes, faxes, health, inbox, metrics, openapi, smtplog

    app = web.Application(
        middlewares=[
            in_flight_middleware,
            request_id_middleware,
            metrics_middleware,
            error_middleware,
            auth_middleware,
        ],
        client_max_size=ctx.config.http.max_upload_bytes,
    )
    app[CONTEXT] = ctx
    app[IN_FLIGHT] = InFlightRequests()
    auth.register(app)
    faxboxes.register(app)
    faxes.register(app)
    health.register(app)
    smtplog.register(app)
    inbox.register(app)
    metrics.register(app)
    openapi.register(app)
    return app

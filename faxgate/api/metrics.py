"""GET /metrics: the service's Prometheus metrics in the text exposition format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from faxgate.api.app import context


async def get_metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    await ctx.metrics.refresh(ctx.store, ctx.clock.time())
    body = generate_latest(ctx.metrics.registry)
    response = web.Response(body=body)
    # CONTENT_TYPE_LATEST carries a charset parameter, which aiohttp accepts
    # only through the header, not through content_type=.
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def register(app: web.Application) -> None:
    app.router.add_get("/metrics", get_metrics)

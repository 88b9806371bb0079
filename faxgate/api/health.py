"""GET /health: whether the store and each started component work."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from faxgate.api.app import context


async def get_health(request: web.Request) -> web.Response:
    ctx = context(request)
    checks: dict[str, Any] = {"store": "ok" if await ctx.store.ping() else "failing"}
    for name, component in sorted(ctx.components.items()):
        status = getattr(component, "health", None)
        checks[name] = status() if callable(status) else "ok"
    healthy = all(
        (value == "ok") if isinstance(value, str) else value.get("status") == "ok"
        for value in checks.values()
    )
    body = {"status": "ok" if healthy else "failing", "checks": checks}
    return web.json_response(body, status=200 if healthy else 503)


def register(app: web.Application) -> None:
    app.router.add_get("/health", get_health)

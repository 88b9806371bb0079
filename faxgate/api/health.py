"""GET /health: the state of the store, each started component and each trunk.

The response is 200 when every check is "ok" and 503 otherwise, so that a
container health check or a load balancer can use the status code alone.
The body also carries the job counts by status (`queue`, `finished`) and
the trunks' channel use, which `faxgate status` prints.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from faxgate import __version__
from faxgate.api.app import context
from faxgate.context import ServiceContext
from faxgate.metrics import (
    FAX_STATUSES,
    INBOX_STATUSES,
    StoreSnapshot,
    read_store_snapshot,
    with_known_statuses,
)
from faxgate.store.faxes import QUEUED_STATES

OK = "ok"
FAILING = "failing"


def _is_ok(check: Any) -> bool:
    if isinstance(check, str):
        return check == OK
    return isinstance(check, dict) and check.get("status") == OK


def _component_check(component: Any) -> Any:
    status = getattr(component, "health", None)
    return status() if callable(status) else OK


def _trunk_checks(ctx: ServiceContext) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for name, trunk in sorted(ctx.trunks.items()):
        try:
            report = {"status": OK, **trunk.status()}
        except Exception as exc:
            report = {"status": FAILING, "error": str(exc)}
        checks[name] = report
    return checks


def _job_counts(snapshot: StoreSnapshot) -> tuple[dict[str, int], dict[str, int]]:
    counts = with_known_statuses(snapshot.faxes, FAX_STATUSES)
    queue = {status: n for status, n in counts.items() if status in QUEUED_STATES}
    finished = {status: n for status, n in counts.items() if status not in QUEUED_STATES}
    return queue, finished


async def get_health(request: web.Request) -> web.Response:
    ctx = context(request)
    store_ok = await ctx.store.ping()
    checks: dict[str, Any] = {"store": OK if store_ok else FAILING}
    for name, component in sorted(ctx.components.items()):
        checks[name] = _component_check(component)
    trunks = _trunk_checks(ctx)
    healthy = all(_is_ok(check) for check in [*checks.values(), *trunks.values()])

    body: dict[str, Any] = {
        "status": OK if healthy else FAILING,
        "version": __version__,
        "checks": checks,
        "trunks": trunks,
    }
    if store_ok:
        snapshot = await read_store_snapshot(ctx.store, ctx.clock.time())
        queue, finished = _job_counts(snapshot)
        body.update(queue=queue, queue_depth=snapshot.queue_depth, due=snapshot.due,
                    finished=finished,
                    inbox=with_known_statuses(snapshot.inbox, INBOX_STATUSES))
    return web.json_response(body, status=200 if healthy else 503)


def register(app: web.Application) -> None:
    app.router.add_get("/health", get_health)

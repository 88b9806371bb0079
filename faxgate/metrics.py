"""Prometheus metrics of one running service.

Each Service owns a `Metrics` object with its own registry, reachable as
`ctx.metrics` through the ServiceContext, so that several services in one
process (as in the tests) never share counters. Events are counted where
they happen, for example::

    ctx.metrics.smtp_messages.labels(outcome="accepted").inc()
    ctx.metrics.fax_attempts.labels(result="busy").inc()
    with ctx.metrics.render_duration.time():
        ...

Figures that the database already contains (jobs by status, queue depth,
received faxes) and the trunks' channel use are read when /metrics is
scraped, not counted, so they stay right across restarts and processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from faxgate import __version__
from faxgate.logs import EventLogger
from faxgate.store.faxes import FINISHED_STATES, QUEUED_STATES

log = EventLogger("faxgate.metrics")

# The `_created` series give each counter's creation time, which Prometheus
# does not need for rate(); without them the exposition is half as long.
# The switch is global to prometheus_client, so it applies to every registry.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client 0.26 leaves it unannotated

# Statuses listed so that each one has a series even at zero.
FAX_STATUSES = (*QUEUED_STATES, *FINISHED_STATES)
INBOX_STATUSES = ("receiving", "received", "failed")

# Seconds, up to the default documents.timeout of 120 s.
RENDER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Seconds. These are estimates: a one-page call takes roughly half a minute
# to a minute, and the top buckets are for long documents at low speeds.
CALL_BUCKETS = (10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StoreStats(Protocol):
    """The store queries that /metrics and /health read."""

    async def count_faxes_by_status(self) -> dict[str, int]: ...

    async def count_due_faxes(self, now: float) -> int: ...

    async def count_inbox_by_status(self) -> dict[str, int]: ...


class TrunkStatus(Protocol):
    """The part of a trunk that /health and /metrics read.

    `status()` returns at least `channels_in_use` and `channels_total`.
    """

    def status(self) -> dict[str, Any]: ...


@dataclass
class StoreSnapshot:
    """Counts read from the store for one scrape; `ok` is False when the read failed."""

    ok: bool = False
    faxes: dict[str, int] = field(default_factory=dict)
    due: int = 0
    inbox: dict[str, int] = field(default_factory=dict)

    @property
    def queue_depth(self) -> int:
        return sum(self.faxes.get(status, 0) for status in QUEUED_STATES)


async def read_store_snapshot(store: StoreStats, now: float) -> StoreSnapshot:
    """Read the job and inbox counts; a failed read returns a snapshot with `ok` False."""
    try:
        return StoreSnapshot(
            ok=True,
            faxes=await store.count_faxes_by_status(),
            due=await store.count_due_faxes(now),
            inbox=await store.count_inbox_by_status(),
        )
    except Exception as exc:
        log.error("metrics.store_read_failed", error=exc)
        return StoreSnapshot(ok=False)


class StoreCollector:
    """Gauges from the last store snapshot, which the /metrics handler refreshes per scrape."""

    def __init__(self) -> None:
        self.snapshot = StoreSnapshot()

    def describe(self) -> Iterable[Metric]:
        return self._families(StoreSnapshot(ok=False))

    def collect(self) -> Iterable[Metric]:
        return self._families(self.snapshot)

    def _families(self, snapshot: StoreSnapshot) -> list[Metric]:
        store_up = GaugeMetricFamily(
            "faxgate_store_up", "1 when the last read of the store for metrics succeeded"
        )
        store_up.add_metric([], 1.0 if snapshot.ok else 0.0)
        families: list[Metric] = [store_up]
        if not snapshot.ok:
            return families

        jobs = GaugeMetricFamily(
            "faxgate_fax_jobs", "Outgoing faxes in the store, by job status", labels=["status"]
        )
        for status, count in with_known_statuses(snapshot.faxes, FAX_STATUSES).items():
            jobs.add_metric([status], count)
        queue = GaugeMetricFamily(
            "faxgate_queue_depth",
            "Outgoing faxes queued or being sent (attaching_files, pending, processing)",
        )
        queue.add_metric([], snapshot.queue_depth)
        due = GaugeMetricFamily(
            "faxgate_queue_due", "Pending faxes whose next attempt may start now"
        )
        due.add_metric([], snapshot.due)
        inbox = GaugeMetricFamily(
            "faxgate_inbox_faxes", "Received faxes in the store, by status", labels=["status"]
        )
        for status, count in with_known_statuses(snapshot.inbox, INBOX_STATUSES).items():
            inbox.add_metric([status], count)
        return [*families, jobs, queue, due, inbox]


class TrunkCollector:
    """Channel use of each registered trunk, read from `Trunk.status()` at scrape time."""

    def __init__(self, trunks: Mapping[str, TrunkStatus]) -> None:
        self.trunks = trunks

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        return self._families(self.trunks)

    def _families(self, trunks: Mapping[str, TrunkStatus]) -> list[Metric]:
        in_use = GaugeMetricFamily(
            "faxgate_trunk_channels_in_use", "Trunk channels carrying a call", labels=["trunk"]
        )
        total = GaugeMetricFamily(
            "faxgate_trunk_channels", "Trunk channels available in total", labels=["trunk"]
        )
        for name, trunk in sorted(trunks.items()):
            try:
                status = trunk.status()
            except Exception as exc:
                log.error("metrics.trunk_status_failed", trunk=name, error=exc)
                continue
            in_use.add_metric([name], float(status.get("channels_in_use", 0)))
            total.add_metric([name], float(status.get("channels_total", 0)))
        return [in_use, total]


class Metrics:
    """The counters and histograms of one service, in a registry of its own.

    Label values are short lower-case words; keep their number small
    (outcomes and results, never ids or addresses), because each value
    makes a new time series.
    """

    def __init__(self, trunks: Mapping[str, TrunkStatus] | None = None) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry

        self.http_requests = Counter(
            "faxgate_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_request_duration = Histogram(
            "faxgate_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.auth_failures = Counter(
            "faxgate_auth_failures",
            "Rejected credentials: reason api_key (PUT /v2/api_auth) or token (X-Auth-Token)",
            ["reason"],
            registry=registry,
        )
        self.smtp_sessions = Counter(
            "faxgate_smtp_sessions",
            "SMTP sessions ended, by outcome (for example completed, timed_out, refused)",
            ["outcome"],
            registry=registry,
        )
        self.smtp_messages = Counter(
            "faxgate_smtp_messages",
            "Messages per envelope recipient, by outcome (for example accepted, rejected)",
            ["outcome"],
            registry=registry,
        )
        self.fax_attempts = Counter(
            "faxgate_fax_attempts",
            "Finished call attempts of outgoing faxes, by result (for example success, busy)",
            ["result"],
            registry=registry,
        )
        self.pages_sent = Counter(
            "faxgate_fax_pages_sent", "Pages confirmed by the far end", registry=registry
        )
        self.pages_received = Counter(
            "faxgate_fax_pages_received", "Pages received on incoming calls", registry=registry
        )
        self.render_duration = Histogram(
            "faxgate_render_duration_seconds",
            "Time to turn a job's documents into fax pages",
            buckets=RENDER_BUCKETS,
            registry=registry,
        )
        self.call_duration = Histogram(
            "faxgate_call_duration_seconds",
            "Length of fax calls, by direction (outgoing or incoming)",
            ["direction"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.config_reloads = Counter(
            "faxgate_config_reloads",
            "Configuration reloads on SIGHUP, by result (applied or failed)",
            ["result"],
            registry=registry,
        )
        Info("faxgate_build", "Version of the running faxgate", registry=registry).info(
            {"version": __version__}
        )
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

        self.store = StoreCollector()
        registry.register(self.store)
        self.trunks = TrunkCollector(trunks if trunks is not None else {})
        registry.register(self.trunks)

    async def refresh(self, store: StoreStats, now: float) -> StoreSnapshot:
        """Read the store counts that the next collection reports, and return them."""
        self.store.snapshot = await read_store_snapshot(store, now)
        return self.store.snapshot


def with_known_statuses(counts: Mapping[str, int], known: Iterable[str]) -> dict[str, int]:
    """Return `counts` with a zero for every known status it lacks."""
    merged = {status: 0 for status in known}
    merged.update(counts)
    return merged

"""The faxgate service: store, HTTP API, SMTP listener and job worker in one event loop."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from faxgate import __version__
from faxgate.adapters import TrunkDialer, build_extractor, build_pipeline, build_trunk
from faxgate.api.app import IN_FLIGHT, create_app
from faxgate.clock import Clock, SystemClock
from faxgate.config import Config
from faxgate.context import ServiceContext
from faxgate.errors import ConfigError
from faxgate.fetch import Fetcher
from faxgate.files import write_atomic
from faxgate.inbound import InboundReceiver
from faxgate.jobs import Dialer, DocumentPipeline, MailExtractor
from faxgate.logs import EventLogger, reconfigure_logging
from faxgate.notify import Notifier
from faxgate.reload import ReloadResult, apply_live_settings
from faxgate.smtp.server import SmtpGateway
from faxgate.store import Store
from faxgate.systemd import notify_ready, notify_reloading, notify_stopping
from faxgate.trunks.base import Trunk
from faxgate.worker import Worker

log = EventLogger("faxgate.service")

RUNTIME_FILE = "faxgate.runtime.json"


class Component(Protocol):
    """A part of the service with its own start and bounded stop.

    A component may also define `reload(config)`, sync or async, which the
    service calls after a configuration reload with the running Config.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> Any: ...


class Service:
    """The whole server. Tests may inject the parts the worker drives.

    `trunk` is a fax engine trunk, `dialer` a ready `faxgate.jobs.Dialer`
    (used instead of a trunk), `pipeline` the document pipeline and
    `extractor` the mail reader. Parts not given are built from the config.
    """

    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        trunk: Trunk | None = None,
        dialer: Dialer | None = None,
        pipeline: DocumentPipeline | None = None,
        extractor: MailExtractor | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._trunk = trunk
        self._dialer = dialer
        self._pipeline = pipeline
        self._extractor = extractor
        self.store = Store(config.data_dir / "faxgate.sqlite3", clock=self.clock)
        self.context = ServiceContext(config=config, store=self.store, clock=self.clock)
        self._runner: web.AppRunner | None = None
        self._components: list[Component] = []
        self.http_port: int | None = None
        self.smtp_port: int | None = None
        self._smtp: SmtpGateway | None = None
        self._reload_lock = asyncio.Lock()

    @property
    def http_url(self) -> str:
        return f"http://{self.config.http.host}:{self.http_port}"

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        log.info("store.opened", path=str(self.store.path))
        try:
            for component in self._build_components():
                await component.start()
                self._components.append(component)
                self.context.components[component.name] = component
            if self._smtp is not None:
                self.smtp_port = self._smtp.port
            await self._start_http()
        except BaseException:
            await self.stop()
            raise
        self._write_runtime_file()
        log.info("service.ready", http_port=self.http_port, smtp_port=self.smtp_port)
        # Every listener is up once start() gets here, so systemd may start
        # the units that wait for faxgate.
        notify_ready(self._status_text())

    def _build_components(self) -> list[Component]:
        """Return the components to start before the HTTP API, in start order."""
        # The notifier starts first, so that layers started after it can call it
        # through self.context.components["notifier"].
        notifier = Notifier(self.context)
        components: list[Component] = [notifier]
        pipeline = self._pipeline or build_pipeline(self.config)
        self.context.pipeline = pipeline
        receiver = InboundReceiver(self.context, pipeline, notifier.fax_received)
        components.append(receiver)
        dialer = self._dialer
        if dialer is None:
            trunk = self._trunk or build_trunk(self.config)
            self.context.trunks[trunk.name] = trunk
            # Calls to a faxbox's own number are received by that faxbox.
            trunk.set_inbound_handler(receiver)
            dialer = TrunkDialer(trunk)
        extractor = self._extractor or build_extractor(self.config)
        fetcher = Fetcher(self.config.fetch, user_agent=f"faxgate/{__version__}")
        components.append(Worker(self.context, dialer, pipeline, extractor, fetcher))
        if self.config.smtp.enabled:
            self._smtp = SmtpGateway(self.context)
            components.append(self._smtp)
        return components

    async def _start_http(self) -> None:
        app = create_app(self.context)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.config.http.shutdown_timeout,
            handle_signals=False,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        server = site._server
        if isinstance(server, asyncio.Server) and server.sockets:
            self.http_port = server.sockets[0].getsockname()[1]
        log.info("http.listening", host=self.config.http.host, port=self.http_port)

    async def stop(self) -> None:
        """Stop taking work, let what is in flight finish within the timeouts, close the store."""
        log.info("service.stopping")
        notify_stopping()
        if self._runner is not None:
            await self._stop_http(self._runner)
            self._runner = None
        for component in reversed(self._components):
            try:
                await component.stop()
            except Exception as exc:
                log.exception("service.component_stop_failed", component=component.name, error=exc)
        self._components.clear()
        await self.store.close()
        (self.config.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        log.info("service.stopped")

    async def _stop_http(self, runner: web.AppRunner) -> None:
        for site in list(runner.sites):
            await site.stop()
        in_flight = runner.app[IN_FLIGHT]
        if in_flight.count:
            log.info("http.draining", requests=in_flight.count)
        if not await in_flight.wait_idle(self.config.http.shutdown_timeout):
            log.warning("http.drain_timed_out", requests=in_flight.count)
        await runner.cleanup()

    async def reload(self, new_config: Config) -> ReloadResult:
        """Apply the live settings of `new_config` to the running service.

        Live settings are copied into `self.config` in place (see
        faxgate.reload); changed settings that need a restart are logged
        and keep their running values. Components and trunks that define
        `reload(config)` are then called with the running config.
        """
        async with self._reload_lock:
            result = apply_live_settings(self.config, new_config)
            if any(key.startswith("log.") for key in result.applied):
                reconfigure_logging(self.config.log.level, self.config.log.format)
            for key in result.restart_required:
                log.warning("config.restart_required", key=key)
            await self._reload_components()
            self.context.metrics.config_reloads.labels(result="applied").inc()
            log.info(
                "config.reloaded",
                applied=",".join(result.applied) or "none",
                restart_required=",".join(result.restart_required) or "none",
            )
            return result

    async def reload_from(self, load: Callable[[], Config]) -> ReloadResult | None:
        """Read the configuration with `load` and apply it, telling systemd around it.

        When `load` raises ConfigError (a bad file or value), the running
        configuration stays as it is, the error is logged naming the key,
        and None is returned.
        """
        notify_reloading("reloading the configuration")
        try:
            try:
                new_config = load()
            except ConfigError as exc:
                log.error("config.reload_failed", error=exc.message)
                self.context.metrics.config_reloads.labels(result="failed").inc()
                return None
            return await self.reload(new_config)
        finally:
            notify_ready(self._status_text())

    def _status_text(self) -> str:
        """Return the one-line state that `systemctl status` shows."""
        text = f"HTTP on port {self.http_port}"
        if self.smtp_port is not None:
            text += f", SMTP on port {self.smtp_port}"
        return text

    async def _reload_components(self) -> None:
        targets: list[Any] = [*self._components, *self.context.trunks.values()]
        seen: set[int] = set()
        for target in targets:
            hook = getattr(target, "reload", None)
            if id(target) in seen or not callable(hook):
                continue
            seen.add(id(target))
            name = getattr(target, "name", type(target).__name__)
            try:
                outcome = hook(self.config)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                log.exception("config.component_reload_failed", component=name, error=exc)

    def _write_runtime_file(self) -> None:
        runtime = {
            "pid": os.getpid(),
            "http_url": self.http_url,
            "smtp_port": self.smtp_port,
            "smtp_host": self.config.smtp.host,
        }
        write_atomic(self.config.data_dir / RUNTIME_FILE, json.dumps(runtime).encode())


def read_runtime_file(data_dir: Path) -> dict[str, Any] | None:
    """Return what a running service wrote about itself, or None when none runs."""
    try:
        loaded: dict[str, Any] = json.loads((data_dir / RUNTIME_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return loaded

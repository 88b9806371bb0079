"""Delivery of queued notifications: one loop per channel, retries with backoff.

A failed attempt that may succeed later (smarthost down, 4xx reply, callback
receiver unreachable or responding with 5xx) keeps the notification queued and due
again after `notify.retry_delay`, doubling per attempt up to
`notify.retry_delay_max`. A notification still failing `notify.max_age`
seconds after it was queued, or rejected for good (5xx reply, address not
allowed, 4xx response), ends in status failed with the reason, and its payload
file stays for a person to inspect.

Delivery is at least once: a crash between the smarthost's or receiver's
acceptance and the status write sends that notification again on restart.
Mail keeps its Message-ID and callbacks their X-Faxgate-Delivery header
across attempts, so a recipient can recognise the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from faxgate import __version__
from faxgate.clock import Clock
from faxgate.config import NotifyConfig
from faxgate.logs import EventLogger
from faxgate.notify.callbacks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackSender,
    redact_url,
    signature,
)
from faxgate.notify.errors import (
    DeliveryError,
    PermanentDeliveryError,
    SessionError,
)
from faxgate.notify.mailer import Mailer
from faxgate.store import Store
from faxgate.store.notifications import Notification

log = EventLogger("faxgate.notify")

# Maximum sleep of an idle loop. It is a safety net for rows queued by another process.
IDLE_POLL_SECONDS = 60.0
# Pause after an unexpected error in a loop, so that a broken store is not hammered.
ERROR_PAUSE_SECONDS = 5.0
MAIL_BATCH = 20
CALLBACK_BATCH = 20
CALLBACK_CONCURRENCY = 4

DeliverBatch = Callable[[list[Notification]], Awaitable[None]]


def backoff_delay(config: NotifyConfig, attempts: int) -> float:
    """Return the seconds to wait after the `attempts`-th failed attempt."""
    exponent = min(max(attempts - 1, 0), 32)
    return float(min(config.retry_delay * 2**exponent, config.retry_delay_max))


class Recorder:
    """Writes the outcome of each attempt to the store."""

    def __init__(self, store: Store, clock: Clock, config: NotifyConfig, data_dir: Path) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self._data_dir = data_dir

    def payload(self, notification: Notification) -> Path:
        return self._data_dir / notification.payload_path

    async def sent(self, notification: Notification) -> None:
        # Shielded, so that a stop during the write cannot lose a delivery
        # that already happened.
        await asyncio.shield(
            self._store.mark_notification_sent(notification.id, notification.attempts + 1)
        )
        self.payload(notification).unlink(missing_ok=True)
        log.info(
            "notify.sent",
            notification_id=notification.id,
            fax_id=notification.fax_id,
            kind=notification.event,
            channel=notification.channel,
            recipient=_shown_recipient(notification),
            attempts=notification.attempts + 1,
        )

    async def failed(self, notification: Notification, error: DeliveryError) -> None:
        """Record a failed attempt: defer it, or give it up when permanent or too old."""
        attempts = notification.attempts + 1
        now = self._clock.time()
        context = {
            "notification_id": notification.id,
            "fax_id": notification.fax_id,
            "kind": notification.event,
            "channel": notification.channel,
            "recipient": _shown_recipient(notification),
            "attempts": attempts,
            "error": error.message,
        }
        if isinstance(error, PermanentDeliveryError):
            await asyncio.shield(
                self._store.fail_notification(notification.id, attempts, error.message)
            )
            log.error("notify.rejected", **context)
            return
        if now - notification.created_unix >= self._config.max_age:
            message = f"gave up after {attempts} attempts; last error: {error.message}"
            await asyncio.shield(self._store.fail_notification(notification.id, attempts, message))
            log.error("notify.given_up", **context)
            return
        delay = backoff_delay(self._config, attempts)
        await asyncio.shield(
            self._store.defer_notification(notification.id, attempts, now + delay, error.message)
        )
        # A smarthost outage defers whole batches; the batch logs it once.
        if not isinstance(error, SessionError):
            log.warning("notify.deferred", retry_in=delay, **context)


def _shown_recipient(notification: Notification) -> str:
    if notification.channel == "callback":
        return redact_url(notification.recipient)
    return notification.recipient


class MailDelivery:
    """Sends due mail through the smarthost, one SMTP session per batch."""

    def __init__(self, mailer: Mailer, recorder: Recorder) -> None:
        self._mailer = mailer
        self._recorder = recorder
        self.last_error: str | None = None

    async def __call__(self, batch: list[Notification]) -> None:
        pending = list(batch)
        try:
            async with self._mailer.session() as session:
                while pending:
                    notification = pending[0]
                    await self._send(session.send, notification)
                    pending.pop(0)
        except SessionError as exc:
            self.last_error = exc.message
            log.warning(
                "notify.smarthost_unavailable",
                server=self._mailer.server,
                deferred=len(pending),
                error=exc.message,
            )
            for notification in pending:
                await self._recorder.failed(notification, exc)
            return
        self.last_error = None

    async def _send(
        self, send: Callable[[str, str, bytes], Awaitable[None]], notification: Notification
    ) -> None:
        """Send one message; SessionError propagates so that the batch is deferred."""
        try:
            message = await asyncio.to_thread(self._recorder.payload(notification).read_bytes)
        except OSError as exc:
            missing = PermanentDeliveryError(f"the queued message file is unreadable: {exc}")
            await self._recorder.failed(notification, missing)
            return
        try:
            await send(str(notification.doc.get("envelope_sender", "")), notification.recipient,
                       message)
        except SessionError:
            raise
        except DeliveryError as exc:
            await self._recorder.failed(notification, exc)
            return
        await self._recorder.sent(notification)


class CallbackDelivery:
    """Sends due callbacks, a few at a time, each signed with its account's secret."""

    def __init__(
        self, sender: CallbackSender, recorder: Recorder, store: Store, clock: Clock
    ) -> None:
        self._sender = sender
        self._recorder = recorder
        self._store = store
        self._clock = clock
        self._slots = asyncio.Semaphore(CALLBACK_CONCURRENCY)

    async def __call__(self, batch: list[Notification]) -> None:
        await asyncio.gather(*(self._deliver(notification) for notification in batch))

    async def _deliver(self, notification: Notification) -> None:
        async with self._slots:
            try:
                await self._send(notification)
            except DeliveryError as exc:
                await self._recorder.failed(notification, exc)
                return
            await self._recorder.sent(notification)

    async def _send(self, notification: Notification) -> None:
        secret = await self._store.get_callback_secret(notification.account_id)
        if secret is None:
            raise PermanentDeliveryError(f"account {notification.account_id} no longer exists")
        try:
            body = await asyncio.to_thread(self._recorder.payload(notification).read_bytes)
        except OSError as exc:
            raise PermanentDeliveryError(f"the queued callback body is unreadable: {exc}") from exc
        timestamp = str(int(self._clock.time()))
        headers = {
            "Content-Type": str(notification.doc.get("content_type", "application/json")),
            "User-Agent": f"faxgate/{__version__}",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
            EVENT_HEADER: notification.event,
            DELIVERY_HEADER: notification.id,
        }
        method = str(notification.doc.get("method", "post"))
        await self._sender.send(notification.recipient, method, body, headers)


class DeliveryLoop:
    """Runs the deliveries of one channel as its notifications fall due."""

    def __init__(
        self, channel: str, store: Store, clock: Clock, batch_size: int, deliver: DeliverBatch
    ) -> None:
        self.channel = channel
        self._store = store
        self._clock = clock
        self._batch_size = batch_size
        self._deliver = deliver
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"notifier.{self.channel}")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self, within: float) -> None:
        """Let the batch in progress finish within `within` seconds, then cancel it."""
        self._stopping = True
        self._wakeup.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), within)
        except TimeoutError:
            log.warning("notify.stop_timed_out", channel=self.channel, seconds=within)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the query, so a wake() during the query is not lost.
            self._wakeup.clear()
            try:
                batch = await self._store.due_notifications(
                    self.channel, self._clock.time(), self._batch_size
                )
                if batch:
                    await self._deliver(batch)
                    continue
                next_due = await self._store.next_notification_due(self.channel)
            except Exception as exc:
                log.exception("notify.loop_failed", channel=self.channel, error=str(exc))
                next_due = self._clock.time() + ERROR_PAUSE_SECONDS
            await self._sleep_until(next_due)

    async def _sleep_until(self, due: float | None) -> None:
        delay = IDLE_POLL_SECONDS if due is None else due - self._clock.time()
        delay = min(max(delay, 0.0), IDLE_POLL_SECONDS)
        if delay == 0.0 or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)

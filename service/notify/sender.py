"""The notification sender: the outbox's events to the webhook and to Apprise.

It runs in the worker beside the task slots (never in them: an endpoint that
is down delays no bundle and no delivery), in one process of the deployment
at a time (the `notify` lease), so the order per asset holds across
replicas. Each round it fans new events out into sends (one per destination
that wants the type: NOTIFY_WEBHOOK_EVENTS, NOTIFY_EVENTS) and starts every
due send that is first in its (destination, asset) line and not already on
its way. A send that fails waits, with exponential backoff capped at
NOTIFY_RETRY_MAX_SECONDS, and the later events of its asset for that
destination wait behind it; after NOTIFY_GIVE_UP_HOURS it is given up, with
its reason logged and counted. Sent at least once: a process killed after
the send and before it was recorded sends it again (same `webhook-id`).

It wakes when the queue says there is work (events stored in this process,
or a NOTIFY on PostgreSQL), when a send ends, and at least every
`poll_interval` seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import anyio

from service.logging import get_logger
from service.metrics import Metrics
from service.notify.channel import Channel, SendFailed
from service.queue import QueueUnavailable, backoff_delay
from service.queue.outbox import GIVEN_UP, QUEUED, SENT, Destination, Outbox, Send
from service.work import leases
from service.work.leases import new_holder

log = get_logger("service.notify.sender")

LEASE = leases.NOTIFY
LEASE_SECONDS = 30.0
BACKLOG_EVERY = 5.0  # seconds between reads of the backlog gauge


class Sender:
    def __init__(
        self,
        queue: Outbox,
        channels: dict[Destination, Channel],
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        retry_max_seconds: float = 60.0,
        give_up_seconds: float = 24 * 3600.0,
        poll_interval: float = 1.0,
        concurrency: int = 16,
        holder: str | None = None,
    ) -> None:
        self.queue = queue
        self.channels = channels
        self.by_key = {d.key: (d, c) for d, c in channels.items()}
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.retry_max_seconds = retry_max_seconds
        self.give_up_seconds = give_up_seconds
        self.poll_interval = poll_interval
        self.holder = holder or new_holder()
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._in_flight: set[tuple[str, str]] = set()
        # Sends recorded while this round read what is due: that read may
        # predate the record, so those sends are not started again from it.
        self._recorded: dict[tuple[int, str], int] = {}
        self._wake = anyio.Event()
        self._next_retry = math.inf
        self._lease_until = 0.0
        self._backlog_read = -math.inf

    # -- the loop ---------------------------------------------------------------

    async def run(self) -> None:
        log.info(
            "notify.started",
            destinations=[d.key for d in self.channels],  # keys only: URLs hold secrets
        )
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._listen)
                while True:
                    try:
                        if await self._hold_lease():
                            await self.round(group)
                            await self._read_backlog()
                    except QueueUnavailable as exc:
                        log.warning("notify.queue_unavailable", error=str(exc))
                    await self._sleep()
        finally:
            with anyio.CancelScope(shield=True):
                for channel in self.channels.values():
                    await channel.close()
                await self._release_lease()

    async def _release_lease(self) -> None:
        if self._lease_until:  # held (or lately): another process may send at once
            await leases.let_go(
                self.queue,
                LEASE,
                self.holder,
                lambda exc: log.info("notify.lease_not_released", error=str(exc)),
            )

    async def _listen(self) -> None:
        """Turn the queue's "work stored" signal into a wake-up of the loop."""
        while True:
            try:
                await self.queue.wait_for_work(self.poll_interval)
            except QueueUnavailable:
                await anyio.sleep(self.poll_interval)
            self._kick()

    def _kick(self) -> None:
        self._wake.set()

    async def _sleep(self) -> None:
        wait = min(self.poll_interval, max(0.0, self._next_retry - self.clock()))
        with anyio.move_on_after(wait):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _hold_lease(self) -> bool:
        """True while this process is the one that sends (renewed a third of the way in)."""
        now = self.clock()
        if now < self._lease_until - LEASE_SECONDS * 2 / 3:
            return True
        if await self.queue.take_lease(LEASE, self.holder, LEASE_SECONDS):
            self._lease_until = now + LEASE_SECONDS
            return True
        self._lease_until = 0.0
        return False

    async def _read_backlog(self) -> None:
        now = self.clock()
        if now - self._backlog_read < BACKLOG_EVERY:
            return
        self._backlog_read = now
        backlog = await self.queue.outbox_backlog()
        for destination in self.channels:
            self.metrics.notify_backlog.labels(destination.key).set(backlog.get(destination.key, 0))

    # -- one round --------------------------------------------------------------

    async def round(self, group: Any) -> int:
        """Fan out what is new, start what is due; how many sends were started."""
        destinations = list(self.channels)
        while await self.queue.fan_out(destinations):
            pass
        now = self.clock()
        self._next_retry = math.inf
        started = 0
        recorded = self._recorded = {}
        for send in await self.queue.due_sends(now):
            line = (send.destination, send.event.asset_id)
            if line in self._in_flight or recorded.get((send.seq, send.destination), -1) > (
                send.attempts
            ):
                continue  # on its way, or already recorded since that read
            self._in_flight.add(line)
            group.start_soon(self._send, send, line)
            started += 1
        return started

    async def _send(self, send: Send, line: tuple[str, str]) -> None:
        try:
            async with self._limiter:
                await self._attempt(send)
        except QueueUnavailable as exc:  # the outcome was not recorded: sent again later
            log.warning("notify.queue_unavailable", error=str(exc))
        finally:
            # Recorded (or not: then it is retried later) before its line is free.
            self._recorded[(send.seq, send.destination)] = send.attempts + 1
            self._in_flight.discard(line)
            self._kick()  # the next of its line may go now

    async def _attempt(self, send: Send) -> None:
        event = send.event
        found = self.by_key.get(send.destination)
        if found is None:
            await self._give_up(send, "kind", "the destination is no longer configured")
            return
        channel = found[1]
        try:
            await channel.send(event)
        except SendFailed as exc:
            reason = str(exc)
        except Exception as exc:  # a bug in a channel: counted as a failed attempt
            log.exception("notify.crashed", destination=send.destination)
            reason = f"internal error ({type(exc).__name__}); see the service log"
        else:
            # Taken: recorded even while stopping, or it would be sent again.
            with anyio.CancelScope(shield=True):
                await self.queue.settle_send(send, SENT, next_at=self.clock())
            self.metrics.notifications.labels(channel.kind, event.type, "sent").inc()
            log.info(
                "notify.sent",
                destination=send.destination,
                type=event.type,
                event_id=event.event_id,
                asset_id=event.asset_id,
                attempts=send.attempts + 1,
            )
            return
        now = self.clock()
        if now - send.stored_at >= self.give_up_seconds:
            await self._give_up(send, channel.kind, reason)
            return
        delay = backoff_delay(send.attempts + 1, base=1.0, cap=self.retry_max_seconds)
        await self.queue.settle_send(send, QUEUED, next_at=now + delay, error=reason)
        self._next_retry = min(self._next_retry, now + delay)
        self.metrics.notifications.labels(channel.kind, event.type, "failed").inc()
        log.warning(
            "notify.failed",
            destination=send.destination,
            type=event.type,
            event_id=event.event_id,
            asset_id=event.asset_id,
            attempts=send.attempts + 1,
            retry_in=round(delay, 1),
            reason=reason,
        )

    async def _give_up(self, send: Send, kind: str, reason: str) -> None:
        hours = (self.clock() - send.stored_at) / 3600
        why = f"{reason} (given up after {send.attempts + 1} attempts over {hours:.1f} h)"
        await self.queue.settle_send(send, GIVEN_UP, next_at=self.clock(), error=why)
        self.metrics.notifications.labels(kind, send.event.type, "given_up").inc()
        log.error(
            "notify.given_up",
            destination=send.destination,
            type=send.event.type,
            event_id=send.event.event_id,
            asset_id=send.event.asset_id,
            reason=why,
        )


def channels_for(settings: Any, clock: Callable[[], float] = time.time) -> dict[Destination, Any]:
    """The destinations the settings name, each with its channel (none: {})."""
    from service.notify.chat import AppriseChannel
    from service.notify.webhook import WebhookChannel

    timeout = settings.notify_timeout_seconds
    channels: dict[Destination, Any] = {}
    if settings.notify_webhook_url and settings.notify_webhook_secret:
        types = frozenset(settings.notify_webhook_events) or None
        channels[Destination("webhook", types)] = WebhookChannel(
            settings.notify_webhook_url.get_secret_value(),
            settings.notify_webhook_secret.get_secret_value(),
            timeout=timeout,
            clock=clock,
        )
    types = frozenset(settings.notify_events) or None
    for number, url in enumerate(settings.notify_urls, start=1):
        channel = AppriseChannel(url.get_secret_value(), timeout=timeout)
        channels[Destination(f"apprise-{number}-{channel.scheme}", types)] = channel
    return channels


def sender_for(settings: Any, queue: Any, metrics: Metrics, **options: Any) -> Sender | None:
    channels = channels_for(settings)
    if not channels:
        return None
    return Sender(
        queue,
        channels,
        metrics=metrics,
        retry_max_seconds=settings.notify_retry_max_seconds,
        give_up_seconds=settings.notify_give_up_hours * 3600,
        **options,
    )

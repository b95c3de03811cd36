"""Prometheus metrics, one registry per app so tests and processes don't share counters."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.queue.retry_causes import ALL_CAUSES, cause_of

if TYPE_CHECKING:
    from service.queue import Queue

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# /metrics answers anyone reaching the port: what it reads from the queue
# (the depth by lane, and the tasks retrying by cause, a grouped query over
# the waiting tasks) is read at most this often, by one scrape at a time;
# the others in that window show what it read.
RETRYING_READ_SECONDS = 5.0


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        self._retrying_read_at: float | None = None
        self._retrying_lock = anyio.Lock()
        # prometheus_client's labels() takes a lock and builds a key on every call.
        self._delivery_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.deliveries = Counter(
            "caption_bridge_deliveries",
            "Deliveries received, by route and outcome (queued, duplicate, coalesced, ignored, "
            "rejected...)",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "caption_bridge_auth_failures",
            "Deliveries refused as not authenticated, by route and reason",
            ["route", "reason"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "caption_bridge_queue_depth",
            "Tasks queued or running, by lane (click: custom actions, event: webhooks), "
            "read at scrape time (at most every 5 s)",
            ["lane"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "caption_bridge_http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "caption_bridge_deliveries_in_flight",
            "Deliveries being received right now (a drain on shutdown waits for these)",
            registry=self.registry,
        )
        self.tasks = Counter(
            "caption_bridge_tasks",
            "Tasks finished by the worker, by kind and outcome (done, retried, failed)",
            ["kind", "outcome"],
            registry=self.registry,
        )

        self.caption_deliveries = Counter(
            "caption_bridge_caption_deliveries",
            "Caption files from deliver/ folders, by outcome (delivered, refused: the file "
            "failed its checks, failed: anything else, retried)",
            ["outcome"],
            registry=self.registry,
        )
        self.deliver_scans = Counter(
            "caption_bridge_deliver_scans",
            "Looks at the deliver/ folders, by outcome (complete, or failed: see the log)",
            ["outcome"],
            registry=self.registry,
        )
        self.deliver_scan_last = Gauge(
            "caption_bridge_deliver_scan_last_complete_timestamp_seconds",
            "When the deliver/ folders were last looked at completely",
            registry=self.registry,
        )

        self.tasks_retrying = Gauge(
            "caption_bridge_tasks_retrying",
            "Tasks waiting to run again after an error, by cause (as `caption-bridge status` "
            "groups them), read at scrape time",
            ["cause"],
            registry=self.registry,
        )
        self.task_retries = Counter(
            "caption_bridge_task_retries",
            "Task attempts that ended in a retry, by cause (as `caption-bridge status` groups "
            "them)",
            ["cause"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "caption_bridge_notifications",
            "Notification sends, by destination kind (webhook, apprise), event type and "
            "outcome (sent, failed: retried later, given_up)",
            ["kind", "type", "outcome"],
            registry=self.registry,
        )
        self.notify_backlog = Gauge(
            "caption_bridge_notify_backlog",
            "Notifications waiting to be sent, by destination key (webhook, apprise-<n>-<scheme>)",
            ["destination"],
            registry=self.registry,
        )
        for cause in ALL_CAUSES:  # every cause shows, 0 included
            self.tasks_retrying.labels(cause.label).set(0)
            self.task_retries.labels(cause.label)

    def retried(self, error: str | None) -> None:
        """Count one retry by the cause its error names."""
        self.task_retries.labels(cause_of(error).label).inc()

    async def read_queue(self, queue: Queue) -> None:
        """Set `caption_bridge_queue_depth` and `caption_bridge_tasks_retrying`
        from the queue, at most once per RETRYING_READ_SECONDS
        (QueueUnavailable: the last values stay)."""
        async with self._retrying_lock:
            now = self._clock()
            if self._retrying_read_at is not None and (
                now - self._retrying_read_at < RETRYING_READ_SECONDS
            ):
                return
            depth = await queue.backlog_by_lane()
            counts = await queue.retrying_by_cause()
            self._retrying_read_at = now
        for lane, waiting in depth.items():
            self.queue_depth.labels(lane).set(waiting)
        for cause in ALL_CAUSES:
            self.tasks_retrying.labels(cause.label).set(counts.get(cause.label, 0))

    def delivered(self, route: str, outcome: str, seconds: float) -> None:
        """Count one delivery and its latency (the labelled children, looked up once)."""
        children = self._delivery_children.get((route, outcome))
        if children is None:
            children = self._delivery_children[(route, outcome)] = (
                self.deliveries.labels(route, outcome),
                self.request_latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

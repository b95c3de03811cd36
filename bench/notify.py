"""`notify`: notifications catching up after an endpoint's outage, with the real backoff cap.

The sender (service/notify/sender.py, as the worker runs it: NOTIFY_RETRY_MAX_SECONDS
at its default of 60 s) sends a real SQLite queue's outbox to a real HTTP
sink on loopback (tests/support/notify_sink.py: Standard Webhooks signatures checked
by the `standardwebhooks` package) and to Apprise's `json://` target on the
same sink.

1. Baseline: the sink up; events stored (as a task's completion or the
   due-date checker stores them); time until the sink has them all.
2. Outage: the sink down (connections refused); the same number of events
   stored; the sink back after `outage` seconds; time from "back" until the
   sink has them all, whether each arrived once (by `webhook-id`) and in
   order per asset. Goal: all within 60 s of the sink coming back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import anyio

from service import logging as service_logging
from service.metrics import Metrics
from service.notify import sender as notify
from service.queue import PUBLISHED, REFRESHED, Event, event_id
from service.queue.sqlite import SQLiteQueue
from service.settings import Settings
from tests.support.notify_sink import SECRET, Sink


def _events(tag: str, assets: int, per_asset: int) -> list[Event]:
    return [
        Event(
            event_id(tag, str(a), str(n)),
            PUBLISHED if n == 0 else REFRESHED,
            f"asset-{a}",
            {"title": f"{tag} {a}.{n}", "folder": f"Clip {a} [asset-{a}]", "languages": ["en"]},
            time.time(),
        )
        for n in range(per_asset)
        for a in range(assets)
    ]


def _settings(scratch: Path, sink: Sink) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bearer_tokens="bench",  # type: ignore[arg-type]
        queue_url=f"sqlite:///{scratch}/queue.db",
        notify_webhook_url=sink.url + "/hook",  # type: ignore[arg-type]
        notify_webhook_secret=SECRET,  # type: ignore[arg-type]
        notify_urls=f"json://127.0.0.1:{sink.port}/apprise",  # type: ignore[arg-type]
    )


def _arrived(sink: Sink, count: int, within: float) -> float | None:
    """Seconds until both destinations have `count` events, or None."""
    start = time.monotonic()
    try:
        sink.wait_until(lambda s: len(s.hooks()) >= count and len(s.apprise()) >= count, within)
    except AssertionError:
        return None
    return time.monotonic() - start


def notify_bench(
    scratch: Path, *, outage: float = 30.0, assets: int = 5, per_asset: int = 4
) -> list[str]:
    service_logging.configure("json", level=logging.ERROR)  # the retries' warnings are expected
    sink = Sink().start()
    settings = _settings(scratch, sink)
    count = assets * per_asset
    results: dict[str, float | None] = {}
    order_ok = once_ok = signed_ok = False

    async def run() -> None:
        nonlocal order_ok, once_ok, signed_ok
        queue = SQLiteQueue(settings.sqlite_path)
        await queue.open()
        sender = notify.sender_for(settings, queue, Metrics())
        assert sender is not None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(sender.run)
                await queue.add_events(_events("base", assets, per_asset))
                results["baseline"] = await anyio.to_thread.run_sync(_arrived, sink, count, 30.0)
                sink.received.clear()
                sink.stop()
                stored_at = time.monotonic()
                await queue.add_events(_events("outage", assets, per_asset))
                await anyio.sleep(outage)
                sink.start()  # back, on the same port
                results["down_for"] = time.monotonic() - stored_at
                results["after"] = await anyio.to_thread.run_sync(_arrived, sink, count, 120.0)
                group.cancel_scope.cancel()
        finally:
            await queue.close()
            sink.stop()
        hooks = sink.hooks()
        once_ok = len({h.id for h in hooks}) == len(hooks) == count
        signed_ok = all(h.valid for h in hooks)
        lines: dict[str, list[str]] = {}
        for h in hooks:
            lines.setdefault(h.json["data"]["asset_id"], []).append(h.json["data"]["title"])
        order_ok = all(titles == sorted(titles) for titles in lines.values())

    anyio.run(run)

    def seconds(value: float | None) -> str:
        return "not all" if value is None else f"{value:.1f} s"

    after = results.get("after")
    return [
        f"notify: {count} events ({assets} assets x {per_asset}), to the webhook and to "
        f"Apprise json://, NOTIFY_RETRY_MAX_SECONDS={settings.notify_retry_max_seconds:g}",
        f"  baseline, sink up: all delivered in {seconds(results.get('baseline'))}",
        f"  sink down {results.get('down_for', 0):.1f} s: all delivered "
        f"{seconds(after)} after it came back (goal: within 60 s)",
        f"  each once by webhook-id: {once_ok}; in order per asset: {order_ok}; "
        f"signatures valid (standardwebhooks): {signed_ok}",
    ]

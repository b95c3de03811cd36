"""Tasks retrying, by cause: one definition read by `status`, `/metrics` and the worker.

The grouping runs in three places (the queue's grouped query behind
`caption_bridge_tasks_retrying`, `caption-bridge status`'s read-only
reader, and the worker's `caption_bridge_task_retries_total` in Python);
these tests hold them to the same answer on both backends, and show the
gauge naming a wrong ICONIK_URL over a real `serve` process.
"""

from __future__ import annotations

import collections
import re
import socket

import anyio
import httpx2
import pytest

from service.queue.postgres import PostgresQueue
from service.queue.retry_causes import ALL_CAUSES, RETRY_CAUSES, cause_of
from service.queue.sqlite import SQLiteQueue
from service.status.reader import open_reader
from service.status.report import queue_report
from tests.support.clock import FakeClock
from tests.support.polling import until
from tests.support.queue import delivery
from tests.support.servers import service_process
from tests.support.service import BEARER, CURRENT_SECRET, ICONIK_TOKEN, bearer, custom_action_body
from tests.support.stack import APP_ID

# What the service writes as a task's last error (service.iconik.transport,
# service.work.runner, service.work.gather).
ERRORS = {
    "GET /API/assets/v1/assets/x/: HTTP 503 after 5 attempts; check Iconik's status and "
    "ICONIK_URL": "iconik_unreachable",
    "GET /API/assets/v1/assets/x/: Iconik answered 401; check ICONIK_APP_ID and "
    "ICONIK_AUTH_TOKEN and that the token's user may read assets": "credentials_refused",
    "the bundle storage: [Errno 28] No space left on device": "storage",
    "download of proxy.mp4: signed storage URL expired or refused (HTTP 403)": "media_download",
    "download of proxy.mp4: https://bucket.example/x kept failing (timeout) after 5 attempts; "
    "the storage service may be down, will retry": "media_download",
    "asset x: TRANSCODING; waiting for Iconik to finish the proxy (ALLOW_ORIGINAL_MEDIA)": (
        "proxy_wait"
    ),
    "worker stopped": "worker_stopped",
    "THE BUNDLE STORAGE: SHOUTED": "storage",  # case does not matter, on either backend
    "something nobody foresaw: 100% odd_ly": "other",
}


def test_each_cause_has_one_label_and_one_name():
    labels = [c.label for c in ALL_CAUSES]
    names = [c.name for c in ALL_CAUSES]
    assert len(set(labels)) == len(labels) and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z_]+", label) for label in labels)  # Prometheus-friendly
    assert {cause_of(error).label for error in ERRORS} == {c.label for c in ALL_CAUSES}


def test_like_patterns_keep_their_meaning_in_python():
    assert cause_of("xcheck Iconik's status and ICONIK_URLx").label == "iconik_unreachable"
    # `_` is any one character in LIKE, `%` any text: nothing else is special.
    assert cause_of("the bundle storage: ").label == "storage"
    assert cause_of("the bundle storage").label == "other"  # no colon
    assert cause_of("download of x").label == "media_download"
    assert cause_of("a download of x").label == "other"  # anchored at the start
    assert cause_of(None).label == "other"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/q.db", lambda **kw: SQLiteQueue(tmp_path / "q.db", **kw)
    url = request.getfixturevalue("pg_url")
    return url, lambda **kw: PostgresQueue(url, **kw)


def test_the_queue_the_status_reader_and_the_worker_group_alike(backend):
    queue_url, make_queue = backend
    clock = FakeClock()
    expected = collections.Counter(ERRORS.values())
    expected["worker_stopped"] += 1  # the task below whose worker stopped renewing its lease

    async def fill() -> dict[str, int]:
        queue = make_queue(clock=clock, lease_seconds=60, max_backlog=100)
        await queue.open()
        try:
            for n, error in enumerate(ERRORS):
                await queue.enqueue(delivery(f"k{n}"), f"req-{n}")
                task = await queue.claim("w1")
                assert task is not None
                assert await queue.retry(task, error, delay=600)
            await queue.enqueue(delivery("lost"), "req-lost")
            assert await queue.claim("w1") is not None
            await queue.enqueue(delivery("done"), "req-done")  # done: not retrying
            task = await queue.claim("w1")
            assert task is not None
            await queue.complete(task)
            clock.now += 61  # the lease lapses; nobody renews it
            return await queue.retrying_by_cause()
        finally:
            await queue.close()

    counted = anyio.run(fill)
    assert counted == dict(expected)
    with open_reader(queue_url, clock=clock) as reader:
        report = queue_report(reader, limit=5, offset=0)
    names = {c.name: c.label for c in ALL_CAUSES}
    assert {names[g["cause"]]: g["tasks"] for g in report["retrying"]} == dict(expected)
    assert all(names[g["cause"]] == g["label"] for g in report["retrying"])  # --json says both


@pytest.mark.slow
def test_a_wrong_iconik_url_shows_in_metrics_as_iconik_unreachable(tmp_path):
    """A real `serve` whose ICONIK_URL answers nothing: a click's task
    retries, and /metrics says why without reading the log."""
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {
        "WEBHOOK_SECRETS": CURRENT_SECRET,
        "BEARER_TOKENS": BEARER,
        "PORT": "0",
        "QUEUE_URL": f"sqlite:///{tmp_path}/queue.db",
        "STORAGE_URL": str(tmp_path / "bundles"),
        "ICONIK_URL": nowhere,
        "ICONIK_APP_ID": APP_ID,
        "ICONIK_AUTH_TOKEN": ICONIK_TOKEN,
        "ICONIK_JOBS": "false",  # one Iconik call to fail, not a job's too
        "LOG_FORMAT": "json",
    }
    with service_process("serve", env=env, cwd=tmp_path) as serve:
        url = f"http://127.0.0.1:{serve.wait_for('service.listening')['port']}"
        body = custom_action_body()
        answer = httpx2.post(f"{url}/iconik/custom-action", content=body, headers=bearer())
        assert answer.status_code == 202, answer.text
        retry = serve.wait_for("task.retry", timeout=60)
        assert "ICONIK_URL" in retry["reason"]
        metrics = ""

        def retrying() -> bool:
            nonlocal metrics
            metrics = httpx2.get(f"{url}/metrics").text
            return 'caption_bridge_tasks_retrying{cause="iconik_unreachable"} 1.0' in metrics

        # the gauge is read at most every 5 s
        until(retrying, within=30, every=0.2, why=lambda: metrics)
    assert 'caption_bridge_task_retries_total{cause="iconik_unreachable"} 1.0' in metrics
    for cause in RETRY_CAUSES:
        if cause.label != "iconik_unreachable":
            assert f'caption_bridge_tasks_retrying{{cause="{cause.label}"}} 0.0' in metrics


def test_metrics_read_the_queue_at_most_every_few_seconds(tmp_path):
    """/metrics is open to anyone: scrapes in a burst cost one grouped query."""
    from service.metrics import RETRYING_READ_SECONDS, Metrics

    clock = FakeClock()
    metrics = Metrics(clock=clock)

    def gauge() -> tuple[float | None, float | None]:
        return metrics.registry.get_sample_value(
            "caption_bridge_tasks_retrying", {"cause": "storage"}
        ), metrics.registry.get_sample_value("caption_bridge_queue_depth", {"lane": "click"})

    queue_clock = FakeClock()

    async def scrape_while_retrying() -> list[tuple[float | None, float | None]]:
        queue = SQLiteQueue(tmp_path / "q.db", clock=queue_clock)
        await queue.open()
        seen = []
        try:
            await metrics.read_queue(queue)
            seen.append(gauge())
            await queue.enqueue(delivery("k1"), "req-1")
            task = await queue.claim("w1")
            assert task is not None
            await queue.retry(task, "the bundle storage: disk full", delay=600)
            clock.now += RETRYING_READ_SECONDS / 2
            await metrics.read_queue(queue)  # within the window: not read again
            seen.append(gauge())
            clock.now += RETRYING_READ_SECONDS
            await metrics.read_queue(queue)
            seen.append(gauge())
        finally:
            await queue.close()
        return seen

    # (retrying, depth): both stale within the window, both read after it.
    assert anyio.run(scrape_while_retrying) == [(0, 0), (0, 0), (1, 1)]

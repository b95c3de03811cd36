"""bench scan: what one deliver-scan interval costs as bundles accumulate.

For N bundles on S3 (moto's server over HTTP, every request counted) and in
a local folder, with 1 and 2 replicas:

- requests per interval: the walk of the new scan (Storage.outtrays, under
  the deliver-scan lease: one replica scans) beside what the scan did before
  (a listing of each bundle's deliver/ in every replica; the baseline,
  measured on 200 bundles and scaled to N);
- with events (S3 notifications to SQS): the time from a caption file
  written to its delivery queued, beside the time its event took to arrive;
- a file written while its event was lost: queued by the reconcile.

Bundles are put straight into moto's store (10,000 bundles over HTTP would
take minutes to make); every request the scan makes goes over HTTP.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from service.deliver.changes import SqsEvents
from service.deliver.loop import SETTLE_SECONDS as SETTLE
from service.deliver.loop import ScanLoop
from service.deliver.scan import DeliverScan
from service.queue.sqlite import SQLiteQueue
from service.storage import open_storage
from tests.support.s3_events import events_to_sqs

EN_VTT = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHello.\n"
BASELINE_SAMPLE = 200  # bundles whose listing the baseline measures
BUNDLE_FILES = ("captions/en.vtt", "captions/en.srt", "media/proxy.mp4", "index.html")


def _table(title: str, headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return [f"{title}:", "  " + line(headers), *("  " + line(r) for r in rows)]


def scan_bench(workdir: Path, sizes: list[int]) -> list[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    try:
        rows: list[list[str]] = []
        for n in sizes:
            (workdir / f"n{n}").mkdir(parents=True, exist_ok=True)
            anyio.run(_one_size, workdir / f"n{n}", n, rows)
        (workdir / "events").mkdir(parents=True, exist_ok=True)
        out = _table(
            "scan: storage requests per DELIVER_SCAN_SECONDS interval (no events set up)",
            ["storage", "bundles", "replicas", "before (baseline)", "now", "goal <= N/100"],
            rows,
        )
        return out + anyio.run(_events, workdir / "events", max(sizes))
    finally:
        server.stop()


def _make_bundles(workdir: Path, bucket: str, n: int) -> list[tuple[str, str, str]]:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    boto3.client("s3").create_bucket(Bucket=bucket)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    records = []
    for i in range(n):
        folder = f"Title {i:05d} [a{i:05d}]"
        manifest = b'{"asset": {"id": "a%05d"}, "deliveries": []}' % i
        for path, data in (
            *((p, b"x") for p in BUNDLE_FILES),
            ("deliver/README.txt", b"readme"),
            ("project.json", manifest),
        ):
            backend.put_object(bucket, f"share/{folder}/{path}", data)
            local = workdir / "share" / folder / path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        records.append((f"a{i:05d}", folder, "ready"))
    return records


def _counted(storage: Any) -> Callable[[], int]:
    calls: list[str] = []
    client = getattr(storage, "client", None)
    if client is not None:
        client.meta.events.register("before-call.s3", lambda **kw: calls.append("s3"))
    return lambda: len(calls)


async def _one_size(workdir: Path, n: int, rows: list[list[str]]) -> None:
    bucket = f"bench-scan-{n}-{int(time.time() * 1000) % 10**9}"
    records = _make_bundles(workdir, bucket, n)
    for kind, url in (("s3", f"s3://{bucket}/share"), ("local", str(workdir / "share"))):
        for replicas in (1, 2):
            queue_path = workdir / f"{kind}-{replicas}.db"
            queues = [SQLiteQueue(queue_path) for _ in range(replicas)]
            for queue in queues:
                await queue.open()
            await queues[0].fill_registry(records)
            storages = [open_storage(url) for _ in range(replicas)]
            counts = [_counted(s) for s in storages]
            # Before: every replica listed every bundle's deliver/, a request
            # each. Measured on a sample (moto filters every key per listing:
            # 20,000 listings of 70,000 keys take half an hour), then scaled.
            sample = records[:: max(1, len(records) // BASELINE_SAMPLE)]
            started = [c() for c in counts]
            for storage in storages:
                for _, folder, _ in sample:
                    await storage.list_files(folder, "deliver")
            measured = sum(c() - s for c, s in zip(counts, started, strict=True))
            before = round(measured * len(records) / len(sample))
            # Now: the replica holding the lease walks the storage once.
            pairs = zip(queues, storages, strict=True)
            loops = [ScanLoop(DeliverScan(q, s), q, every=60) for q, s in pairs]
            started = [c() for c in counts]
            for loop in loops:
                if await loop._hold():
                    await loop.look_once()
            now = sum(c() - s for c, s in zip(counts, started, strict=True))
            for queue in queues:
                await queue.close()
            if kind == "local":
                before_text, now_text = f"{n * replicas} listings", "1 walk, 0 requests"
                goal = "-"
            else:
                before_text, now_text = str(before), str(now)
                goal = "met" if now <= max(1, n / 100) else "MISSED"
            rows.append([kind, str(n), str(replicas), before_text, now_text, goal])


async def _events(workdir: Path, n: int) -> list[str]:
    """With S3 notifications to SQS: a file written, its event, its delivery queued."""
    import boto3

    bucket = f"bench-events-{int(time.time() * 1000) % 10**9}"
    records = _make_bundles(workdir, bucket, n)
    s3 = boto3.client("s3")
    queue_url = events_to_sqs(bucket)
    queue = SQLiteQueue(workdir / "events.db")
    await queue.open()
    await queue.fill_registry(records)
    storage = open_storage(f"s3://{bucket}/share")
    requests = _counted(storage)
    events = SqsEvents(queue_url, "share", wait_seconds=1)
    arrived: dict[str, float] = {}

    class Timed:
        async def batches(self):  # the real source, with each folder's arrival timed
            async for batch in events.batches():
                for folder in batch:
                    arrived.setdefault(folder, time.monotonic())
                yield batch

    loop = ScanLoop(DeliverScan(queue, storage), queue, every=60, events=Timed())
    rows = []
    async with anyio.create_task_group() as group:
        group.start_soon(loop.run)
        while loop._next_everything == 0:  # noqa: ASYNC110 (the first walk, at start, done)
            await anyio.sleep(0.05)
        for i in (n // 3, (2 * n) // 3):
            folder = records[i][1]
            written = time.monotonic()
            s3.put_object(Bucket=bucket, Key=f"share/{folder}/deliver/en.vtt", Body=EN_VTT)
            before = requests()
            while await queue.backlog() < len(rows) + 1:  # noqa: ASYNC110 (the queue's state)
                await anyio.sleep(0.05)
            queued = time.monotonic() - written
            event = arrived.get(folder, written) - written
            rows.append(
                [
                    f"file in bundle {i}",
                    f"{event:.2f} s",
                    f"{queued:.2f} s",
                    str(requests() - before),
                    "met" if queued <= 2 * (event + 2.0) else "MISSED",
                ]
            )
        # An event lost (the object written without one): the reconcile finds it.
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        folder = records[n // 2][1]
        key = f"share/{folder}/deliver/fr.vtt"
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].put_object(
            bucket, key, EN_VTT, disable_notification=True
        )
        await anyio.sleep(2 * SETTLE)  # no event comes: nothing is queued meanwhile
        lost = await queue.backlog() == len(rows)
        written, before = time.monotonic(), requests()
        loop._next_everything = loop.clock()  # the reconcile's time has come
        loop._woken.set()
        while await queue.backlog() < len(rows) + 1:  # noqa: ASYNC110 (the queue's state)
            await anyio.sleep(0.05)
        rows.append(
            [
                "file whose event was lost",
                "-",
                f"{time.monotonic() - written:.2f} s after the reconcile began",
                str(requests() - before),
                "delivered" if lost else "MISSED (queued without the reconcile?)",
            ]
        )
        group.cancel_scope.cancel()
    await queue.close()
    return _table(
        f"scan with S3 events, {n} bundles (event latency = the event path's, baseline)",
        ["case", "event arrived", "queued after", "S3 requests", "goal <= 2x(event+settle)"],
        rows,
    )

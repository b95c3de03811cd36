"""`retention`: status reads that stay flat as the history grows, and a history pruned live.

1. Flat reads. A queue filled in bulk (tests/support/queue_fill.py: finished clicks,
   a failed build in ten, a caption delivery in five, over 1000 assets, so
   each asset's history grows with the queue) with the smaller and then the
   larger number of requests, on SQLite and on PostgreSQL. A real
   `serve --no-worker` answers `GET /requests/{id}` for clicks whose asset
   has been delivered to (the request, its tasks, its assets' deliveries);
   what `caption-bridge status` reads (backlog, latest failures, their
   count) is timed against the same queue in this process. The baseline is
   the smaller queue; goal: the larger one within 2x (flat).
2. Pruned live. A SQLite queue holding `old` finished requests from 200 to
   100 days ago and `recent` ones within the window runs `serve` (worker on,
   RETENTION_DAYS=90) under a load of clicks: how long until only the
   window is left, the database's size before and after, and the clicks'
   latency while it prunes against the same service once it is done.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx2

from bench.ack import row, service_env
from bench.bulk import service_env as worker_env
from bench.bulk import sim_args
from bench.procs import listening, run_load
from service import logging as service_logging
from service.queue.postgres import PostgresQueue
from service.queue.sqlite import SQLiteQueue
from tests.support.postgres import remove_cluster, start_cluster
from tests.support.queue_fill import History, fill_postgres, fill_sqlite
from tests.support.service import bearer

DAY = 86_400.0
SAMPLES = 100  # GET /requests/{id} calls per size


def _open(queue_url: str) -> SQLiteQueue | PostgresQueue:
    if queue_url.startswith("sqlite:///"):
        return SQLiteQueue(queue_url.removeprefix("sqlite:///"))
    return PostgresQueue(queue_url)


def _create(queue_url: str) -> None:
    async def create() -> None:
        queue = _open(queue_url)
        await queue.open()
        await queue.close()

    asyncio.run(create())


def _status_ms(queue_url: str, repeats: int = 30) -> float:
    """Median ms of what `caption-bridge status` reads."""

    async def measure() -> float:
        queue = _open(queue_url)
        await queue.open()
        try:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                await queue.backlog()
                await queue.recent_failures()
                await queue.failure_count()
                times.append(time.perf_counter() - started)
            return statistics.median(times) * 1000
        finally:
            await queue.close()

    return asyncio.run(measure())


def _get_ms(url: str, n: int) -> tuple[float, float]:
    """Median and p99 ms of GET /requests/{id}, clicks whose asset was delivered to."""
    rng = random.Random(7)
    # Click i's asset is a(i % 1000); the deliveries go to the assets in
    # turn, so with n >= 5000 every asset has some (queue_fill.History).
    ids = [f"hr{i}" for i in rng.sample(range(n), min(SAMPLES * 2, n)) if i % 5][:SAMPLES]
    times = []
    with httpx2.Client(base_url=url, headers=bearer()) as client:
        client.get(f"/requests/{ids[0]}").raise_for_status()  # warm
        for request_id in ids:
            started = time.perf_counter()
            client.get(f"/requests/{request_id}").raise_for_status()
            times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99)] * 1000


def _reads(workdir: Path, name: str, queue_url: str, n: int) -> dict[str, float]:
    _create(queue_url)
    history = History(n=n, start=time.time() - 30 * DAY, spacing=20 * DAY / n)
    if queue_url.startswith("sqlite:///"):
        fill_sqlite(queue_url.removeprefix("sqlite:///"), history)
    else:
        fill_postgres(queue_url, history)
    env = service_env(workdir, QUEUE_URL=queue_url)
    with listening(["-m", "service", "serve", "--no-worker"], env, workdir, name) as service:
        median, p99 = _get_ms(service.url, n)
    return {"get": median, "get_p99": p99, "status": _status_ms(queue_url)}


def flat_reads(workdir: Path, sizes: tuple[int, int]) -> list[str]:
    small, large = sizes
    lines = [
        f"retention, reads: GET /requests/{{id}} ({SAMPLES} clicks whose asset was delivered "
        f"to) and `status`'s reads, {small:,} vs {large:,} finished requests"
    ]
    cluster = start_cluster()
    try:
        worst = 0.0
        for backend in ("SQLite", "PostgreSQL"):
            figures = {}
            for n in sizes:
                if backend == "SQLite":
                    url = f"sqlite:///{workdir}/reads-{n}.db"
                else:
                    url = cluster.new_database()
                figures[n] = _reads(workdir, f"{backend}-{n}", url, n)
            for n in sizes:
                f = figures[n]
                label = f"{backend} {n:>9,}" + (" (baseline)" if n == small else "")
                lines.append(
                    f"  {label:<32} GET p50 {f['get']:6.2f} ms  p99 {f['get_p99']:6.2f} ms"
                    f"   status {f['status']:6.2f} ms"
                )
            get_ratio = figures[large]["get"] / figures[small]["get"]
            status_ratio = figures[large]["status"] / figures[small]["status"]
            worst = max(worst, get_ratio, status_ratio)
            lines.append(
                f"  {backend + ' ratio':<32} GET {get_ratio:5.2f}x   status {status_ratio:5.2f}x"
            )
    finally:
        remove_cluster(cluster)
    lines.append(f"  goal <= 2x from {small:,} to {large:,} ({'met' if worst <= 2 else 'NOT met'})")
    return lines


def _queue_size(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        pages, page_size, free = (
            db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "page_size", "freelist_count")
        )
        count = "SELECT count(*) FROM requests WHERE request_id LIKE ?"
        old = db.execute(count, ("or%",)).fetchone()[0]
        recent = db.execute(count, ("nr%",)).fetchone()[0]
        total = db.execute("SELECT count(*) FROM requests").fetchone()[0]
    finally:
        db.close()
    return {
        "bytes": pages * page_size,
        "free": free * page_size,
        "old": old,
        "recent": recent,
        "total": total,
    }


def pruned_live(workdir: Path, *, old: int, recent: int, seconds: float) -> list[str]:
    path = workdir / "queue.db"
    queue_url = f"sqlite:///{path}"
    _create(queue_url)
    now = time.time()
    past = History(n=old, start=now - 200 * DAY, spacing=100 * DAY / old, prefix="o")
    fill_sqlite(str(path), past)
    window = History(n=recent, start=now - 60 * DAY, spacing=59 * DAY / recent, prefix="n")
    fill_sqlite(str(path), window)
    before = _queue_size(path)
    with listening(sim_args(workdir, 1), {}, workdir, "sim") as sim:
        env = {
            **worker_env(workdir, sim.url),
            "QUEUE_MAX_BACKLOG": "10000000",
            "ICONIK_JOBS": "false",
            "DELIVER_SCAN_SECONDS": "0",
            "RETENTION_DAYS": "90",
        }
        with listening(["-m", "service", "serve"], env, workdir, "service") as service:
            started = time.monotonic()
            during: dict[str, Any] = {}

            def load() -> None:
                during.update(
                    run_load(service.port, connections=8, seconds=seconds, no_assets=True)
                )

            clicking = threading.Thread(target=load)
            clicking.start()
            pruned_after = None
            while pruned_after is None and time.monotonic() - started < 600:
                if _queue_size(path)["old"] == 0:
                    pruned_after = time.monotonic() - started
                else:
                    time.sleep(0.2)
            clicking.join()
            overlapped = pruned_after is not None and pruned_after >= seconds
            after = run_load(service.port, connections=8, seconds=seconds, no_assets=True)
            done = _queue_size(path)
    shrunk = done["bytes"] / before["bytes"]
    met = pruned_after is not None and done["recent"] == recent and shrunk < 0.5
    return [
        f"retention, pruned live: {old:,} finished requests 100-200 days old and {recent:,} "
        f"within RETENTION_DAYS=90, `serve` under 8 connections of clicks",
        f"  pruned to the window in {pruned_after or float('nan'):.1f} s"
        f" ({old / (pruned_after or float('nan')):,.0f} requests/s); requests"
        f" {before['total']:,} -> {done['total']:,} (the window's {done['recent']:,}"
        f" of {recent:,} kept, and the clicks taken meanwhile)",
        f"  database {before['bytes'] / 2**20:.1f} MiB -> {done['bytes'] / 2**20:.1f} MiB"
        f" ({shrunk:.2f}x; {done['free'] / 2**20:.1f} MiB free inside, reused)",
        row("clicks once pruned (baseline)", after),
        row("clicks while pruning", during)
        + f"   p99 {during['p99_ms'] / after['p99_ms']:.2f}x"
        + ("" if overlapped else "   (pruning ended within the load)"),
        "  goal: only the window left, the file under half its size"
        f" ({'met' if met else 'NOT met'})",
    ]


def retention(
    workdir: Path,
    *,
    sizes: tuple[int, int] = (1_000, 100_000),
    old: int = 100_000,
    recent: int = 1_000,
    seconds: float = 5.0,
) -> list[str]:
    # The queue's own log lines (migrations) from this process: not the table.
    service_logging.configure("json", level=logging.WARNING)
    reads = workdir / "reads"
    reads.mkdir()
    return [
        *flat_reads(reads, sizes),
        *pruned_live(workdir, old=old, recent=recent, seconds=seconds),
    ]

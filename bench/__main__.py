"""Benchmarks: `python -m bench [ack|ack-under-load|bulk|copy ...]` (or `make bench`).

Each prints a table with its baseline, measured in the same run on the same
machine (it is shared and noisy: only ratios travel), and the goal. Nothing
here is asserted; tests/system/test_bench.py only checks that each entry point
runs with tiny parameters.

- ack: durable 202s vs a bare Starlette app on the same server stack
- ack-under-load: ack latency while large proxies are copied vs idle
- bulk: a BULK click against an Iconik stand-in enforcing Iconik's limits
- copy: a proxy into a bundle vs curl + sync (`--sizes 256M,1G`)
- ack-pg: durable 202s on the PostgreSQL queue beside SQLite and the floor
- wakeup: a click reaching a worker on another replica vs one in-process
- storm: a click's time to bundle during a webhook storm vs idle
- track-memory: the worker's peak RSS bundling a 300 MiB caption track (`--track-mib`)
- check-memory: a 20 MiB caption file delivered: peak RSS over idle, CPU of the check
- captions: a 20 MiB caption file checked and converted, beside webvtt-py parsing it alone
- retention: GET /requests/{id} and status reads at 1k vs 100k requests (`--history`),
  and 100k requests past RETENTION_DAYS pruned while `serve` takes clicks (`--old`)
- edge: signed clicks from fresh connections while hostile clients press on the port vs calm
- scan: deliver-scan storage requests per interval at 100/1,000/10,000 bundles (`--bundles`),
  S3 and local, 1 and 2 replicas, vs listing each bundle; S3 events' latency to a queued delivery
- edge-cost: CPU per request of uvicorn's httptools protocol alone, with the guard vs without
- notify: notifications caught up after a 30 s endpoint outage (`--outage`), real 60 s backoff cap
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.ack import ack, ack_under_load
from bench.bulk import bulk
from bench.captions import captions_bench
from bench.check_memory import MIB, check_memory
from bench.copy import GIB, copy
from bench.edge import edge, guard_cost
from bench.notify import notify_bench
from bench.replicas import ack_pg, wakeup
from bench.retention import retention
from bench.scan import scan_bench
from bench.storm import storm
from bench.track_memory import track_memory


def _size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": GIB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names",
        nargs="*",
        default=[
            "ack",
            "ack-under-load",
            "bulk",
            "copy",
            "ack-pg",
            "wakeup",
            "storm",
            "track-memory",
            "edge",
            "edge-cost",
            "scan",
        ],
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="load per ack measurement")
    parser.add_argument("--assets", type=int, default=1000, help="assets in the bulk click")
    parser.add_argument(
        "--concurrency", default="4,16", help="bulk: WORKER_CONCURRENCY values, one click each"
    )
    parser.add_argument("--sizes", default="1G,4G", help="copy sizes, e.g. 256M,1G")
    parser.add_argument("--repeats", type=int, default=3, help="copy runs per side (medians)")
    parser.add_argument("--proxy-mib", type=int, default=512, help="ack-under-load proxy size")
    parser.add_argument("--track-mib", type=int, default=300, help="track-memory track size")
    parser.add_argument("--caption-mib", type=float, default=20, help="caption file size")
    parser.add_argument(
        "--history", default="1000,100000", help="retention: the two queue sizes compared"
    )
    parser.add_argument(
        "--old", type=int, default=100_000, help="retention: requests past the window"
    )
    parser.add_argument("--bundles", default="100,1000,10000", help="scan: bundle counts")
    parser.add_argument("--edge-seconds", type=float, default=30, help="edge: time under attack")
    parser.add_argument("--outage", type=float, default=30, help="notify: seconds the sink is down")
    args = parser.parse_args(argv)
    runs: dict[str, Callable[[Path], list[str]]] = {
        "ack": lambda d: ack(d, seconds=args.seconds),
        "ack-under-load": lambda d: ack_under_load(
            d, proxy_mib=args.proxy_mib, seconds=min(args.seconds, 4.0)
        ),
        "bulk": lambda d: bulk(
            d, assets=args.assets, concurrencies=tuple(int(c) for c in args.concurrency.split(","))
        ),
        "copy": lambda d: copy(
            d, sizes=tuple(_size(s) for s in args.sizes.split(",")), repeats=args.repeats
        ),
        "ack-pg": lambda d: ack_pg(d, seconds=args.seconds),
        "wakeup": lambda d: wakeup(d),
        "storm": lambda d: storm(d),
        "track-memory": lambda d: track_memory(d, track_mib=args.track_mib),
        "check-memory": lambda d: check_memory(d, size=int(args.caption_mib * MIB)),
        "captions": lambda d: captions_bench(d, size=int(args.caption_mib * MIB)),
        "retention": lambda d: retention(
            d,
            sizes=tuple(int(n) for n in args.history.split(",")),  # type: ignore[arg-type]
            old=args.old,
            recent=min(1_000, args.old),
            seconds=args.seconds,
        ),
        "edge": lambda d: edge(d, seconds=args.edge_seconds),
        "edge-cost": lambda d: guard_cost(),
        "scan": lambda d: scan_bench(d, sizes=[int(n) for n in args.bundles.split(",")]),
        "notify": lambda d: notify_bench(d, outage=args.outage),
    }
    unknown = [n for n in args.names if n not in runs]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(runs)}")
    print(
        f"machine: {platform.node()} {platform.machine()}, {_cores()} cores, Python "
        f"{platform.python_version()}"
    )
    for name in args.names:
        # Next to the worktree, on a real disk: /tmp may be tmpfs, where fsync is free.
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", dir=Path.cwd()) as scratch:
            print("\n".join(runs[name](Path(scratch))), flush=True)
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())

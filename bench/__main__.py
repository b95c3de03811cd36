"""Benchmarks: `python -m bench` (or `make bench`). Prints figures; asserts nothing.

1. Intake latency: signed custom actions answered 202 (verify + parse +
   durable SQLite commit) against `GET /healthz` on the same server, in the
   same run, as a ratio. The contract promises a 202 "within milliseconds".
2. Streaming memory: the peak of Python allocations while the worker builds
   a bundle around a large generated proxy, as a ratio of the proxy's size.
   Downloads must stream; a ratio near 1 would mean the file was held.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import anyio
import httpx2

from service.app import create_app
from service.simulator import Simulator
from tests.conftest import custom_action_body, make_settings, signed
from tests.servers import running
from tests.stack import APP_ID, FakeClock, drain

ROUNDS = 400
PROXY_MB = 64


def _timed(client: httpx2.Client, request: httpx2.Request) -> float:
    started = time.perf_counter()
    response = client.send(request)
    elapsed = time.perf_counter() - started
    assert response.status_code in (200, 202), response.text
    return elapsed


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def intake(tmp: Path) -> None:
    settings = make_settings(tmp, queue_max_backlog=ROUNDS * 2)
    with running(create_app(settings)) as url, httpx2.Client(base_url=url) as client:
        for _ in range(20):  # warm up connections and SQLite
            client.get("/healthz")
        baseline = [_timed(client, client.build_request("GET", "/healthz")) for _ in range(ROUNDS)]
        deliveries = []
        for i in range(ROUNDS):
            body = custom_action_body(asset_ids=[f"asset-{i}"])
            request = client.build_request(
                "POST", "/iconik/custom-action", content=body, headers=signed(body)
            )
            deliveries.append(_timed(client, request))
    (b50, b99), (d50, d99) = _percentiles(baseline), _percentiles(deliveries)
    print(f"intake: {ROUNDS} signed custom actions, each committed to SQLite before the 202")
    print(f"  GET /healthz           p50 {b50 * 1000:7.2f} ms   p99 {b99 * 1000:7.2f} ms")
    print(f"  POST custom-action     p50 {d50 * 1000:7.2f} ms   p99 {d99 * 1000:7.2f} ms")
    print(f"  ratio to baseline      p50 {d50 / b50:7.1f} x    p99 {d99 / b99:7.1f} x")


def streaming(tmp: Path) -> None:
    size = PROXY_MB * 1024 * 1024
    sim = Simulator(APP_ID, "bench-token")
    seeded = sim.seed(large_proxy_bytes=size)
    with running(sim.app()) as sim_url:
        settings = make_settings(
            tmp, iconik_url=sim_url, iconik_app_id=APP_ID, iconik_auth_token="bench-token"
        )
        with running(create_app(settings)) as url:
            body = custom_action_body(asset_ids=[seeded.large])
            httpx2.post(url + "/iconik/custom-action", content=body, headers=signed(body))
        tracemalloc.start()
        started = time.perf_counter()
        anyio.run(drain, settings, FakeClock())
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    [folder] = [p for p in (tmp / "bundles").iterdir() if not p.name.startswith(".")]
    written = (folder / "media" / "feature_1080p.mp4").stat().st_size
    assert written == size
    print(f"streaming: one bundle around a {PROXY_MB} MiB proxy (traced by tracemalloc)")
    print(
        f"  peak Python allocations {peak / 1024 / 1024:7.2f} MiB in {elapsed:.2f} s "
        f"({size / elapsed / 1024 / 1024:.0f} MiB/s)"
    )
    print(f"  ratio peak / proxy size {peak / size:7.3f}")


def main() -> int:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        intake(Path(a))
        streaming(Path(b))
    return 0


if __name__ == "__main__":
    sys.exit(main())

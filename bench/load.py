"""A closed-loop HTTP/1.1 load generator: `python -m bench.load --port P ...`.

N keep-alive connections; each sends its next request the moment the
previous answer is complete. Every request carries a body of its own (a
counter and a per-run nonce in the asset id, signed with HMAC and sent
with a bearer token too), so neither the service's deduplication nor a
cache ever sees a repeat. It runs in a process of its own, on uvloop, with
the least Python per request it can manage, and prints one JSON line:
requests per second, latency percentiles and the statuses seen.

wrk would do as well, but its unseeded math.random repeats bodies, and it
is one more thing a fresh machine would have to install.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

BODY = (
    '{"user_id":"0a1b2c3d-0000-4000-8000-000000000001",'
    '"system_domain_id":"0a1b2c3d-0000-4000-8000-0000000000aa","context":"ASSET",'
    '"action_id":"0a1b2c3d-0000-4000-8000-0000000000ac",'
    '"asset_ids":["%s-%012d"],"collection_ids":[],"saved_search_ids":null,'
    '"metadata_view_id":null,"metadata_values":null,'
    '"date_created":"2026-11-20T10:00:00.123456","auth_token":"bench-payload-token"}'
)


@dataclass
class Requests:
    """Builds request `i`: a unique, signed custom action."""

    host: str
    path: str
    secret: bytes
    bearer: str
    nonce: str = field(default_factory=lambda: str(uuid.uuid4())[:23])
    counter: int = 0
    no_assets: bool = False  # a click naming nothing: its task fails at once, calling no one

    def next(self) -> bytes:
        self.counter += 1
        body = (BODY % (self.nonce, self.counter)).encode()
        if self.no_assets:
            body = body.replace(b'"asset_ids":["', b'"asset_ids":[],"note":["')
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {self.bearer}\r\n"
            f"X-Iconik-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


@dataclass
class Tally:
    recording: bool = False
    sending: bool = True
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class Connection(asyncio.Protocol):
    def __init__(self, requests: Requests, tally: Tally) -> None:
        self.requests, self.tally = requests, tally
        self.buffer = bytearray()
        self.needed: int | None = None
        self.status = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.send()

    def send(self) -> None:
        if not self.tally.sending:
            if self.tally.in_flight == 0:
                self.tally.drained.set()
            return
        assert self.transport is not None
        self.tally.in_flight += 1
        self.sent_at = time.perf_counter()
        self.transport.write(self.requests.next())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.needed is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                # With its line end: Content-Length may be the last header.
                head = bytes(self.buffer[: end + 2]).lower()
                self.status = int(head[9:12])
                at = head.find(b"content-length:")
                length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
                self.needed = end + 4 + length
            if len(self.buffer) < self.needed:
                return
            del self.buffer[: self.needed]
            self.needed = None
            self.finished()

    def finished(self) -> None:
        tally = self.tally
        tally.in_flight -= 1
        if tally.recording:
            tally.latencies.append(time.perf_counter() - self.sent_at)
            tally.statuses[self.status] += 1
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.needed is not None or self.tally.in_flight:
            self.tally.statuses[-1] += 1  # a connection the server dropped


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    tally = Tally()
    requests = Requests(f"127.0.0.1:{args.port}", args.path, args.secret.encode(), args.bearer)
    transports = []
    for _ in range(args.connections):
        transport, _ = await loop.create_connection(
            lambda: Connection(requests, tally), "127.0.0.1", args.port
        )
        transports.append(transport)
    await asyncio.sleep(args.warmup)
    tally.recording = True
    started = time.perf_counter()
    await asyncio.sleep(args.seconds)
    tally.recording = False
    elapsed = time.perf_counter() - started
    tally.sending = False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.drained.wait(), 30)
    for transport in transports:
        transport.close()
    ordered = sorted(tally.latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")

    return {
        "requests": len(ordered),
        "seconds": elapsed,
        "rps": len(ordered) / elapsed,
        "p50_ms": pct(0.50) * 1000,
        "p99_ms": pct(0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1000,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/iconik/custom-action")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--bearer", required=True)
    parser.add_argument("--no-assets", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the figures are only slower, not wrong
        pass
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Limits at the edge: what an anonymous client can cost before it is authenticated.

The receiver faces the internet, so anyone who reaches the port is a client.
uvicorn's httptools protocol has no limit on a header or URL (httptools
joins a header's pieces with `+=`, quadratic in its length), no deadline
for a request's head or body, and no cap on connections.
`EdgeProtocol` (service/intake/edge_protocol.py) is that protocol with a guard in
front of its parser:

- the head is measured before the parser sees it: a request line past
  MAX_URL_BYTES is a 414, a header line past MAX_HEADER_LINE_BYTES or a
  head past MAX_HEADER_BYTES a 431, answered at once and the connection
  closed, nothing more read;
- a head must be complete within HEADER_TIMEOUT_SECONDS of its first byte
  (of the connection opening, for the first request), and a body must keep
  up MIN_BODY_BYTES_PER_SECOND after BODY_TIMEOUT_SECONDS of grace, or 408,
  and a client that stops reading its answer is cut off after as long;
- a kept-alive connection with no new request for KEEP_ALIVE_TIMEOUT_SECONDS
  is closed (uvicorn's own timer);
- no client (an IPv4 address, an IPv6 /64) holds more than
  MAX_CONNECTIONS_PER_CLIENT connections and the process no more than
  MAX_CONNECTIONS (never more than three quarters of its file handle
  limit): over either, the oldest connection doing nothing (silent, still
  sending its head, or idle) of the client with the most connections is
  closed to make room, so a fresh connection is served;
- past MAX_REQUESTS_IN_FLIGHT requests being handled, a new one is a 503.

Deadlines are checked by one sweep a few times a second over the open
connections, not by a timer per request: the request path only notes the
time when a phase starts. bench/ack.py measures what the guard costs,
bench/edge.py what it protects. This module holds the limits and the
connections; service/intake/edge_protocol.py the protocol that enforces them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.logging import get_logger

if TYPE_CHECKING:
    from service.intake.edge_protocol import EdgeProtocol

# Where a connection is in its current request.
HEAD, BODY, APP, IDLE, CLOSED = range(5)
REPORT_SECONDS = 10.0

log = get_logger("service.intake.edge")


@dataclass(frozen=True)
class EdgeLimits:
    max_url_bytes: int = 8 * 1024
    max_header_line_bytes: int = 8 * 1024
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 10
    body_timeout_seconds: float = 10
    min_body_bytes_per_second: float = 1024
    keep_alive_timeout_seconds: float = 5
    max_connections: int = 1000
    max_connections_per_client: int = 100
    max_requests_in_flight: int = 256

    @classmethod
    def from_settings(cls, settings: Any) -> EdgeLimits:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


def usable_file_handles() -> int:
    """Raise the soft file handle limit to the hard one; three quarters of it.

    The rest is kept for what the process opens besides connections: the
    queue, the bundle storage, the worker's calls to Iconik, log files.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return 2**31
    return max(16, soft * 3 // 4)


def client_of(host: str) -> str:
    """Whose connection this is: its IPv4 address, or its IPv6 /64.

    One IPv6 host is usually given a whole /64, so a client counted by its
    address alone could open each connection from an address of its own.
    """
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class Edge:
    """The limits and the open connections of one server, shared by its protocols."""

    def __init__(self, limits: EdgeLimits, *, file_handles: int | None = None) -> None:
        self.limits = limits
        handles = usable_file_handles() if file_handles is None else file_handles
        self.max_connections = min(limits.max_connections, handles)
        self.connections: dict[EdgeProtocol, None] = {}  # oldest first
        self.by_client: dict[str, dict[EdgeProtocol, None]] = {}
        self.refused: dict[int, int] = {}  # status -> count, for tests and the bench
        self.evicted = 0
        smallest = min(limits.header_timeout_seconds, limits.body_timeout_seconds)
        self.sweep_seconds = min(0.5, max(0.02, smallest / 4))
        self._sweeping: asyncio.TimerHandle | None = None
        self._next_report = 0.0
        self._reported: tuple[dict[int, int], int] = ({}, 0)

    # Connections: admitted on open, forgotten on close.

    def admit(self, conn: EdgeProtocol) -> None:
        mine = self.by_client.setdefault(conn.client_host, {})
        mine[conn] = None
        self.connections[conn] = None
        if self._sweeping is None:
            self._sweeping = conn.loop.call_later(self.sweep_seconds, self.sweep, conn.loop)
        if len(mine) > self.limits.max_connections_per_client:
            self._make_room(conn, mine)
        elif len(self.connections) > self.max_connections:
            biggest = max(self.by_client.values(), key=len)
            self._make_room(conn, biggest, self.connections)

    def _make_room(self, new: EdgeProtocol, *pools: dict[EdgeProtocol, None]) -> None:
        for pool in pools:
            victim = _victim(pool, new)
            if victim is not None:
                victim.evict()
                return
        new.evict()  # every other one is busy with a request: this one is turned away

    def forget(self, conn: EdgeProtocol) -> None:
        self.connections.pop(conn, None)
        mine = self.by_client.get(conn.client_host)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_client[conn.client_host]

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections past a deadline; again in a moment while any are open."""
        now = loop.time()
        for conn in list(self.connections):
            conn.check_deadline(now)
        if now >= self._next_report:
            self.report(now)
        self._sweeping = (
            loop.call_later(self.sweep_seconds, self.sweep, loop) if self.connections else None
        )

    def count_refusal(self, status: int) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1

    def report(self, now: float) -> None:
        """One log line when limits were hit since the last: an attack, or limits too tight.

        Counts only, at most every REPORT_SECONDS, so that a flood of
        refusals is not also a flood of log lines.
        """
        self._next_report = now + REPORT_SECONDS
        seen = (dict(self.refused), self.evicted)
        if seen == self._reported:
            return
        refused = {str(k): v - self._reported[0].get(k, 0) for k, v in seen[0].items()}
        log.warning(
            "edge.limits_hit",
            refused={k: v for k, v in refused.items() if v},
            evicted=seen[1] - self._reported[1],
            connections=len(self.connections),
            clients=len(self.by_client),
            seconds=REPORT_SECONDS,
        )
        self._reported = seen


def _victim(pool: dict[EdgeProtocol, None], new: EdgeProtocol) -> EdgeProtocol | None:
    """The connection of `pool` to close for `new`, oldest first.

    One that never sent a byte, else one still sending its head (a client
    that has sent headers for longer than any other), else one idle between
    requests (closing it costs a well-behaved client a reconnect).
    Connections whose request is being handled are never chosen.
    """
    half_sent = idle = None
    for conn in pool:
        if conn is new:
            continue
        if conn.phase == HEAD:
            if not conn.head_bytes_seen:
                return conn
            half_sent = half_sent or conn
        elif conn.phase == IDLE:
            idle = idle or conn
    return half_sent or idle

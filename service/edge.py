"""Limits at the edge: what an anonymous client can cost before it is authenticated.

The receiver faces the internet, so anyone who reaches the port is a client.
uvicorn's httptools protocol has no limit on a header or URL (httptools
joins a header's pieces with `+=`, quadratic in its length), no deadline
for a request's head or body, and no cap on connections. `EdgeProtocol`
is that protocol with a guard in front of its parser:

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
- no client address holds more than MAX_CONNECTIONS_PER_CLIENT connections
  and the process no more than MAX_CONNECTIONS (never more than three
  quarters of its file handle limit): over either, the oldest connection
  doing nothing (idle, or still sending its head) of the client with the
  most connections is closed to make room, so a fresh connection is served;
- past MAX_REQUESTS_IN_FLIGHT requests being handled, a new one is a 503.

Deadlines are checked by one sweep a few times a second over the open
connections, not by a timer per request: the request path only notes the
time when a phase starts. bench/ack.py measures what the guard costs,
bench/edge.py what it protects.
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.logging import get_logger

# Where a connection is in its current request.
HEAD, BODY, APP, IDLE, CLOSED = range(5)
# "GET " ... " HTTP/1.1\r": what a request line holds besides its URL.
REQUEST_LINE_OVERHEAD = 32
REPORT_SECONDS = 10.0

log = get_logger("service.edge")


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
        new.evict()  # everyone else is busy with a request: this one waits its turn

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


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request already answered."""


def answer(status: int, code: str, detail: str, extra: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response with a JSON body, closing the connection."""
    body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")).encode()
    reason = HTTPStatus(status).phrase.encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n%s\r\n" % (status, reason, len(body), extra)
    ) + body


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The app for a request past MAX_REQUESTS_IN_FLIGHT."""
    body = json.dumps(
        {
            "error": "busy",
            "detail": "more than MAX_REQUESTS_IN_FLIGHT requests are being handled; retry later",
        },
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head measured before it is parsed."""

    def __init__(self, *args: Any, edge: Edge, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge = edge
        self.limits = edge.limits
        self.first_line_limit = self.limits.max_url_bytes + REQUEST_LINE_OVERHEAD
        self.fast_limit = min(self.first_line_limit, self.limits.max_header_line_bytes)
        self.service_app = self.app
        self.client_host = ""
        self.phase = HEAD
        self.since = 0.0
        self.head_bytes = 0  # of the current head, so far
        self.head_bytes_seen = False  # any byte of a request on this connection yet
        self.line = 0  # bytes of the current head line, so far
        self.first_line = True
        self.body_bytes = 0
        self.stalled_since: float | None = None  # since when the client takes no answer
        self.began_midway = False

    # The connection's life.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.client_host = self.client[0] if self.client else ""
        self._start_head()
        self.edge.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        self.edge.forget(self)
        super().connection_lost(exc)

    def evict(self) -> None:
        """Closed to make room for another connection."""
        self.phase = CLOSED
        self.edge.forget(self)
        self.edge.evicted += 1
        self.transport.close()

    def _start_head(self) -> None:
        self.phase = HEAD
        self.since = self.loop.time()
        self.head_bytes = self.line = 0
        self.first_line = True

    def _refuse(self, status: int, code: str, detail: str) -> None:
        self.phase = CLOSED
        self.edge.forget(self)
        self.edge.count_refusal(status)
        if not self.transport.is_closing():
            self.transport.write(answer(status, code, detail))
            self.transport.close()

    # Bytes in: measured while they are a head, counted while they are a body.

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == IDLE:
            self._start_head()
            phase = HEAD
        if phase == HEAD:
            self.head_bytes_seen = True
            size = len(data)
            if self.line + size > self.fast_limit or (
                self.head_bytes + size > self.limits.max_header_bytes
            ):
                refusal = self._measure_head(data)
                if refusal is not None:
                    self._refuse(*refusal)
                    return
        elif phase == BODY:
            self.body_bytes += len(data)
        elif phase == CLOSED:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "bad_request", "this service does not upgrade connections")
            return
        except httptools.HttpParserError:
            if self.phase != CLOSED:
                self._refuse(400, "bad_request", "the request is not valid HTTP/1.1")
            return
        if self.began_midway:  # a pipelined head began inside this piece, somewhere:
            self.began_midway = False  # undercounted by at most the piece, never over
        elif self.phase == HEAD:  # the head goes on past this piece: all of it was head
            self.head_bytes += len(data)
            end = data.rfind(b"\n")
            if end < 0:
                self.line += len(data)
            else:
                self.line = len(data) - end - 1
                self.first_line = False

    def _measure_head(self, data: bytes) -> tuple[int, str, str] | None:
        """The refusal a head continued by `data` has earned, looking no further than its end."""
        limits = self.limits
        line, first, total = self.line, self.first_line, self.head_bytes
        start = 0
        while True:
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            length = line + stop - start
            if first and length > self.first_line_limit:
                return 414, "url_too_long", self.url_too_long
            if not first and length > limits.max_header_line_bytes:
                return 431, "header_too_large", (
                    "a header line is longer than MAX_HEADER_LINE_BYTES "
                    f"({limits.max_header_line_bytes} bytes)"
                )
            total += stop - start
            if total > limits.max_header_bytes:
                return 431, "headers_too_large", (
                    "the request's headers are larger than MAX_HEADER_BYTES "
                    f"({limits.max_header_bytes} bytes)"
                )
            if end < 0:
                return None
            total += 1
            if length <= 1 and not first:  # the empty line: the head ends here
                return None
            first = first and length <= 1  # blank lines before a request line are tolerated
            line, start = 0, end + 1

    @property
    def url_too_long(self) -> str:
        return f"the URL is longer than MAX_URL_BYTES ({self.limits.max_url_bytes} bytes)"

    # Parser callbacks: the phases of a request.

    def on_message_begin(self) -> None:
        if self.phase != HEAD:  # a pipelined request, begun in the same piece as the last
            self._start_head()
            self.began_midway = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if len(self.url) > self.limits.max_url_bytes:
            self._refuse(414, "url_too_long", self.url_too_long)
            raise _Refused
        self.phase = BODY
        self.since = self.loop.time()
        self.body_bytes = 0
        if len(self.tasks) >= self.limits.max_requests_in_flight:
            self.app = _busy
            self.edge.count_refusal(503)
        else:
            self.app = self.service_app
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.phase == BODY:
            self.phase = APP
        super().on_message_complete()
        if self.phase == APP and self.cycle.response_complete and not self.pipeline:
            # Answered before its body was in (a route that reads none): the
            # connection is idle from now, and uvicorn armed its keep-alive
            # timer at the answer, which the body's bytes since cancelled.
            self.phase = IDLE
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def on_response_complete(self) -> None:
        if self.phase == APP and not self.pipeline:
            self.phase = IDLE  # uvicorn's keep-alive timer closes it if nothing follows
        super().on_response_complete()

    # Answers out: a client that reads them slowly lets the buffer drain from
    # time to time (resume); one that reads nothing never does.

    def pause_writing(self) -> None:
        self.stalled_since = self.loop.time()
        super().pause_writing()

    def resume_writing(self) -> None:
        self.stalled_since = None
        super().resume_writing()

    # Deadlines, from the sweep.

    def check_deadline(self, now: float) -> None:
        limits = self.limits
        if self.stalled_since is not None and (
            now - self.stalled_since > limits.body_timeout_seconds
        ):
            # The client does not take its answer: the request would stay in
            # flight (and count against MAX_REQUESTS_IN_FLIGHT) for as long as
            # it lets it. It gets BODY_TIMEOUT_SECONDS, as a body does.
            self.phase = CLOSED
            self.edge.forget(self)
            self.transport.abort()
            return
        if self.flow is not None and self.flow.read_paused and self.phase in (HEAD, BODY):
            # uvicorn stopped reading (a pipelined request waits, or the app has not
            # taken the body so far): the client is not the slow one. It gets its
            # time afresh once reading resumes.
            self.since = now
            self.body_bytes = 0
            return
        if self.phase == HEAD:
            if now - self.since <= limits.header_timeout_seconds:
                return
            if self.head_bytes == 0 and self.line == 0:
                self.phase = CLOSED  # nothing was asked: nothing to answer
                self.edge.forget(self)
                self.transport.close()
                return
            self._refuse(
                408,
                "request_timeout",
                "the request's headers did not arrive within HEADER_TIMEOUT_SECONDS "
                f"({limits.header_timeout_seconds:g} s)",
            )
        elif self.phase == BODY:
            allowed = limits.body_timeout_seconds + (
                self.body_bytes / limits.min_body_bytes_per_second
            )
            if now - self.since <= allowed:
                return
            if self.cycle is not None and self.cycle.response_started:
                self.phase = CLOSED
                self.edge.forget(self)
                self.transport.close()
                return
            self._refuse(
                408,
                "request_timeout",
                "the request's body arrived slower than MIN_BODY_BYTES_PER_SECOND "
                f"({limits.min_body_bytes_per_second:g}) after BODY_TIMEOUT_SECONDS "
                f"({limits.body_timeout_seconds:g} s)",
            )

"""The protocol that enforces the limits at the edge (service/intake/edge.py) on each connection.

uvicorn's httptools protocol, with the head measured before the parser sees
it, the phases of each request noted for the deadlines, and room made for
each new connection. What it answers is JSON, like every error the service
gives, and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.intake.edge import APP, BODY, CLOSED, HEAD, IDLE, Edge, client_of

# "GET " ... " HTTP/1.1\r": what a request line holds besides its URL.
REQUEST_LINE_OVERHEAD = 32


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
        # Read on every request: plain attributes, not a lookup through the limits.
        self.max_header_bytes = self.limits.max_header_bytes
        self.max_url_bytes = self.limits.max_url_bytes
        self.max_in_flight = self.limits.max_requests_in_flight
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

    # asyncio.Transport, as uvicorn's HttpToolsProtocol takes it (asyncio's says BaseTransport).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.client_host = client_of(self.client[0]) if self.client else ""
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
        if phase == IDLE:  # _start_head(), inline: this is every kept-alive request
            phase = self.phase = HEAD
            self.since = self.loop.time()
            self.head_bytes = self.line = 0
            self.first_line = True
        if phase == HEAD:
            self.head_bytes_seen = True
            size = len(data)
            if self.line + size > self.fast_limit or (
                self.head_bytes + size > self.max_header_bytes
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
                return (
                    431,
                    "header_too_large",
                    (
                        "a header line is longer than MAX_HEADER_LINE_BYTES "
                        f"({limits.max_header_line_bytes} bytes)"
                    ),
                )
            total += stop - start
            if total > limits.max_header_bytes:
                return (
                    431,
                    "headers_too_large",
                    (
                        "the request's headers are larger than MAX_HEADER_BYTES "
                        f"({limits.max_header_bytes} bytes)"
                    ),
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
        if len(self.url) > self.max_url_bytes:
            self._refuse(414, "url_too_long", self.url_too_long)
            raise _Refused
        self.phase = BODY
        self.since = self.loop.time()
        self.body_bytes = 0
        if len(self.tasks) < self.max_in_flight:
            super().on_headers_complete()
            return
        self.edge.count_refusal(503)
        self.app = _busy
        try:
            super().on_headers_complete()
        finally:
            self.app = self.service_app

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

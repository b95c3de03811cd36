"""The guard at the edge (service/intake/edge.py), over real sockets against a real server.

Each test serves a small app with small limits in this process and speaks
raw HTTP/1.1 to it, so that what is sent is exactly what a hostile client
would send. The whole-process scenario is in tests/system/intake/test_edge_process.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from service.intake.edge import Edge, EdgeLimits
from service.intake.edge_protocol import EdgeProtocol
from service.intake.server import edge_of
from tests.support.polling import until
from tests.support.servers import running, running_server

SMALL = EdgeLimits(
    max_url_bytes=1024,
    max_header_line_bytes=1024,
    max_header_bytes=4096,
    header_timeout_seconds=0.3,
    body_timeout_seconds=0.3,
    min_body_bytes_per_second=1000,
    keep_alive_timeout_seconds=5,
    max_connections=40,
    max_connections_per_client=10,
    max_requests_in_flight=2,
)


class App:
    """Reads the body and answers 202 with its size; /hold waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.holding = threading.Semaphore(0)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["path"] == "/hold":
            import anyio

            self.holding.release()
            await anyio.to_thread.run_sync(self.release.wait)
        body = json.dumps({"size": size}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@contextmanager
def served(limits: EdgeLimits = SMALL) -> Iterator[tuple[str, int, App]]:
    app = App()
    with running(app, limits) as url:
        host, port = url.removeprefix("http://").split(":")
        try:
            yield host, int(port), app
        finally:
            app.release.set()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers, body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def post(path: str = "/", body: bytes = b"{}", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_header_line_past_the_limit_is_a_431_with_a_json_body():
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 1100)
        status, headers, body = read_answer(sock)
        assert status == 431
        assert headers["connection"] == "close"
        assert json.loads(body)["error"] == "header_too_large"
        assert "MAX_HEADER_LINE_BYTES (1024 bytes)" in json.loads(body)["detail"]
        assert closed_by_server(sock)


def test_an_endless_header_is_cut_without_reading_the_rest():
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent = 0
        with suppress(ConnectionError, TimeoutError):  # the server hangs up mid-stream
            while sent < 50 * 1024 * 1024:
                sock.sendall(b"a" * 512)
                sent += 512
        # Cut at its first kilobytes, not after megabytes had to be buffered.
        assert sent < 4 * 1024 * 1024


def test_too_many_header_lines_are_a_431():
    many = "".join(f"X-H{i}: {'v' * 50}\r\n" for i in range(100))  # ~6 KiB of short lines
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(post(extra=many))
        status, _, body = read_answer(sock)
        assert status == 431
        assert json.loads(body)["error"] == "headers_too_large"
        assert "MAX_HEADER_BYTES (4096 bytes)" in json.loads(body)["detail"]


def test_a_long_url_is_a_414_even_when_sent_a_byte_at_a_time():
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(b"GET /")
        status = None
        with suppress(ConnectionError):
            for _ in range(2000):
                sock.sendall(b"a")
        status, _, body = read_answer(sock)
        assert status == 414
        assert json.loads(body) == {
            "error": "url_too_long",
            "detail": "the URL is longer than MAX_URL_BYTES (1024 bytes)",
        }


def test_a_url_just_past_the_limit_is_a_414_and_one_at_it_is_served():
    with served() as (_, port, _app):
        with connect(port) as sock:
            sock.sendall(post("/" + "a" * 1024))
            assert read_answer(sock)[0] == 414
        with connect(port) as sock:
            sock.sendall(post("/" + "a" * 1023))
            assert read_answer(sock)[0] == 202


def test_a_body_larger_than_the_header_limit_in_one_piece_is_not_mistaken_for_headers():
    body = json.dumps({"pad": "x" * 20000}).encode()
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(post(body=body))
        status, _, answer = read_answer(sock)
        assert status == 202
        assert json.loads(answer) == {"size": len(body)}


def test_a_head_sent_a_byte_at_a_time_with_lines_at_the_limit_is_served():
    line = "X-Fill: " + "v" * (1024 - len("X-Fill: ") - 1) + "\r\n"  # 1024 bytes before \n
    request = post(extra=line * 3)
    with served() as (_, port, _app), connect(port) as sock:
        for i in range(len(request)):
            sock.send(request[i : i + 1])
        assert read_answer(sock)[0] == 202
        # ...and the next request on the same connection is measured afresh.
        sock.sendall(post(extra=line * 3))
        assert read_answer(sock)[0] == 202


def test_a_head_not_finished_in_time_is_a_408():
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        status, _, body = read_answer(sock)  # the socket's 5 s timeout bounds the wait
        assert status == 408
        assert "HEADER_TIMEOUT_SECONDS (0.3 s)" in json.loads(body)["detail"]


def test_a_connection_that_says_nothing_is_closed_without_an_answer():
    with served() as (_, port, _app), connect(port) as sock:
        assert closed_by_server(sock)


def test_a_body_trickled_too_slowly_is_a_408():
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 200)
        status, _, body = read_answer(sock)
        assert status == 408
        assert "MIN_BODY_BYTES_PER_SECOND (1000)" in json.loads(body)["detail"]


def test_one_client_cannot_hold_more_than_its_share_of_connections():
    with served() as (_, port, _app):
        hog = [connect(port, "127.0.0.2") for _ in range(SMALL.max_connections_per_client + 5)]
        try:
            # The oldest five made room for the newest; each is closed at once.
            assert all(closed_by_server(sock) for sock in hog[:5])
            with connect(port) as sock:
                sock.sendall(post())
                assert read_answer(sock)[0] == 202
            for sock in hog[5:]:  # the rest still stand, doing nothing
                sock.sendall(post())
                assert read_answer(sock)[0] == 202
        finally:
            for sock in hog:
                sock.close()


def test_at_the_connection_cap_the_biggest_clients_oldest_idle_connection_makes_room():
    with served() as (_, port, _app):
        # Four addresses of ten idle connections each fill the cap of 40.
        crowd = [connect(port, f"127.0.1.{n // 10 + 1}") for n in range(SMALL.max_connections)]
        try:
            first = crowd[0]
            with connect(port) as sock:
                sock.sendall(post())
                assert read_answer(sock)[0] == 202
            assert closed_by_server(first)
        finally:
            for sock in crowd:
                sock.close()


def test_past_the_requests_in_flight_cap_a_request_is_a_503_with_retry_after():
    with served() as (_, port, app):
        held = [connect(port) for _ in range(SMALL.max_requests_in_flight)]
        try:
            for sock in held:
                sock.sendall(post("/hold"))
            for _ in held:
                assert app.holding.acquire(timeout=5)
            with connect(port) as sock:
                sock.sendall(post())
                status, headers, body = read_answer(sock)
            assert status == 503
            assert headers["retry-after"] == "1"
            assert json.loads(body)["error"] == "busy"
            app.release.set()
            for sock in held:
                assert read_answer(sock)[0] == 202
        finally:
            for sock in held:
                sock.close()


def test_a_request_that_is_not_http_is_a_400_with_a_json_body():
    with served() as (_, port, _app), connect(port) as sock:
        sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
        status, _, body = read_answer(sock)
        assert status == 400
        assert json.loads(body)["error"] == "bad_request"


@pytest.mark.parametrize("soft", [1024, 65536])
def test_the_connection_cap_leaves_a_quarter_of_the_file_handles(soft):
    edge = Edge(EdgeLimits(max_connections=5000), file_handles=soft * 3 // 4)
    assert edge.max_connections == min(5000, soft * 3 // 4)
    assert EdgeProtocol.__mro__[1].__name__ == "HttpToolsProtocol"


def test_limits_hit_are_reported_as_counts_at_most_once_a_period():
    from structlog.testing import capture_logs

    edge = Edge(SMALL, file_handles=100)
    with capture_logs() as logs:
        edge.report(0.0)  # nothing hit yet: nothing said
        for status in (431, 431, 408):
            edge.count_refusal(status)
        edge.evicted += 3
        edge.report(10.0)
        edge.report(20.0)  # nothing new since
    assert [(line["event"], line["refused"], line["evicted"]) for line in logs] == [
        ("edge.limits_hit", {"431": 2, "408": 1}, 3)
    ]


def test_every_limit_is_a_setting_and_serve_passes_them_on(tmp_path):
    from tests.support.service import make_settings

    settings = make_settings(tmp_path, max_url_bytes=2048, max_connections_per_client=7)
    limits = EdgeLimits.from_settings(settings)
    assert (limits.max_url_bytes, limits.max_connections_per_client) == (2048, 7)
    defaults = EdgeLimits.from_settings(make_settings(tmp_path))
    assert defaults == EdgeLimits()  # one set of defaults, not two that drift apart


def test_room_is_made_from_silent_connections_first_then_half_sent_heads_then_idle_ones():
    from dataclasses import dataclass

    from service.intake.edge import APP, BODY, HEAD, IDLE, _victim

    @dataclass(eq=False)
    class Conn:
        phase: int
        head_bytes_seen: bool

    def conn(phase, spoke=True):
        return Conn(phase, spoke)

    idle, half_sent, silent = conn(IDLE), conn(HEAD), conn(HEAD, spoke=False)
    busy, receiving, new = conn(APP), conn(BODY), conn(HEAD, spoke=False)
    pool = dict.fromkeys([busy, idle, receiving, half_sent, silent, new])
    assert _victim(pool, new) is silent
    del pool[silent]
    assert _victim(pool, new) is half_sent
    del pool[half_sent]
    assert _victim(pool, new) is idle
    del pool[idle]
    assert _victim(pool, new) is None  # requests being handled are never cut for room


def test_a_request_answered_before_its_body_was_in_leaves_an_idle_connection_that_is_closed():
    # /early answers without reading the body; the body then arrives in full.
    # The connection must not stay "busy" (uncuttable, untimed) for ever.
    limits = EdgeLimits(**{**SMALL.__dict__, "keep_alive_timeout_seconds": 0.3})
    app = App()

    async def early(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/early":
            return await app(scope, receive, send)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"{}"})

    with running(early, limits) as url, connect(int(url.rsplit(":", 1)[1])) as sock:
        sock.sendall(b"GET /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert read_answer(sock)[0] == 200
        sock.sendall(b"0123456789")
        assert closed_by_server(sock)  # by the keep-alive timeout; the socket's 5 s bound it


def test_a_client_that_does_not_read_its_answer_is_cut_off():
    # Otherwise its request stays in flight for as long as it likes, and a
    # few hundred such clients fill MAX_REQUESTS_IN_FLIGHT for everyone.

    size = 64 * 1024 * 1024

    async def big(scope, receive, send):
        if scope["type"] != "http":
            return
        headers = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        piece = b"x" * (1 << 20)
        for _ in range(size // len(piece)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with running_server(big, SMALL) as server:
        edge = edge_of(server.config)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        with sock:
            sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # Read nothing until the server has taken the connection, and then let
            # it go (polled, bounded).
            deadline = time.monotonic() + 5
            until(
                lambda: edge.connections,
                within=deadline - time.monotonic(),
                every=0.02,
                why="the connection was never accepted",
            )
            until(
                lambda: not edge.connections,
                within=deadline - time.monotonic(),
                every=0.02,
                why="still waiting on a client reading nothing",
            )
            received = 0
            with suppress(ConnectionError):
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
        assert received < size  # the answer was cut short, and the connection closed


def test_a_pipelined_head_after_a_body_larger_than_the_header_limit_is_not_refused():
    # The tail of one body and the start of the next head arrive in one piece:
    # the body's bytes must not be counted as the next head's.
    body = json.dumps({"pad": "x" * 6000}).encode()  # past MAX_HEADER_BYTES (4096)
    second = post(body=body)

    def answer_of(answers) -> tuple[bytes, bytes]:
        status_line, length = answers.readline(), 0
        while line := answers.readline().strip():
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status_line.split()[1], answers.read(length)

    with served() as (_, port, _app), connect(port) as sock, sock.makefile("rb") as answers:
        sock.sendall(post(body=body) + second[:20])
        assert answer_of(answers) == (b"202", json.dumps({"size": len(body)}).encode())
        sock.sendall(second[20:])  # the server has read the first piece by now
        assert answer_of(answers) == (b"202", json.dumps({"size": len(body)}).encode())


def test_the_guard_cost_benchmark_runs():
    from bench.edge import guard_cost

    lines = guard_cost(requests=200, rounds=1)
    assert lines[0].startswith("edge-cost:") and "(baseline)" in lines[1] and "x)" in lines[2]


@pytest.mark.parametrize(
    ("host", "client"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),  # the same host, another address
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(host, client):
    from service.intake.edge import client_of

    assert client_of(host) == client

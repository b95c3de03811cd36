"""service/iconik/transfer.py: the hops of a redirect chain, and a body cut short.

Hop is pure (URLs in, a Hop out); a Download is read from a real socket on
loopback that sends fewer bytes than it announced. The Iconik client's use
of both, over the simulator, is in tests/system/iconik/test_iconik_http.py.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

from service.iconik.errors import BadResponse, DownloadInterrupted
from service.iconik.transfer import Download, Hop, origin

HOME = origin(httpx2.URL("https://app.iconik.io"))
API = "https://app.iconik.io/API/files/v1/assets/a1/proxies/"


def answer(status: int, location: str | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers={"location": location} if location else {})


def follow(hop: Hop, status: int, location: str) -> Hop:
    return hop.redirected(hop.url, answer(status, location), HOME)


def test_one_origin_whatever_the_case_of_the_host_or_a_default_port():
    assert origin(httpx2.URL("https://APP.iconik.io:443/x")) == HOME
    assert origin(httpx2.URL("http://app.iconik.io/x")) != HOME
    assert origin(httpx2.URL("https://app.iconik.io:8443/x")) != HOME


def test_a_hop_on_iconiks_origin_is_iconiks_and_named_by_its_path():
    hop = Hop.first("GET", API + "?page=2", HOME)
    assert hop.iconik
    assert hop.target == "GET /API/files/v1/assets/a1/proxies/"


def test_once_the_chain_leaves_iconik_no_later_hop_is_iconiks_even_back_home():
    hop = Hop.first("GET", API, HOME)
    storage = follow(hop, 302, "https://bucket.s3.example.com/p.mp4?X-Amz-Signature=s3cr3t")
    assert not storage.iconik
    # Named by the storage host only: the query holds the signature.
    assert storage.target == "the signed storage URL on bucket.s3.example.com"
    back = follow(storage, 302, API)
    assert not back.iconik


def test_a_relative_location_resolves_against_the_url_requested():
    hop = Hop.first("GET", API, HOME)
    moved = follow(hop, 307, "../other/")
    assert str(moved.url) == "https://app.iconik.io/API/files/v1/assets/a1/other/"
    assert moved.iconik


@pytest.mark.parametrize(
    ("method", "status", "then"),
    [
        ("POST", 303, "GET"),
        ("GET", 303, "GET"),
        ("HEAD", 303, "HEAD"),
        ("POST", 301, "GET"),
        ("POST", 302, "GET"),
        ("POST", 307, "POST"),
        ("POST", 308, "POST"),
        ("PUT", 302, "PUT"),
    ],
)
def test_the_method_after_a_redirect_is_what_browsers_and_httpx_use(method, status, then):
    assert follow(Hop.first(method, API, HOME), status, API).method == then


@pytest.mark.parametrize(
    "location", [None, "javascript:alert(1)", "ftp://app.iconik.io/x", "http://[::1"]
)
def test_a_redirect_without_a_usable_location_is_a_bad_response(location):
    hop = Hop.first("GET", API, HOME)
    with pytest.raises(
        BadResponse,
        match=r"^GET /API/files/v1/assets/a1/proxies/: "
        r"a redirect \(HTTP 302\) without a usable Location$",
    ):
        hop.redirected(hop.url, answer(302, location), HOME)


@contextmanager
def short_body_server(announced: int, sent: bytes) -> Iterator[str]:
    """A server on loopback that announces `announced` bytes, sends `sent`, and hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n\r\n".encode()
            conn.sendall(head + sent)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/p.mp4?X-Amz-Signature=s3cr3t"
    finally:
        thread.join(10)
        listener.close()


@pytest.mark.parametrize("quote_errors", [False, True])
def test_a_body_cut_short_is_download_interrupted_saying_how_far_it_got(quote_errors):
    with short_body_server(100, b"x" * 40) as url, httpx2.Client() as client:
        response = client.send(client.build_request("GET", url), stream=True)
        download = Download(
            response,
            "the proxy",
            source="the signed storage URL on 127.0.0.1",
            quote_errors=quote_errors,
        )
        assert download.size == 100
        received = b""
        with pytest.raises(DownloadInterrupted) as raised:
            for chunk in download.blocking_chunks():
                received += chunk
        response.close()
    message = str(raised.value)
    assert received == b"x" * 40
    assert message.startswith(
        "download of the proxy from the signed storage URL on 127.0.0.1 was interrupted after 40 "
    )
    assert message.endswith("; will retry")
    assert "s3cr3t" not in message  # never the signed URL's signature


def test_a_whole_body_reads_through_and_a_stopped_one_says_stopped():
    with short_body_server(6, b"abcdef") as url, httpx2.Client() as client:
        response = client.send(client.build_request("GET", url), stream=True)
        download = Download(response, "the proxy", source="Iconik", quote_errors=True)
        assert b"".join(download.blocking_chunks()) == b"abcdef"
        response.close()
    with short_body_server(6, b"abcdef") as url, httpx2.Client() as client:
        response = client.send(client.build_request("GET", url), stream=True)
        download = Download(response, "the proxy", source="Iconik", quote_errors=True)
        download.stop()
        with pytest.raises(DownloadInterrupted, match=r"after \d+ bytes \(stopped\)"):
            list(download.blocking_chunks(1))
        response.close()

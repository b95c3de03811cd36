"""The Iconik client over real HTTP: redirects, refused signed URLs, broken downloads.

Two real uvicorn servers on loopback stand for Iconik and for a storage
service (another origin, as signed URLs are); each records what it
received, so the tests assert what reached which side. Bodies cut short
and servers that stall are raw TCP servers (tests/support/servers.py `raw_tcp`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from service.compose import iconik_client
from service.iconik.client import (
    BadResponse,
    CredentialsRejected,
    Download,
    DownloadInterrupted,
    IconikClient,
    IconikError,
    IconikUnavailable,
    NotFound,
    SignedUrlRefused,
)
from tests.support.servers import raw_tcp, read_request_head, running
from tests.support.service import make_settings

pytestmark = pytest.mark.anyio

APP_ID = "redirect-test-app"
TOKEN = "redirect-test-token-9f1e"
SIGNATURE = "sig-0f9e8d7c6b5a"
MEDIA = bytes(range(256)) * 400
NOWHERE = "https://iconik.invalid"  # Iconik, when only storage is contacted
WHAT = "the proxy of asset a1"


@dataclass
class Origin:
    """A real server on its own port: answers by path from `answers`, records each request."""

    answers: dict[str, Callable[[Request], Response]] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            self.seen.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": dict(request.headers),
                    "body": await request.body(),
                }
            )
            return self.answers[request.url.path](request)

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


@pytest.fixture
def origins() -> Iterator[tuple[Origin, Origin]]:
    iconik, storage = Origin(), Origin()
    with running(iconik.app()) as iconik_url, running(storage.app()) as storage_url:
        iconik.url, storage.url = iconik_url, storage_url
        yield iconik, storage


def carried_credentials(seen: dict[str, Any]) -> bool:
    headers = seen["headers"]
    return "app-id" in headers or "auth-token" in headers or TOKEN in str(headers)


async def _no_sleep(seconds: float) -> None:
    """Backoff between retries takes no time here."""


def client(base_url: str, **kw: Any) -> IconikClient:
    options: dict[str, Any] = {"rate_limit": 1000, "sleep": _no_sleep, "max_attempts": 2}
    return IconikClient(base_url, APP_ID, TOKEN, **{**options, **kw})


async def body(download: Download) -> bytes:
    return b"".join([chunk async for chunk in download.chunks()])


def redirect(to: str, status: int = 302) -> Callable[[Request], Response]:
    return lambda request: RedirectResponse(to, status)


# -- redirects ---------------------------------------------------------------


async def test_a_redirect_to_storage_carries_no_credentials_and_the_download_completes(origins):
    iconik, storage = origins
    signed = f"{storage.url}/bucket/p1.mp4?X-Amz-Signature={SIGNATURE}"
    iconik.answers["/API/files/v1/download/p1/"] = redirect(signed)
    storage.answers["/bucket/p1.mp4"] = lambda request: Response(MEDIA, media_type="video/mp4")

    url = iconik.url + "/API/files/v1/download/p1/"
    async with client(iconik.url) as c, c.download(url, what=WHAT) as d:
        assert await body(d) == MEDIA

    [asked] = iconik.seen
    assert (asked["headers"]["app-id"], asked["headers"]["auth-token"]) == (APP_ID, TOKEN)
    [fetched] = storage.seen
    assert not carried_credentials(fetched)
    assert fetched["query"] == f"X-Amz-Signature={SIGNATURE}"  # followed intact


async def test_credentials_stay_off_a_chain_once_it_left_iconik(origins):
    iconik, storage = origins
    iconik.answers["/API/a/"] = redirect("../b/")  # relative to /API/a/
    iconik.answers["/API/b/"] = redirect(f"{storage.url}/bucket/hop?sig={SIGNATURE}", 307)
    storage.answers["/bucket/hop"] = redirect(f"{iconik.url}/API/back/")
    iconik.answers["/API/back/"] = lambda request: Response(b"came back")

    async with client(iconik.url) as c:
        tokens: list[None] = []
        take = c.limiter.acquire

        async def counted() -> None:
            tokens.append(None)
            await take()

        c.limiter.acquire = counted  # type: ignore[method-assign]
        response = await c.request("GET", "/API/a/")

    assert response.content == b"came back"
    assert [r["path"] for r in iconik.seen] == ["/API/a/", "/API/b/", "/API/back/"]
    # Back on Iconik's host, but after storage had the chain: no token.
    assert [carried_credentials(r) for r in iconik.seen] == [True, True, False]
    assert not carried_credentials(storage.seen[0])
    # The rate limit counts the calls that carried the token, not storage's.
    assert len(tokens) == 2


@pytest.mark.parametrize(
    ("status", "method", "keeps_body"), [(303, "GET", False), (307, "POST", True)]
)
async def test_a_303_turns_a_post_into_a_get_a_307_keeps_it(origins, status, method, keeps_body):
    iconik, _ = origins
    iconik.answers["/API/jobs/v1/jobs/"] = redirect("/API/jobs/v1/jobs/j1/", status)
    iconik.answers["/API/jobs/v1/jobs/j1/"] = lambda request: JSONResponse({"id": "j1"})

    async with client(iconik.url) as c:
        assert await c.create_job({"title": "t"}) == {"id": "j1"}

    first, second = iconik.seen
    assert (first["method"], second["method"]) == ("POST", method)
    assert (second["body"] == first["body"]) is keeps_body
    assert carried_credentials(second)  # still Iconik's origin


async def test_a_redirect_loop_ends_with_a_clear_error(origins):
    iconik, storage = origins
    loop = f"{storage.url}/loop?sig={SIGNATURE}"
    iconik.answers["/API/files/v1/download/p1/"] = redirect(loop)
    storage.answers["/loop"] = redirect(loop)

    async with client(iconik.url) as c:
        with pytest.raises(BadResponse) as err:
            async with c.download(iconik.url + "/API/files/v1/download/p1/", what=WHAT):
                raise AssertionError("a loop must not open")

    assert str(err.value) == (
        "GET /API/files/v1/download/p1/: more than 5 redirects (the last to the signed "
        "storage URL on 127.0.0.1); refusing to follow"
    )
    # The request and five redirects, once: retrying cannot fix a loop.
    assert (len(iconik.seen), len(storage.seen)) == (1, 5)


# -- errors that say what happened ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "via_iconik"), [(401, False), (403, False), (403, True), (404, False), (410, True)]
)
async def test_a_refused_signed_url_is_not_blamed_on_iconik(origins, status, via_iconik):
    iconik, storage = origins
    signed = f"{storage.url}/bucket/p1.mp4?X-Amz-Signature={SIGNATURE}"
    iconik.answers["/API/files/v1/download/p1/"] = redirect(signed)
    # S3's error body quotes the signature; it must not reach the message.
    refusal = f"<Error><Code>AccessDenied</Code><SignatureProvided>{SIGNATURE}</SignatureProvided>"
    storage.answers["/bucket/p1.mp4"] = lambda request: Response(refusal, status)
    url = iconik.url + "/API/files/v1/download/p1/" if via_iconik else signed

    async with client(iconik.url) as c:
        with pytest.raises(SignedUrlRefused) as err:
            async with c.download(url, what=WHAT):
                raise AssertionError("a refusal must not open")

    assert str(err.value) == (
        f"signed storage URL expired or refused (HTTP {status}) for the proxy of asset a1; "
        "retrying with a fresh one"
    )
    assert isinstance(err.value, IconikError)  # the worker retries it
    assert not isinstance(err.value, CredentialsRejected | NotFound)
    assert len(storage.seen) == 1  # the same URL again would fail the same way


async def test_opening_that_keeps_failing_names_the_side_that_failed(origins):
    iconik, storage = origins
    storage.answers["/bucket/p1.mp4"] = lambda request: Response(b"", 503)
    iconik.answers["/API/files/v1/download/p1/"] = lambda request: Response(b"", 502)

    async with client(iconik.url) as c:
        with pytest.raises(IconikUnavailable) as from_storage:
            async with c.download(f"{storage.url}/bucket/p1.mp4?sig={SIGNATURE}", what=WHAT):
                pass
        with pytest.raises(IconikUnavailable) as from_iconik:
            async with c.download(iconik.url + "/API/files/v1/download/p1/", what=WHAT):
                pass

    assert str(from_storage.value) == (
        "download of the proxy of asset a1: the signed storage URL on 127.0.0.1 kept failing "
        "(HTTP 503) after 2 attempts; the storage service may be down, will retry"
    )
    assert str(from_iconik.value) == (
        "download of the proxy of asset a1: GET /API/files/v1/download/p1/: HTTP 502 after "
        "2 attempts; check Iconik's status and ICONIK_URL"
    )
    assert (len(storage.seen), len(iconik.seen)) == (2, 2)


# -- downloads that break half-way ---------------------------------------------

HALF = 500_000


def cut_short(sock: socket.socket) -> None:
    """Promise a megabyte, send half, hang up."""
    read_request_head(sock)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n"
    sock.sendall(head + b"x" * HALF)


@pytest.mark.parametrize("from_iconik", [False, True])
async def test_a_body_cut_short_is_an_interrupted_download_naming_its_source(from_iconik):
    with raw_tcp(cut_short) as url:
        signed = f"{url}/bucket/p1.mp4?sig={SIGNATURE}"
        async with client(url if from_iconik else NOWHERE) as c, c.download(signed, what=WHAT) as d:
            received = 0
            with pytest.raises(DownloadInterrupted) as err:
                async for chunk in d.chunks():
                    received += len(chunk)

    assert received <= HALF  # what came before the cut, in whole chunks (it is retried anyway)
    source = "Iconik" if from_iconik else "the signed storage URL on 127.0.0.1"
    assert str(err.value).startswith(
        f"download of the proxy of asset a1 from {source} was interrupted after {HALF} "
        "bytes (RemoteProtocolError"
    )
    assert str(err.value).endswith("; will retry")
    assert SIGNATURE not in str(err.value)
    assert isinstance(err.value, IconikError)  # the worker retries it


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so a stalling server thread always ends."""
    event = threading.Event()
    yield event
    event.set()


async def test_a_download_that_stalls_times_out_after_iconik_timeout_seconds(tmp_path, release):
    def stall_mid_body(sock: socket.socket) -> None:
        read_request_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        release.wait(60)

    settings = make_settings(tmp_path, iconik_url=NOWHERE, iconik_timeout_seconds=0.2)
    with raw_tcp(stall_mid_body) as url:
        signed = f"{url}/p1.mp4?sig={SIGNATURE}"
        async with iconik_client(settings) as c, c.download(signed, what=WHAT) as d:
            with pytest.raises(DownloadInterrupted) as err:
                await body(d)
        release.set()

    assert str(err.value) == (
        "download of the proxy of asset a1 from the signed storage URL on 127.0.0.1 was "
        "interrupted after 10 bytes (ReadTimeout); will retry"
    )


async def test_a_server_that_never_answers_is_retried_then_named(release):
    def stall_before_headers(sock: socket.socket) -> None:
        read_request_head(sock)
        release.wait(60)

    with raw_tcp(stall_before_headers) as url:
        async with client(NOWHERE, timeout=0.2) as c:
            with pytest.raises(IconikUnavailable) as err:
                async with c.download(f"{url}/p1.mp4?sig={SIGNATURE}", what=WHAT):
                    pass
        release.set()

    assert str(err.value) == (
        "download of the proxy of asset a1: the signed storage URL on 127.0.0.1 kept failing "
        "(ReadTimeout) after 2 attempts; the storage service may be down, will retry"
    )

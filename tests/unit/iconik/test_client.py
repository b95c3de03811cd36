"""Unit tests of the client's retry, paging and header rules (MockTransport).

The client is also exercised over real HTTP: redirects and download
failures in test_iconik_http.py, end to end against the simulator in
test_end_to_end.py.
"""

import httpx2
import pytest

from service.iconik.client import (
    BadResponse,
    CredentialsRejected,
    DownloadInterrupted,
    IconikClient,
    IconikUnavailable,
    NotFound,
    RateLimiter,
)

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self, responses):
        self.responses = list(responses)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.responses.pop(0)


async def body(download):
    return b"".join([chunk async for chunk in download.chunks()])


ASSET = "0a1b2c3d-0000-4000-8000-00000000a001"


def client(handler, waits=None, **kw):
    async def sleep(seconds):
        if waits is not None:
            waits.append(seconds)

    return IconikClient(
        "https://iconik.test",
        "app",
        "tok",
        transport=httpx2.MockTransport(handler),
        sleep=sleep,
        rng=lambda: 0.0,
        rate_limit=1000,
        **kw,
    )


async def test_429_is_retried_honouring_retry_after():
    waits, paused = [], []
    now = [0.0]

    async def limiter_sleep(seconds):
        paused.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(1000, clock=lambda: now[0], sleep=limiter_sleep)
    rec = Recorder(
        [
            httpx2.Response(429, headers={"Retry-After": "7"}),
            httpx2.Response(503),
            httpx2.Response(200, json={"id": ASSET}),
        ]
    )
    async with client(rec, waits, limiter=limiter) as c:
        assert await c.get_asset(ASSET) == {"id": ASSET}
    # The 429 paused the shared limiter for Retry-After (the retry waited
    # there, not in a sleep of its own); the 503 got the usual backoff.
    assert paused[0] == pytest.approx(7.0)
    assert waits == [0.5]  # backoff (attempt 2, no jitter)
    assert len(rec.requests) == 3


async def test_gives_up_after_max_attempts_with_a_clear_message():
    rec = Recorder([httpx2.Response(500)] * 3)
    async with client(rec, [], max_attempts=3) as c:
        with pytest.raises(IconikUnavailable, match="HTTP 500 after 3 attempts"):
            await c.get_asset(ASSET)


async def test_transport_errors_are_retried():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, json={"ok": True})

    async with client(handler, []) as c:
        assert await c.get_json("/API/x/") == {"ok": True}


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, CredentialsRejected), (403, CredentialsRejected), (404, NotFound), (400, BadResponse)],
)
async def test_final_statuses_are_not_retried(status, error):
    rec = Recorder([httpx2.Response(status, json={"errors": ["x"]})])
    async with client(rec, []) as c:
        with pytest.raises(error):
            await c.get_asset(ASSET)
    assert len(rec.requests) == 1


async def test_credentials_error_tells_what_to_check_without_the_token():
    rec = Recorder([httpx2.Response(401)])
    async with client(rec, []) as c:
        with pytest.raises(CredentialsRejected) as err:
            await c.get_asset(ASSET)
    assert "ICONIK_AUTH_TOKEN" in str(err.value) and "tok" not in str(err.value).split(":")[0]


async def test_next_url_paging():
    rec = Recorder(
        [
            httpx2.Response(200, json={"objects": [{"id": 1}], "next_url": "/API/c/?page=2"}),
            httpx2.Response(200, json={"objects": [{"id": 2}]}),
        ]
    )
    async with client(rec, []) as c:
        items = [i async for i in c.paginate("/API/c/")]
    assert items == [{"id": 1}, {"id": 2}]
    assert rec.requests[1].url.path == "/API/c/" and rec.requests[1].url.params["page"] == "2"


async def test_last_id_cursor_paging():
    rec = Recorder(
        [
            httpx2.Response(200, json={"objects": [{"id": "p1"}, {"id": "p2"}]}),
            httpx2.Response(200, json={"objects": [{"id": "p3"}]}),
        ]
    )
    async with client(rec, []) as c:
        items = [i async for i in c.paginate("/API/p/", {"per_page": 2}, cursor=True)]
    assert [i["id"] for i in items] == ["p1", "p2", "p3"]
    assert rec.requests[1].url.params["last_id"] == "p2"


async def test_credentials_never_go_to_a_signed_storage_url():
    rec = Recorder([httpx2.Response(200, content=b"media"), httpx2.Response(200, json={})])
    async with client(rec, []) as c:
        async with c.download("https://bucket.storage.test/x?sig=1") as d:
            assert await body(d) == b"media"
        await c.get_json("/API/y/")
    assert "auth-token" not in rec.requests[0].headers
    assert rec.requests[1].headers["auth-token"] == "tok"
    assert rec.requests[1].headers["app-id"] == "app"


async def test_rate_limiter_spaces_requests_beyond_a_small_burst():
    now = [0.0]
    waits = []

    async def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    assert limiter.burst == 3
    for _ in range(25):
        await limiter.acquire()
    # 3 at once, then one every 0.1 s: 22 more take 2.2 s of (fake) time.
    assert now[0] == pytest.approx(2.2)
    assert len(waits) == 22


async def test_download_retries_opening_but_takes_no_rate_limit_token():
    waits = []
    rec = Recorder([httpx2.Response(503), httpx2.Response(200, content=b"media-bytes")])
    async with client(rec, waits) as c:
        tokens_before = c.limiter.budget._tokens
        async with c.download("https://bucket.storage.test/p?sig=secret-signature") as d:
            assert await body(d) == b"media-bytes"
        assert c.limiter.budget._tokens == tokens_before  # storage traffic is not Iconik's API
    assert len(rec.requests) == 2 and waits == [0.25]


async def test_download_transport_error_does_not_quote_the_signed_url():
    def handler(request):
        raise httpx2.ConnectError(f"cannot reach {request.url}", request=request)

    async with client(handler, [], max_attempts=2) as c:
        with pytest.raises(IconikUnavailable) as err:
            async with c.download("https://bucket.storage.test/p?sig=secret-signature"):
                pass
    assert "secret-signature" not in str(err.value)
    assert "ConnectError" in str(err.value)


async def test_a_body_shorter_than_its_content_length_is_an_interrupted_download():
    # A transport that ends the stream early without raising: the client's
    # own Content-Length check is what notices.
    def handler(request):
        return httpx2.Response(200, headers={"Content-Length": "100"}, content=b"only-these")

    signed = "https://bucket.storage.test/p?sig=s3cr3t"
    async with client(handler, []) as c, c.download(signed, what="the proxy") as d:
        with pytest.raises(DownloadInterrupted) as err:
            await body(d)
    message = str(err.value)
    assert message == (
        "download of the proxy from the signed storage URL on bucket.storage.test was "
        "interrupted after 10 of 100 bytes (the connection ended early); will retry"
    )

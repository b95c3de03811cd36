"""How the Iconik client sends one request: retried, redirected hop by hop, paced.

The seam between the client's surface (service/iconik/client.py: which
calls, which paths) and httpx: `Transport.send` takes a method and a URL and
gives back the final answer, or the exception that says what an operator
should check.

- Retries with backoff what is worth retrying (429, 5xx, transport errors),
  each time from the first URL (a redirect may hand out a fresh signed URL),
  honouring Retry-After; the statuses retrying cannot fix raise at once.
- Follows redirects here, hop by hop, not in httpx: the `App-ID` and
  `Auth-Token` headers go only to Iconik's own origin, never to a signed
  storage URL nor along a redirect that left Iconik (the rules are in
  service/iconik/transfer.py).
- Spends a token of the rate limiter (one per process, shared by every
  worker) per hop to Iconik, and pauses every worker on Iconik's 429.

One `httpx2.AsyncClient` (one connection pool) for API calls, and a second,
blocking client (`httpx2.Client`) for downloads: their bodies are read by a
thread of their own (service/iconik/transfer.py). `transport` (an
`httpx2.MockTransport`) is the seam for unit tests; both clients use it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2

from service.iconik.errors import (
    BadResponse,
    CredentialsRejected,
    IconikUnavailable,
    NotFound,
    NotPermitted,
    SignedUrlRefused,
    UserTokenRefused,
)
from service.iconik.json_stream import JsonStream
from service.iconik.ratelimit import RateLimiter, pause_for
from service.iconik.transfer import REDIRECT_STATUSES, Hop, Origin, close, send_download
from service.logging import get_logger

log = get_logger("service.iconik.transport")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 5


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Transport:
    """One request at a time to Iconik (or a storage URL it hands out), as the client sends it.

    `origin` is Iconik's (ICONIK_URL's): the only one that sees the
    credentials. `as_user(token)` is the same transport speaking for the
    clicking user; `user_token` is that token on such a view, else None.
    """

    def __init__(
        self,
        origin: Origin,
        app_id: str | None,
        auth_token: str | None,
        *,
        limiter: RateLimiter,
        max_attempts: int = 5,
        transport: httpx2.MockTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: Callable[[], float] = random.random,
        timeout: float = 30.0,
    ) -> None:
        self.origin = origin
        self._auth = {"App-ID": app_id or "", "Auth-Token": auth_token or ""}
        # One limiter per process, shared by every worker (and, through its
        # budget, by every replica once that budget lives in the database).
        # `sleep` is for retry waits; the limiter keeps real time of its own.
        self.limiter = limiter
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._rng = rng
        options: dict[str, Any] = {
            "transport": transport,
            # One Iconik call or one download chunk: ICONIK_TIMEOUT_SECONDS.
            "timeout": httpx2.Timeout(timeout, connect=10.0),
            "limits": httpx2.Limits(max_connections=50, max_keepalive_connections=20),
            "follow_redirects": False,  # _follow does it, to keep credentials on Iconik's origin
        }
        self.http = httpx2.AsyncClient(**options)
        self.downloads = httpx2.Client(**options)
        self.user_token: str | None = None  # set on an `as_user` view only

    def as_user(self, token: str) -> Transport:
        """This transport with the clicking user's token: the same pools and limiter."""
        view = copy.copy(self)
        view._auth = {**self._auth, "Auth-Token": token}
        view.user_token = token
        return view

    async def aclose(self) -> None:
        """Closes the connection pools (an `as_user` view's are its parent's: call it there)."""
        await self.http.aclose()
        self.downloads.close()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 120.0)
        ceiling: float = min(30.0, 0.5 * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng() * ceiling / 2

    async def send(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        *,
        stream: bool = False,
        limited: bool = False,
        what: str | None = None,
    ) -> tuple[httpx2.Response, Hop]:
        """The retry loop both API calls and downloads share.

        Retries transport errors, 429 and 5xx with backoff (honouring
        Retry-After), each time from the first URL (a redirect may hand out
        a fresh signed URL); raises at once on the statuses retrying cannot
        fix. `limited` spends a rate-limit token per hop that goes to Iconik;
        `what` names the download in errors. Returns the final answer and
        the hop that gave it.
        """
        first = Hop.first(method, url, self.origin)
        for attempt in range(1, self.max_attempts + 1):
            outcome, hop = await self._follow(first, params, json, stream=stream, limited=limited)
            if isinstance(outcome, httpx2.TransportError):
                # A signed storage URL's error text may quote the URL: name only.
                detail = f": {outcome}" if hop.iconik else ""
                problem = f"{type(outcome).__name__}{detail}"
                wait = self._backoff(attempt, None)
            else:
                response = outcome
                if response.status_code < 400:
                    return response, hop
                await close(response)
                if hop.iconik:
                    _raise_for_final(hop.target, response, self.user_token)
                elif response.status_code not in RETRY_STATUSES:
                    raise SignedUrlRefused(
                        f"signed storage URL expired or refused (HTTP {response.status_code}) "
                        f"for {what or first.target}; retrying with a fresh one"
                    )
                problem = f"HTTP {response.status_code}"
                if response.status_code == 429 and hop.iconik and limited:
                    wait = 0.0  # _follow paused the shared limiter: the retry waits there
                else:
                    wait = self._backoff(attempt, _retry_after(response))
            if attempt == self.max_attempts:
                raise _unavailable(hop, problem, attempt, what)
            log.info("iconik.retry", target=hop.target, problem=problem, wait=wait)
            if wait > 0:
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def _follow(
        self,
        hop: Hop,
        params: dict[str, Any] | None,
        json: Any,
        *,
        stream: bool,
        limited: bool,
    ) -> tuple[httpx2.Response | httpx2.TransportError, Hop]:
        """One try: the request and the redirects it leads to, up to a final answer.

        Credentials (and rate-limit tokens) only while the chain has stayed
        on Iconik's origin (service/iconik/transfer.py says why). A transport error
        is returned, with the hop it happened on, for the retry loop.
        """
        first = hop
        for _ in range(MAX_REDIRECTS + 1):
            if limited and hop.iconik:
                await self.limiter.acquire()
            headers = dict(self._auth) if hop.iconik else {}
            body: dict[str, Any] = {"json": json}
            if isinstance(json, JsonStream):  # a large text, sent in pieces
                body = {"content": json}
                headers.update(json.headers)
            request = self.http.build_request(
                hop.method, hop.url, params=params, headers=headers, **body
            )
            try:
                if stream:
                    response = await send_download(self.downloads, request)
                else:
                    response = await self.http.send(request)
            except httpx2.TransportError as exc:
                return exc, hop
            if limited and hop.iconik:
                pause = pause_for(response.status_code, response.headers)
                if pause is not None:
                    # Iconik's limit is per token: every worker stops, not just this one.
                    log.warning("iconik.rate_limited", status=response.status_code, pause=pause)
                    await self.limiter.pause(pause)
            if response.status_code not in REDIRECT_STATUSES:
                return response, hop
            await close(response)
            next_hop = hop.redirected(request.url, response, self.origin)
            if next_hop.method != hop.method:
                json = None  # 303 (or 301/302 after a POST): a GET has no body
            # The Location is the whole next URL, its query included.
            hop, params = next_hop, None
        raise BadResponse(
            f"{first.target}: more than {MAX_REDIRECTS} redirects (the last to "
            f"{hop.target}); refusing to follow"
        )


def _unavailable(hop: Hop, problem: str, attempts: int, what: str | None) -> IconikUnavailable:
    prefix = f"download of {what}: " if what else ""
    if hop.iconik:
        return IconikUnavailable(
            f"{prefix}{hop.target}: {problem} after {attempts} attempts; check Iconik's "
            "status and ICONIK_URL"
        )
    return IconikUnavailable(
        f"{prefix}{hop.target} kept failing ({problem}) after {attempts} attempts; "
        "the storage service may be down, will retry"
    )


def _raise_for_final(where: str, response: httpx2.Response, user_token: str | None) -> None:
    status = response.status_code
    if user_token is not None and status == 401:
        raise UserTokenRefused(f"{where}: Iconik refused the clicking user's token (401)")
    if user_token is not None and status == 403:
        raise NotPermitted(f"{where}: the clicking user may not read this (403)")
    if status in (401, 403):
        raise CredentialsRejected(
            f"{where}: Iconik answered {status}; check ICONIK_APP_ID and "
            "ICONIK_AUTH_TOKEN and that the token's user may read assets, files and metadata"
        )
    if status == 404:
        raise NotFound(f"{where}: not found in Iconik")
    if status not in RETRY_STATUSES:
        try:
            excerpt = response.text[:300]
        except httpx2.ResponseNotRead:  # a streamed download we did not read
            excerpt = ""
        if user_token:  # an answer may quote the request; never the user's token
            excerpt = excerpt.replace(user_token, "[redacted]")
        raise BadResponse(f"{where}: Iconik answered {status}: {excerpt}")

"""An async client for the parts of Iconik's REST API the service uses.

One `httpx2.AsyncClient` (one connection pool) per process, one rate limiter
shared by every worker of the process, retries with backoff for what is
worth retrying (429, 5xx, transport errors), and exceptions that say what an
operator should check.

Redirects are followed here, hop by hop, not by httpx: the `App-ID` and
`Auth-Token` headers go only to Iconik's own origin, never to a signed
storage URL nor along a redirect that left Iconik (the rules are in
service/iconik/transfer.py).

Downloads go through a second, blocking client (`httpx2.Client`): their
bodies are read by a thread of their own (service/iconik/transfer.py), opening
them (hop by hop, as above) costs a worker thread per request.

Nothing reaches a URL unchecked (service/iconik/paths.py): ids must be
Iconik ids, API paths words and ids, download URLs http(s) to a host.

`for_user(token)` is the same client reading with the clicking user's
token (service/work/expand.py): the same connections and rate limiter, GETs and
the search only, and that user's 401/403 told apart from the application's.

`transport` is the seam for tests: pass `httpx2.MockTransport` (both kinds
of client use it) for unit tests of one function; the end-to-end tests
point `base_url` at the simulator instead.
"""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx2

from service.iconik.endpoints import IconikEndpoints

# The errors have their own module (service.iconik.transfer raises some too);
# callers keep importing them from here, hence `X as X`.
from service.iconik.errors import BadResponse as BadResponse
from service.iconik.errors import CredentialsRejected as CredentialsRejected
from service.iconik.errors import DownloadInterrupted as DownloadInterrupted
from service.iconik.errors import IconikError as IconikError
from service.iconik.errors import IconikUnavailable as IconikUnavailable
from service.iconik.errors import NotFound as NotFound
from service.iconik.errors import NotPermitted as NotPermitted
from service.iconik.errors import SignedUrlRefused as SignedUrlRefused
from service.iconik.errors import UnusableId as UnusableId
from service.iconik.errors import UnusableUrl as UnusableUrl
from service.iconik.errors import UserTokenRefused as UserTokenRefused
from service.iconik.json_stream import JsonStream
from service.iconik.paths import checked_download_url, checked_path
from service.iconik.ratelimit import RateLimiter as RateLimiter
from service.iconik.ratelimit import pause_for
from service.iconik.transfer import (
    CHUNK_BYTES,
    REDIRECT_STATUSES,
    Download,
    Hop,
    close,
    origin,
    send_download,
)
from service.logging import get_logger

log = get_logger("service.iconik.client")

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# What a `for_user` view may send besides GETs: the search, a read.
_USER_CALLS = frozenset({("POST", "/API/search/v1/search/")})
MAX_REDIRECTS = 5


class ResponseTooLarge(Exception):
    """A body over the caller's cap, refused before or while reading it.

    Not an `IconikError`: retrying cannot make it smaller. `size` is the
    Content-Length when that was what refused it, None when the body was
    cut off after `limit` bytes.
    """

    def __init__(self, what: str, limit: int, size: int | None = None) -> None:
        self.what, self.limit, self.size = what, limit, size
        super().__init__(f"{what} is larger than {self.comparison}")

    @property
    def comparison(self) -> str:
        """ "(314,572,800 > 20,971,520 bytes)", or "(more than 20,971,520 bytes)"."""
        if self.size is not None:
            return f"({self.size:,} > {self.limit:,} bytes)"
        return f"(more than {self.limit:,} bytes)"


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class IconikClient(IconikEndpoints):
    def __init__(
        self,
        base_url: str,
        app_id: str | None,
        auth_token: str | None,
        *,
        rate_limit: float = 45,
        limiter: RateLimiter | None = None,
        max_attempts: int = 5,
        transport: httpx2.MockTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: Callable[[], float] = random.random,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = origin(httpx2.URL(self.base_url))
        self._auth = {"App-ID": app_id or "", "Auth-Token": auth_token or ""}
        # One limiter per process, shared by every worker (and, through its
        # budget, by every replica once that budget lives in the database).
        # `sleep` is for retry waits; the limiter keeps real time of its own.
        self.limiter = limiter or RateLimiter(rate_limit)
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
        self._http = httpx2.AsyncClient(**options)
        self._downloads = httpx2.Client(**options)
        self._user_token: str | None = None  # set on a `for_user` view only

    def for_user(self, token: str) -> IconikClient:
        """This client, reading with the clicking user's token instead of the application's.

        Shares the connections and the rate limiter (closing it closes
        nothing); makes GETs and searches only; a 401 is `UserTokenRefused`
        and a 403 `NotPermitted`, never "check ICONIK_AUTH_TOKEN".
        """
        view = copy.copy(self)
        view._auth = {**self._auth, "Auth-Token": token}
        view._user_token = token
        return view

    async def aclose(self) -> None:
        if self._user_token is not None:
            return  # a view: the pools are its parent's
        await self._http.aclose()
        self._downloads.close()
        # The limiter's budget is not closed here: whoever opened it closes it
        # (service/compose.py, for the budget the replicas share).

    async def __aenter__(self) -> IconikClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport ---------------------------------------------------------

    def _api_url(self, path_or_url: str) -> str:
        """The URL of an API call: an /API/ path (or a URL on Iconik's own origin, as a
        `next_url` may be), checked segment by segment."""
        if path_or_url.startswith(("http://", "https://")):
            url = httpx2.URL(path_or_url)
            if origin(url) != self._origin:
                raise UnusableId(
                    "refusing an Iconik API call to another origin than ICONIK_URL's; "
                    "nothing was asked of it"
                )
            path = url.raw_path.decode("ascii", "replace")
        else:
            path = path_or_url
        return self.base_url + checked_path(path)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 120.0)
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng() * ceiling / 2

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx2.Response:
        """One API call, rate-limited and retried; raises on anything but 2xx."""
        user_write = method != "GET" and (method, path) not in _USER_CALLS
        if self._user_token is not None and user_write:
            raise UnusableId(f"the clicking user's token is for reads only, not {method}")
        response, _ = await self._send(method, self._api_url(path), params, json, limited=True)
        return response

    async def _send(
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
        first = Hop.first(method, url, self._origin)
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
                    self._raise_for_final(hop.target, response, self._user_token)
                elif response.status_code not in _RETRY_STATUSES:
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
                raise self._unavailable(hop, problem, attempt, what)
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
            request = self._http.build_request(
                hop.method, hop.url, params=params, headers=headers, **body
            )
            try:
                if stream:
                    response = await send_download(self._downloads, request)
                else:
                    response = await self._http.send(request)
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
            next_hop = hop.redirected(request.url, response, self._origin)
            if next_hop.method != hop.method:
                json = None  # 303 (or 301/302 after a POST): a GET has no body
            # The Location is the whole next URL, its query included.
            hop, params = next_hop, None
        raise BadResponse(
            f"{first.target}: more than {MAX_REDIRECTS} redirects (the last to "
            f"{hop.target}); refusing to follow"
        )

    @staticmethod
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

    @staticmethod
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
        if status not in _RETRY_STATUSES:
            try:
                excerpt = response.text[:300]
            except httpx2.ResponseNotRead:  # a streamed download we did not read
                excerpt = ""
            if user_token:  # an answer may quote the request; never the user's token
                excerpt = excerpt.replace(user_token, "[redacted]")
            raise BadResponse(f"{where}: Iconik answered {status}: {excerpt}")

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self.request("GET", path, params=params)
        try:
            return response.json()
        except ValueError:
            raise BadResponse(f"GET {path}: response is not JSON") from None

    async def paginate(
        self, path: str, params: dict[str, Any] | None = None, *, cursor: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a list endpoint, across pages.

        Follows `next_url` (a path) where Iconik gives one; on cursor
        endpoints (proxies, files, subtitles) asks for `last_id` after a full
        page instead.
        """
        first_query = {"per_page": 100, **(params or {})}
        per_page = int(first_query["per_page"])
        query: dict[str, Any] | None = first_query
        next_path: str | None = path
        seen_pages = 0
        while next_path:
            page = await self.get_json(next_path, query)
            seen_pages += 1
            if seen_pages > 10_000:
                raise BadResponse(f"GET {path}: more than 10000 pages; refusing to loop")
            objects = page.get("objects") or []
            for item in objects:
                yield item
            if page.get("next_url"):
                # next_url carries its own query; extra params would replace it.
                next_path, query = page["next_url"], None
            elif cursor and len(objects) >= per_page and objects[-1].get("id"):
                next_path = path
                query = {**(query or {}), "per_page": per_page, "last_id": objects[-1]["id"]}
            else:
                next_path = None

    @asynccontextmanager
    async def download(self, url: str, *, what: str = "a file") -> AsyncIterator[Download]:
        """Open `url` for streaming; the caller hands the download to storage's
        `write_body` (or iterates `download.chunks()`).

        `what` names the file in errors ("the proxy of asset X"). Opening is
        retried and follows redirects; nothing is buffered. An error half-way
        through the body is a `DownloadInterrupted` for the caller, whose task
        is retried as a whole (with a fresh signed URL). The body's reader has
        ended before this closes the response (`write_body` waits for it).
        """
        url = checked_download_url(url, what)
        response, hop = await self._send("GET", url, stream=True, what=what)
        try:
            yield Download(
                response,
                what,
                source="Iconik" if hop.iconik else hop.target,
                quote_errors=hop.iconik,
            )
        finally:
            await close(response)

    async def read_capped(self, url: str, *, limit: int, what: str, api: bool = False) -> bytes:
        """The whole body of `url` (an API path or a signed URL), if at most `limit` bytes.

        For files read into memory (caption tracks): a Content-Length over
        the limit is refused before any of the body is read; without one,
        the body is counted as it arrives (decoded: a compressed body is
        counted as what it expands to) and cut off once it passes the
        limit. No more than `limit` bytes of it are ever held, plus one
        chunk on its way. Raises `ResponseTooLarge`; `api` spends a rate-limit
        token per hop to Iconik, as an API call does.
        """
        # An API path (a track) is checked as one; a URL Iconik gave must be http(s).
        relative = api or url.startswith("/")
        url = self._api_url(url) if relative else checked_download_url(url, what)
        response, hop = await self._send("GET", url, stream=True, limited=api, what=what)
        try:
            download = Download(
                response,
                what,
                source="Iconik" if hop.iconik else hop.target,
                quote_errors=hop.iconik,
            )
            if download.size is not None and download.size > limit:
                raise ResponseTooLarge(what, limit, download.size)
            body = bytearray()
            chunks = download.blocking_chunks(min(CHUNK_BYTES, limit + 1))
            try:
                while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
                    if len(body) + len(chunk) > limit:
                        raise ResponseTooLarge(what, limit)
                    body += chunk
            finally:
                chunks.close()
            return bytes(body)
        finally:
            await close(response)  # unread, the connection is closed, not drained

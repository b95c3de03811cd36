"""An async client for the parts of Iconik's REST API the service uses.

`IconikClient` is the surface: API calls by path (`request`, `get_json`,
`paginate`), downloads (`download`, `read_capped`), and the calls the work
needs by name (service/iconik/endpoints.py, service/iconik/search.py). How
one request is sent (retries with backoff, redirects followed hop by hop
with credentials to Iconik's origin only, the rate limit, the blocking
download client) is service/iconik/transport.py's. One client (one
connection pool, one rate limiter shared by every worker) per process;
its exceptions say what an operator should check.

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
from service.iconik.paths import checked_download_url, checked_path
from service.iconik.ratelimit import RateLimiter as RateLimiter
from service.iconik.transfer import CHUNK_BYTES, Download, close, origin
from service.iconik.transport import Transport

# What a `for_user` view may send besides GETs: the search, a read.
_USER_CALLS = frozenset({("POST", "/API/search/v1/search/")})


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
        self._transport = Transport(
            origin(httpx2.URL(self.base_url)),
            app_id,
            auth_token,
            limiter=limiter or RateLimiter(rate_limit),
            max_attempts=max_attempts,
            transport=transport,
            sleep=sleep,
            rng=rng,
            timeout=timeout,
        )

    @property
    def limiter(self) -> RateLimiter:
        """The process's rate limiter, shared by every worker (and every `for_user` view)."""
        return self._transport.limiter

    @property
    def max_attempts(self) -> int:
        return self._transport.max_attempts

    def for_user(self, token: str) -> IconikClient:
        """This client, reading with the clicking user's token instead of the application's.

        Shares the connections and the rate limiter (closing it closes
        nothing); makes GETs and searches only; a 401 is `UserTokenRefused`
        and a 403 `NotPermitted`, never "check ICONIK_AUTH_TOKEN".
        """
        view = copy.copy(self)
        view._transport = self._transport.as_user(token)
        return view

    async def aclose(self) -> None:
        if self._transport.user_token is not None:
            return  # a view: the pools are its parent's
        await self._transport.aclose()
        # The limiter's budget is not closed here: whoever opened it closes it
        # (service/compose.py, for the budget the replicas share).

    async def __aenter__(self) -> IconikClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _api_url(self, path_or_url: str) -> str:
        """The URL of an API call: an /API/ path (or a URL on Iconik's own origin, as a
        `next_url` may be), checked segment by segment."""
        if path_or_url.startswith(("http://", "https://")):
            url = httpx2.URL(path_or_url)
            if origin(url) != self._transport.origin:
                raise UnusableId(
                    "refusing an Iconik API call to another origin than ICONIK_URL's; "
                    "nothing was asked of it"
                )
            path = url.raw_path.decode("ascii", "replace")
        else:
            path = path_or_url
        return self.base_url + checked_path(path)

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx2.Response:
        """One API call, rate-limited and retried; raises on anything but 2xx."""
        user_write = method != "GET" and (method, path) not in _USER_CALLS
        if self._transport.user_token is not None and user_write:
            raise UnusableId(f"the clicking user's token is for reads only, not {method}")
        url = self._api_url(path)
        response, _ = await self._transport.send(method, url, params, json, limited=True)
        return response

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
        response, hop = await self._transport.send("GET", url, stream=True, what=what)
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
        response, hop = await self._transport.send("GET", url, stream=True, limited=api, what=what)
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

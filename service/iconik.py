"""An async client for the parts of Iconik's REST API the service uses.

One `httpx2.AsyncClient` (one connection pool) per process, one rate limiter
shared by every worker of the process, retries with backoff for what is
worth retrying (429, 5xx, transport errors), and exceptions that say what an
operator should check.

Redirects are followed here, hop by hop, not by httpx: the `App-ID` and
`Auth-Token` headers go only to Iconik's own origin, never to a signed
storage URL nor along a redirect that left Iconik (the rules are in
service/transfer.py).

Downloads go through a second, blocking client (`httpx2.Client`): their
bodies are read by a thread of their own (service/transfer.py), opening
them (hop by hop, as above) costs a worker thread per request.

`transport` is the seam for tests: pass `httpx2.MockTransport` (both kinds
of client use it) for unit tests of one function; the end-to-end tests
point `base_url` at the simulator instead.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx2

# The errors have their own module (service.transfer raises some too);
# callers keep importing them from here, hence `X as X`.
from service.iconik_errors import BadResponse as BadResponse
from service.iconik_errors import CredentialsRejected as CredentialsRejected
from service.iconik_errors import DownloadInterrupted as DownloadInterrupted
from service.iconik_errors import IconikError as IconikError
from service.iconik_errors import IconikUnavailable as IconikUnavailable
from service.iconik_errors import NotFound as NotFound
from service.iconik_errors import SignedUrlRefused as SignedUrlRefused
from service.json_stream import JsonStream
from service.logging import get_logger
from service.ratelimit import RateLimiter as RateLimiter
from service.ratelimit import pause_for
from service.transfer import (
    CHUNK_BYTES,
    REDIRECT_STATUSES,
    Download,
    Hop,
    close,
    origin,
    send_download,
)

log = get_logger("service.iconik")

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
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


class IconikClient:
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

    async def aclose(self) -> None:
        await self._http.aclose()
        self._downloads.close()
        close_budget = getattr(self.limiter.budget, "aclose", None)
        if close_budget is not None:  # a shared budget holds a database connection
            await close_budget()

    async def __aenter__(self) -> IconikClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport ---------------------------------------------------------

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + path_or_url

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 120.0)
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng() * ceiling / 2

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx2.Response:
        """One API call, rate-limited and retried; raises on anything but 2xx."""
        response, _ = await self._send(method, self._url(path), params, json, limited=True)
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
                    self._raise_for_final(hop.target, response)
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
        on Iconik's origin (service/transfer.py says why). A transport error
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
    def _raise_for_final(where: str, response: httpx2.Response) -> None:
        status = response.status_code
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
        response, hop = await self._send("GET", self._url(url), stream=True, what=what)
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
        response, hop = await self._send("GET", self._url(url), stream=True, limited=api, what=what)
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

    # -- the API, by what the worker needs ------------------------------------

    async def get_asset(self, asset_id: str) -> dict[str, Any]:
        return await self.get_json(f"/API/assets/v1/assets/{asset_id}/")

    async def list_proxies(self, asset_id: str) -> list[dict[str, Any]]:
        params = {"generate_signed_url": "true", "content_disposition": "attachment"}
        path = f"/API/files/v1/assets/{asset_id}/proxies/"
        return [p async for p in self.paginate(path, params, cursor=True)]

    async def proxy_download_url(self, asset_id: str, proxy_id: str) -> str:
        body = await self.get_json(
            f"/API/files/v1/assets/{asset_id}/proxies/{proxy_id}/download_url/"
        )
        return _url_of(body, f"proxy {proxy_id} of asset {asset_id}")

    async def list_files(self, asset_id: str) -> list[dict[str, Any]]:
        params = {"generate_signed_url": "true", "content_disposition": "attachment"}
        path = f"/API/files/v1/assets/{asset_id}/files/"
        return [f async for f in self.paginate(path, params, cursor=True)]

    async def file_download_url(self, asset_id: str, file_id: str) -> str:
        body = await self.get_json(f"/API/files/v1/assets/{asset_id}/files/{file_id}/download_url/")
        return _url_of(body, f"file {file_id} of asset {asset_id}")

    async def list_subtitles(self, asset_id: str) -> list[dict[str, Any]]:
        path = f"/API/files/v1/assets/{asset_id}/subtitles/"
        return [s async for s in self.paginate(path, cursor=True)]

    def subtitle_path(self, asset_id: str, language: str, closed_captions: bool) -> str:
        cc = "cc/" if closed_captions else ""
        return f"/API/files/v1/assets/{asset_id}/subtitles/{language}/{cc}webvtt/"

    async def metadata_view(self, asset_id: str, view_id: str) -> dict[str, Any]:
        return await self.get_json(f"/API/metadata/v1/assets/{asset_id}/views/{view_id}/")

    async def collection_contents(self, collection_id: str) -> AsyncIterator[dict[str, Any]]:
        path = f"/API/assets/v1/collections/{collection_id}/contents/"
        async for item in self.paginate(path):
            yield item

    # Writing a caption track (service/deliver.py): its format, then the subtitle.

    async def create_format(self, asset_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/API/files/v1/assets/{asset_id}/formats/"
        return _object_of(await self.request("POST", path, json=body), f"POST {path}")

    async def create_subtitle(
        self, asset_id: str, body: dict[str, Any] | JsonStream
    ) -> dict[str, Any]:
        path = f"/API/files/v1/assets/{asset_id}/subtitles/"
        return _object_of(await self.request("POST", path, json=body), f"POST {path}")

    async def update_subtitle(
        self, asset_id: str, subtitle_id: str, body: dict[str, Any] | JsonStream
    ) -> dict[str, Any]:
        path = f"/API/files/v1/assets/{asset_id}/subtitles/{subtitle_id}/"
        return _object_of(await self.request("PUT", path, json=body), f"PUT {path}")

    async def create_job(self, job: dict[str, Any]) -> dict[str, Any]:
        response = await self.request("POST", "/API/jobs/v1/jobs/", json=job)
        return response.json()

    async def update_job(self, job_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        response = await self.request("PATCH", f"/API/jobs/v1/jobs/{job_id}/", json=changes)
        return response.json()


def _object_of(response: httpx2.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("id"):
        raise BadResponse(f"{what}: Iconik's answer has no id")
    return body


def _url_of(body: Any, what: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("url"), str) and body["url"]:
        return body["url"]
    raise BadResponse(f"Iconik gave no download URL for {what}")

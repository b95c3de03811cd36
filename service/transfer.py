"""How one request travels: the hops of a redirect chain, and a streamed body.

The rules the Iconik client's retry loop (service/iconik.py) applies:

- A hop is Iconik's, and carries `App-ID`/`Auth-Token`, only while the
  chain has stayed on Iconik's origin (scheme, host, port of ICONIK_URL).
  Once it has left, no later hop is, even one that comes back: a storage
  service could redirect anywhere, including to a URL of Iconik's host
  that should not see the token. httpx, following redirects itself, would
  strip only `Authorization`.
- Messages name a hop by Iconik's API path, or by a storage host only: a
  signed URL's query holds its signature.
- A body's failures half-way (reset, read timeout, fewer bytes than the
  Content-Length) become `DownloadInterrupted`, an `IconikError`, so the
  worker retries the task and says why instead of reporting an internal
  error with a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpcore2
import httpx2

from service.iconik_errors import BadResponse, DownloadInterrupted

Origin = tuple[str, str, int | None]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 1024 * 1024

# httpcore asks its socket for at most 64 KiB at a time, and every read is a
# trip through anyio, h11 and httpx's chunker on the event loop: 16,000 per
# GiB, about a third of a copy's CPU. A read returns whatever has arrived,
# never waits for more, so a larger ceiling only means fewer, fuller reads
# (the kernel hands over up to ~256 KiB at once on a busy download).
httpcore2.AsyncHTTP11Connection.READ_NUM_BYTES = CHUNK_BYTES


def origin(url: httpx2.URL) -> Origin:
    # httpx lower-cases the host and drops a default port, so
    # https://app.iconik.io and https://APP.iconik.io:443 are one origin.
    return (url.scheme, url.host, url.port)


@dataclass(frozen=True)
class Hop:
    """One request of a redirect chain, and whether it is Iconik's (carries the token)."""

    method: str
    url: httpx2.URL
    iconik: bool

    @classmethod
    def first(cls, method: str, url: str, home: Origin) -> Hop:
        parsed = httpx2.URL(url)
        return cls(method, parsed, origin(parsed) == home)

    @property
    def target(self) -> str:
        """How messages and logs name it: Iconik's API path, or only a storage host."""
        if self.iconik:
            return f"{self.method} {self.url.path}"
        return f"the signed storage URL on {self.url.host}"

    def redirected(self, requested: httpx2.URL, response: httpx2.Response, home: Origin) -> Hop:
        """The hop a redirect answer leads to; `requested` is the URL that answered it."""
        status = response.status_code
        location = response.headers.get("location")
        try:
            # A relative Location resolves against the URL actually requested.
            target = requested.join(location) if location else None
        except httpx2.InvalidURL:
            target = None
        if target is None or target.scheme not in ("http", "https"):
            raise BadResponse(
                f"{self.target}: a redirect (HTTP {status}) without a usable Location"
            )
        method = self.method
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"  # what browsers and httpx do; the caller drops the body
        return Hop(method, target, self.iconik and origin(target) == home)


class Download:
    """An opened download: status and headers are in; `chunks()` streams the body.

    `source` names where it comes from in messages ("Iconik", or "the signed
    storage URL on <host>"); `quote_errors` is False for storage, whose
    transport errors may quote the signed URL.
    """

    def __init__(
        self, response: httpx2.Response, what: str, *, source: str, quote_errors: bool
    ) -> None:
        self.response = response
        self.what = what
        self.source = source
        self._quote_errors = quote_errors

    @property
    def size(self) -> int | None:
        """The Content-Length the server announced, if any."""
        try:
            return int(self.response.headers["content-length"])
        except (KeyError, ValueError):
            return None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in chunks of about a MiB; never more than one is held."""
        yielded = 0
        try:
            # About a MiB per chunk: every chunk costs the event loop a trip
            # through the storage writer, and 64 KiB ones made 16,000 per GiB.
            async for chunk in self.response.aiter_bytes(CHUNK_BYTES):
                yielded += len(chunk)
                yield chunk
        except httpx2.TransportError as exc:  # reset, short body, ReadTimeout, ...
            detail = f": {exc}" if self._quote_errors else ""
            raise self._interrupted(
                f"after {self._received(yielded)} bytes ({type(exc).__name__}{detail})"
            ) from None
        # The transport usually notices a short body itself; not every one does.
        expected, received = self.size, self._received(yielded)
        if expected is not None and received < expected:
            raise self._interrupted(
                f"after {received} of {expected} bytes (the connection ended early)"
            )

    def _received(self, yielded: int) -> int:
        # Content-Length counts the bytes on the wire, including those still
        # gathering into the next chunk; without a content encoding they are
        # at least the bytes already handed on (some transports count none).
        wire = self.response.num_bytes_downloaded
        encoding = self.response.headers.get("content-encoding", "identity").lower()
        return max(yielded, wire) if encoding == "identity" else wire

    def _interrupted(self, how: str) -> DownloadInterrupted:
        return DownloadInterrupted(
            f"download of {self.what} from {self.source} was interrupted {how}; will retry"
        )

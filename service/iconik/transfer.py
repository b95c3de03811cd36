"""How one request travels: the hops of a redirect chain, and a streamed body.

The rules the Iconik client's retry loop (service/iconik/transport.py) applies:

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

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass

import anyio.to_thread
import httpcore2
import httpx2

from service.iconik.errors import BadResponse, DownloadInterrupted

Origin = tuple[str, str, int | None]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 1024 * 1024

# Bodies are read by blocking calls in a thread (`Download.blocking_chunks`).
# httpcore asks its socket for at most 64 KiB at a time, and each read is a
# pass through h11 and httpx in Python: 16,000 per GiB. A read returns
# whatever has arrived, never waits for more, so a larger ceiling only means
# fewer, fuller reads; a MiB is not better, as each read allocates its
# ceiling afresh (fresh pages, faulted in) before it is trimmed.
httpcore2.HTTP11Connection.READ_NUM_BYTES = 256 * 1024


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


async def send_download(client: httpx2.Client, request: httpx2.Request) -> httpx2.Response:
    """Send a download's request with a blocking client, in a worker thread."""
    opened: list[httpx2.Response] = []

    def send() -> httpx2.Response:
        opened.append(client.send(request, stream=True))
        return opened[0]

    try:
        return await anyio.to_thread.run_sync(send)
    except BaseException:
        # Cancelled while it was sent: the thread's answer is dropped, but
        # its connection must go back to the pool.
        for response in opened:
            response.close()
        raise


async def close(response: httpx2.Response) -> None:
    """Close a response of either client (a download's is blocking, and instant)."""
    if isinstance(response.stream, httpx2.SyncByteStream):
        response.close()
    else:
        await response.aclose()


class Download:
    """An opened download: status and headers are in; the body is still to read.

    The response is a blocking one (httpx2.Client): its body is meant for
    one thread of its own that receives, hashes and writes it with nothing
    per chunk for the event loop (`blocking_chunks`, run by the storage's
    `write_body`); `chunks()` hands it to async code a MiB at a time.
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
        self._stopped = threading.Event()

    @property
    def size(self) -> int | None:
        """The Content-Length the server announced, if any."""
        try:
            return int(self.response.headers["content-length"])
        except (KeyError, ValueError):
            return None

    def stop(self) -> None:
        """Make `blocking_chunks` end soon, from any thread: a reader is being cancelled.

        A thread blocked in the socket's receive wakes up when the socket is
        shut down (and reports the body cut short, which nobody hears: the
        caller is cancelled); without a socket, it stops at the next chunk.
        """
        self._stopped.set()
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def blocking_chunks(self, chunk_size: int | None = None) -> Generator[bytes, None, None]:
        """The body as it arrives (or in chunks of `chunk_size`), by blocking reads.

        Never more than a chunk is held. Raises `DownloadInterrupted` for a
        body cut short, and stops early once `stop()` was called.
        """
        yielded = 0
        try:
            for chunk in self.response.iter_bytes(chunk_size):
                if self._stopped.is_set():
                    break
                yielded += len(chunk)
                yield chunk
        except httpx2.TransportError as exc:  # reset, short body, ReadTimeout, ...
            detail = f": {exc}" if self._quote_errors else ""
            raise self._interrupted(
                f"after {self._received(yielded)} bytes ({type(exc).__name__}{detail})"
            ) from None
        if self._stopped.is_set():
            raise self._interrupted(f"after {self._received(yielded)} bytes (stopped)")
        # The transport usually notices a short body itself; not every one does.
        expected, received = self.size, self._received(yielded)
        if expected is not None and received < expected:
            raise self._interrupted(
                f"after {received} of {expected} bytes (the connection ended early)"
            )

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in chunks of about a MiB, each received in a worker thread.

        One thread hop per chunk: for small files and for storage that
        takes async chunks (S3); large local copies use `blocking_chunks`.
        """
        blocking = self.blocking_chunks(CHUNK_BYTES)
        try:
            while (chunk := await anyio.to_thread.run_sync(next, blocking, None)) is not None:
                yield chunk
        finally:
            blocking.close()

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

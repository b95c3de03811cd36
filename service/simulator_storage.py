"""The simulator's signed-URL storage: the bytes behind Iconik's download links.

Served at `/storage/<key>` on the simulator's own origin, or on a server of
its own (`storage_app()`, as real storage is another origin), wanting no
credentials. Tests make it refuse a link (an expired signature), cut a
download short, or hold one half-way until released.
"""

from __future__ import annotations

import functools
import random
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

CHUNK = 64 * 1024


@functools.lru_cache(maxsize=32)
def _block(seed: str) -> bytes:
    return random.Random(seed).randbytes(CHUNK)


@dataclass
class Blob:
    """Bytes behind a signed URL: literal, or generated while streaming."""

    size: int
    data: bytes | None = None
    seed: str = ""
    content_type: str = "application/octet-stream"

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, len(self.data), CHUNK):
                yield self.data[start : start + CHUNK]
            return
        # Deterministic per (seed, chunk): the same bytes on every request,
        # and never more than one chunk (plus the seed's block) in memory.
        # One pseudo-random block per seed, each chunk led by its index:
        # generating every chunk afresh (a Mersenne Twister per 64 KiB) cost
        # the simulator a core at ~450 MB/s, which on a small machine starved
        # the very download it served (for curl and the service alike).
        block = memoryview(_block(self.seed))
        for index, start in enumerate(range(0, self.size, CHUNK)):
            length = min(CHUNK, self.size - start)
            yield (index.to_bytes(8, "big") + block[8:length])[:length]


@dataclass
class DownloadGate:
    """Holds a download after `after_bytes` until released (for crash tests)."""

    after_bytes: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class SignedStorage:
    """Mixed into the Simulator, whose state (blobs, faults, gates) it serves."""

    blobs: dict[str, Blob]
    downloads: list[str]
    storage_faults: dict[str, list[int]]
    gates: dict[str, DownloadGate]
    cuts: dict[str, int]
    storage_base: str | None
    _lock: threading.Lock

    def fail_storage_next(self, key: str, *statuses: int) -> None:
        """The next downloads of the blob `key` (e.g. "proxies/<id>") answer these statuses."""
        with self._lock:
            self.storage_faults.setdefault(key, []).extend(statuses)

    def cut_next_download(self, key: str, after_bytes: int) -> None:
        """The next download of `key` stops after `after_bytes`, short of its Content-Length."""
        with self._lock:
            self.cuts[key] = after_bytes

    def hold_download(self, key: str, after_bytes: int) -> DownloadGate:
        gate = DownloadGate(after_bytes)
        self.gates[key] = gate
        return gate

    def storage_app(self) -> Starlette:
        """Only the signed download URLs, to serve on an origin of their own."""
        return Starlette(routes=[Route("/storage/{key:path}", self._storage, methods=["GET"])])

    def _signed_url(self, request: Request, key: str) -> str:
        # A signature-like query, as real signed URLs carry (and nothing may
        # quote); the simulator does not check it.
        base = self.storage_base or str(request.base_url)
        return f"{base}storage/{key}?Expires=4102444800&Signature={uuid.uuid4().hex}"

    async def _storage(self, request: Request) -> Response:
        key = request.path_params["key"]
        with self._lock:
            self.downloads.append(key)
        blob = self.blobs.get(key)
        if blob is None:
            return Response(b"NoSuchKey", status_code=404)
        with self._lock:
            statuses = self.storage_faults.get(key)
            status = statuses.pop(0) if statuses else None
        if status is not None:  # an injected refusal, S3-shaped (expired signature: 403)
            return Response(b"<Error><Code>AccessDenied</Code></Error>", status_code=status)
        gate = self.gates.pop(key, None)
        with self._lock:
            cut = self.cuts.pop(key, None)

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            for chunk in blob.chunks():
                if cut is not None and sent >= cut:
                    return  # the connection ends early, as a reset would leave it
                if gate and sent >= gate.after_bytes and not gate.reached.is_set():
                    gate.reached.set()
                    await anyio.to_thread.run_sync(gate.release.wait)
                yield chunk
                sent += len(chunk)

        return StreamingResponse(
            body(), media_type=blob.content_type, headers={"Content-Length": str(blob.size)}
        )

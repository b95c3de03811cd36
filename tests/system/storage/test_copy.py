"""A download copied into local staging by its own thread, over real HTTP.

The simulator's signed-URL storage (real uvicorn on loopback) serves the
bytes; the Iconik client opens them and `LocalStaging.write_body` receives,
hashes and writes them in one thread (service/blocking.py). Pinned here:
the bytes and digest are right, a body cut short is still a
`DownloadInterrupted` naming the bytes received, and a cancelled copy has
stopped its thread, blocked on a stalled socket, before cancellation ends.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.to_thread
import pytest

from service.iconik.client import Download, DownloadInterrupted, IconikClient
from service.storage.local import LocalStorage
from simulator import Blob, Simulator
from tests.support.servers import running

pytestmark = pytest.mark.anyio

KEY = "proxies/p1"
SIZE = 4 * 1024 * 1024
WHAT = "the proxy of asset a1"
PATH = "media/m.mp4"


@pytest.fixture
def sim() -> Simulator:
    simulator = Simulator("app", "token")
    simulator.add_blob(KEY, Blob(SIZE, seed="copy-test"))
    return simulator


@pytest.fixture
def storage_url(sim: Simulator) -> Iterator[str]:
    with running(sim.storage_app()) as url:
        yield url


def client() -> IconikClient:
    # A timeout far beyond the test's own (pytest-timeout): a copy that only
    # stopped when its read timed out would fail the test, not slow it.
    return IconikClient("https://iconik.invalid", "app", "token", timeout=600, max_attempts=1)


def signed(storage_url: str) -> str:
    return f"{storage_url}/storage/{KEY}?Signature=s3cr3t"


def copier_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"copy {PATH}"]


class Watched:
    """A download that tells when `at_least` bytes were received and written."""

    def __init__(self, download: Download, at_least: int) -> None:
        self.download = download
        self.at_least = at_least
        self.reached = threading.Event()

    def blocking_chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        received = 0
        for chunk in self.download.blocking_chunks(chunk_size):
            yield chunk  # resumed once the chunk is written, to fetch the next
            received += len(chunk)
            if received >= self.at_least:
                self.reached.set()

    def chunks(self) -> AsyncIterator[bytes]:
        return self.download.chunks()

    def stop(self) -> None:
        self.download.stop()


async def test_a_download_is_written_with_its_size_and_digest(tmp_path, sim, storage_url):
    expected = b"".join(sim.blobs[KEY].chunks())
    async with (
        client() as c,
        c.download(signed(storage_url), what=WHAT) as download,
        LocalStorage(tmp_path).stage("T [a1]") as staging,
    ):
        size, digest = await staging.write_body(PATH, download)
        assert (staging.dir / PATH).read_bytes() == expected
    assert (size, digest) == (SIZE, hashlib.sha256(expected).hexdigest())
    assert copier_threads() == []


async def test_a_body_cut_short_is_an_interrupted_download_with_its_byte_count(
    tmp_path, sim, storage_url
):
    cut = 3 * 64 * 1024  # the simulator sends 64 KiB at a time
    sim.cut_next_download(KEY, after_bytes=cut)
    async with (
        client() as c,
        c.download(signed(storage_url), what=WHAT) as download,
        LocalStorage(tmp_path).stage("T [a1]") as staging,
    ):
        with pytest.raises(DownloadInterrupted) as err:
            await staging.write_body(PATH, download)
    assert str(err.value).startswith(
        f"download of {WHAT} from the signed storage URL on 127.0.0.1 was interrupted "
        f"after {cut} bytes (RemoteProtocolError"
    )
    assert str(err.value).endswith("; will retry")
    assert "s3cr3t" not in str(err.value)
    assert copier_threads() == []


async def test_a_cancelled_copy_stops_its_thread_before_the_cancellation_ends(
    tmp_path, sim, storage_url
):
    gate = sim.hold_download(KEY, after_bytes=SIZE // 2)
    try:
        async with (
            client() as c,
            c.download(signed(storage_url), what=WHAT) as download,
            LocalStorage(tmp_path).stage("T [a1]") as staging,
        ):
            watched = Watched(download, at_least=SIZE // 2)
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(staging.write_body, PATH, watched)
                    # All the simulator sends before it holds is written: the
                    # copier is reading the socket for more, which only
                    # shutting the socket (or the 600 s timeout) ends.
                    await anyio.to_thread.run_sync(watched.reached.wait)
                    [copier] = copier_threads()
                    scope.cancel()
            assert scope.cancelled_caught
            assert not copier.is_alive()  # ended, not abandoned: it writes nothing more
            assert (staging.dir / PATH).stat().st_size == SIZE // 2
            assert PATH not in staging.written
    finally:
        gate.release.set()
    assert copier_threads() == []

"""/readyz tells the truth about the queue and the storage, and both recover by themselves.

Every fault is real and hits a real `serve --no-worker` process: file modes
changed under it, and a small tmpfs filled to the last byte. The tests run
as root, which ignores file modes, so the service runs without the
capabilities that let root write anywhere; chmod then binds it as it binds
any other user. After each fix, the very next /readyz must be 200 and the
next delivery 202, from the same process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest

from service.intake.app import create_app
from service.queue.sqlite import SQLiteQueue
from service.storage import probe
from service.storage.local import LocalStorage
from tests.support.privileges import DROP_ROOT_OVERRIDES
from tests.support.servers import ServiceProcess, running, service_process
from tests.support.service import (
    BEARER,
    CURRENT_SECRET,
    PAYLOAD_AUTH_TOKEN,
    custom_action_body,
    make_settings,
    signed,
)

ANSWER_WITHIN = 5.0  # docs/http.md: a delivery that cannot be stored gets its 503 within 5 s
SECRETS = (CURRENT_SECRET, BEARER, PAYLOAD_AUTH_TOKEN)
ENOSPC = "No space left on device (ENOSPC)"


def bound_by_file_modes() -> tuple[str, ...]:
    """The command prefix that makes file modes bind the service."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.fail("these tests run as root and need setpriv (util-linux) to drop its overrides")
    return DROP_ROOT_OVERRIDES


@dataclass
class Layout:
    """Where one service keeps its queue and its bundles."""

    base: Path

    @property
    def queue_dir(self) -> Path:
        return self.base / "queue"

    @property
    def database(self) -> Path:
        return self.queue_dir / "queue.db"

    @property
    def storage(self) -> Path:
        return self.base / "bundles"

    def env(self) -> dict[str, str]:
        return {
            "WEBHOOK_SECRETS": CURRENT_SECRET,
            "BEARER_TOKENS": BEARER,
            "PORT": "0",
            "QUEUE_URL": f"sqlite:///{self.database}",
            "STORAGE_URL": str(self.storage),
            "LOG_FORMAT": "json",
        }


@dataclass
class Service:
    url: str
    layout: Layout
    process: ServiceProcess | None = None  # None: served in this process

    def readyz(self) -> httpx2.Response:
        return httpx2.get(self.url + "/readyz", timeout=30)

    def deliver(self) -> tuple[httpx2.Response, float]:
        """A new delivery (its own asset, so never a duplicate) and how long its answer took."""
        body = custom_action_body(asset_ids=[str(uuid.uuid4())])
        started = time.monotonic()
        answer = httpx2.post(
            self.url + "/iconik/custom-action", content=body, headers=signed(body), timeout=30
        )
        return answer, time.monotonic() - started


@contextlib.contextmanager
def serve(layout: Layout, prefix: tuple[str, ...] = ()) -> Iterator[Service]:
    with service_process(
        "serve", "--no-worker", env=layout.env(), cwd=layout.base, prefix=prefix
    ) as process:
        port = process.wait_for("service.listening")["port"]
        yield Service(f"http://127.0.0.1:{port}", layout, process)
        process.process.kill()
        process.process.wait(30)
        logs = json.dumps([*process.seen, *_rest_of(process)])
    # The faults put paths and errnos in the log; never a credential.
    assert not [secret for secret in SECRETS if secret in logs]


def _rest_of(process: ServiceProcess) -> list[object]:
    lines = []
    while (line := process.lines.get(timeout=10)) is not None:
        lines.append(line)
    return lines


def assert_unavailable(service: Service, failed: set[str]) -> dict[str, str]:
    """/readyz is 503 naming exactly `failed`; its messages, for the caller to check."""
    response = service.readyz()
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable" and set(body["failed"]) == failed, body
    assert "Traceback" not in response.text
    assert not [secret for secret in SECRETS if secret in response.text]
    if service.process is not None:  # the operator reads the same in the log
        assert service.process.wait_for("readiness.failed")["failures"] == body["failed"]
    return body["failed"]


def assert_refused_in_time(service: Service) -> None:
    answer, took = service.deliver()
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "store_unavailable"
    assert took < ANSWER_WITHIN


def assert_recovered(service: Service) -> None:
    """Ready and storing again: at once, in the same process."""
    ready = service.readyz()
    assert ready.status_code == 200, ready.text
    answer, _ = service.deliver()
    assert answer.status_code == 202, answer.text
    db = sqlite3.connect(service.layout.database)
    try:
        stored = db.execute(
            "SELECT COUNT(*) FROM requests WHERE request_id = ?", (answer.json()["request_id"],)
        ).fetchone()[0]
    finally:
        db.close()
    assert stored == 1
    if service.process is not None:
        assert service.process.process.poll() is None  # no restart


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


@pytest.mark.slow
def test_storage_root_read_only_is_unready_until_fixed(layout):
    with serve(layout, bound_by_file_modes()) as service:
        assert service.readyz().status_code == 200  # it also made .staging
        staging = layout.storage / ".staging"
        layout.storage.chmod(0o555)
        try:
            assert os.stat(staging).st_mode & 0o777 == 0o755  # staging alone still works
            failed = assert_unavailable(service, {"storage"})
            assert failed["storage"] == (
                f"folder {layout.storage} is not writable: cannot publish into "
                f"{layout.storage} (rename from .staging): Permission denied (EACCES)"
            )
            # The queue is fine, so deliveries are still stored.
            assert service.deliver()[0].status_code == 202
        finally:
            layout.storage.chmod(0o755)
        assert_recovered(service)
    # Failed probes leave nothing for captioners to find.
    assert [p.name for p in layout.storage.iterdir()] == [".staging"]
    assert list(staging.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["directory", "database"])
def test_queue_not_writable_is_unready_and_refuses_deliveries_until_fixed(layout, broken):
    with serve(layout, bound_by_file_modes()) as service:
        assert service.deliver()[0].status_code == 202
        if broken == "directory":
            target, mode, expected = (
                layout.queue_dir,
                0o555,
                f"queue directory {layout.queue_dir}: cannot write a 64 KiB file: "
                "Permission denied (EACCES)",
            )
        else:
            target, mode, expected = (
                layout.database,
                0o444,
                f"queue files not writable by this process: {layout.database} "
                "(check their owner, mode and mount; SQLite opens the queue read-only)",
            )
        fixed = target.stat().st_mode & 0o777
        target.chmod(mode)
        try:
            assert assert_unavailable(service, {"queue"}) == {"queue": expected}
            # Twice: every delivery is refused while it lasts, not just the first.
            assert_refused_in_time(service)
            assert_refused_in_time(service)
        finally:
            target.chmod(fixed)
        assert_recovered(service)


@pytest.mark.slow
def test_database_read_only_at_start_recovers_once_its_files_are_fixed(layout):
    """The reported case: SQLite opened the database read-only, and 503 lasted until a restart."""

    async def create() -> None:
        queue = SQLiteQueue(layout.database)
        await queue.open()
        await queue.close()

    anyio.run(create)
    db = layout.database
    db.chmod(0o444)
    with serve(layout, bound_by_file_modes()) as service:
        failed = assert_unavailable(service, {"queue"})
        assert failed["queue"] == (
            f"queue files not writable by this process: {db}, {db}-wal, {db}-shm "
            "(check their owner, mode and mount; SQLite opens the queue read-only)"
        )
        assert_refused_in_time(service)
        db.chmod(0o644)
        # Opening the read-only database, SQLite made its -wal and -shm with
        # the same mode; readiness names what is left to fix.
        failed = assert_unavailable(service, {"queue"})
        assert failed["queue"] == (
            f"queue files not writable by this process: {db}-wal, {db}-shm "
            "(check their owner, mode and mount; SQLite opens the queue read-only)"
        )
        assert_refused_in_time(service)
        for side in ("-wal", "-shm"):
            Path(f"{db}{side}").chmod(0o644)
        assert_recovered(service)


class MountUnavailable(Exception):
    pass


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` at `path`: a disk that can really be filled."""
    path.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MountUnavailable(str(exc)) from None
    if mounted.returncode != 0:
        raise MountUnavailable(mounted.stderr.strip() or f"mount exited {mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(filesystem: Path) -> Path:
    """Write one file until the file system has not a byte left; return it."""
    filler = filesystem / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):  # big steps first, then the last bytes
            block = bytes(chunk)
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(filesystem).f_bavail == 0
    return filler


@pytest.mark.slow
def test_full_disk_is_unready_until_space_returns(tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        try:
            disk = stack.enter_context(small_tmpfs(tmp_path / "disk"))
        except MountUnavailable as why:
            warnings.warn(
                f"cannot mount a tmpfs ({why}); checking a full disk with an injected "
                "ENOSPC in an in-process service instead",
                stacklevel=1,
            )
            full_disk_injected(tmp_path, monkeypatch)
            return
        layout = Layout(disk)
        with serve(layout) as service:  # as root: a full disk stops root too
            assert_recovered(service)  # healthy first, and .staging exists
            filler = fill(disk)
            failed = assert_unavailable(service, {"queue", "storage"})
            assert failed == {
                "queue": f"queue directory {layout.queue_dir}: cannot write a 64 KiB file: "
                f"{ENOSPC}",
                "storage": f"folder {layout.storage} is not writable: cannot write in "
                f"{layout.storage}/.staging: {ENOSPC}",
            }
            assert_refused_in_time(service)
            filler.unlink()
            assert_recovered(service)


def full_disk_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-disk check where no tmpfs can be mounted: the probes' writes fail instead."""

    def no_space(path: Path, size: int = probe.PROBE_BYTES) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    layout = Layout(tmp_path)
    settings = make_settings(
        tmp_path, queue_url=f"sqlite:///{layout.database}", storage_url=str(layout.storage)
    )
    storage = LocalStorage(settings.storage_url)
    with running(create_app(settings, readiness={"storage": storage.ping})) as url:
        service = Service(url, layout)
        assert_recovered(service)
        with monkeypatch.context() as patched:
            patched.setattr(probe, "write_file", no_space)
            failed = assert_unavailable(service, {"queue", "storage"})
            assert ENOSPC in failed["queue"] and ENOSPC in failed["storage"]
            assert_refused_in_time(service)
        assert_recovered(service)

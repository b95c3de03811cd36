"""The local storage against a captioner who writes anything anywhere in a bundle.

Real files, real symlinks and FIFOs (the tests run as root: modes are
ignored, so nothing here depends on permissions). Each test is one of the
rules in service/storage/__init__.py; a FIFO that was opened would block
the test, so those carry a timeout.
"""

import errno
import hashlib
import json
import os
import shutil

import pytest

from service.storage import (
    MAX_MANIFEST_BYTES,
    Blocked,
    NotRegularFile,
    StorageError,
    TooLarge,
    safe_fs,
)
from service.storage.local import LocalStorage

pytestmark = pytest.mark.anyio

FOLDER = "T [a1]"
LIMIT = 1024 * 1024


@pytest.fixture
def outside(tmp_path):
    """A folder beside the root: what a symlink in a bundle would reach."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def root(tmp_path):
    return tmp_path / "bundles"


@pytest.fixture
def reads(monkeypatch):
    """How many bytes os.read returned: a refusal must read nothing."""
    counted = {"bytes": 0}
    real = os.read

    def read(fd, n):
        data = real(fd, n)
        counted["bytes"] += len(data)
        return data

    monkeypatch.setattr(os, "read", read)
    return counted


def manifest(revision, files):
    return json.dumps({"status": "ready", "revision": revision, "files": files}).encode()


async def published(root, files=("captions/en.vtt", "deliver/README.txt")):
    """A bundle as a build leaves it: its files, then project.json."""
    storage = LocalStorage(root)
    async with storage.stage(FOLDER) as staging:
        for path in files:
            await staging.write_bytes(path, f"old {path}".encode())
        assert not await staging.publish(manifest(1, list(files)), [])  # nothing blocked
    return storage, root / FOLDER


async def republish(storage, files, remove=()):
    async with storage.stage(FOLDER) as staging:
        for path in files:
            await staging.write_bytes(path, f"new {path}".encode())
        return await staging.publish(manifest(2, list(files)), list(remove))


def revision(bundle):
    return json.loads((bundle / "project.json").read_bytes())["revision"]


# -- reading --------------------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_a_fifo_is_refused_without_blocking(root, reads):
    storage, bundle = await published(root)
    os.mkfifo(bundle / "deliver" / "en.vtt")  # nobody ever writes to it
    with pytest.raises(NotRegularFile) as refused:
        await storage.read_file(FOLDER, "deliver/en.vtt", limit=LIMIT)
    assert (refused.value.path, refused.value.kind) == ("deliver/en.vtt", "fifo")
    assert str(refused.value) == "deliver/en.vtt is not a regular file (it is a fifo)"
    assert reads["bytes"] == 0


@pytest.mark.timeout(10)
async def test_a_fifo_where_a_service_file_was_has_no_digest(root):
    storage, bundle = await published(root)
    (bundle / "captions" / "en.vtt").unlink()
    os.mkfifo(bundle / "captions" / "en.vtt")
    assert await storage.file_digest(FOLDER, "captions/en.vtt") is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize("target", ["/dev/zero", "outside file"])
async def test_a_symlink_is_refused_and_nothing_is_read(root, outside, reads, target):
    storage, bundle = await published(root)
    if target == "outside file":
        (outside / "secret.txt").write_bytes(b"the server's secret")
        target = outside / "secret.txt"
    (bundle / "deliver" / "en.vtt").symlink_to(target)
    reads["bytes"] = 0
    with pytest.raises(NotRegularFile) as refused:
        await storage.read_file(FOLDER, "deliver/en.vtt", limit=LIMIT)
    assert refused.value.kind == "symlink"
    assert await storage.file_digest(FOLDER, "deliver/en.vtt") is None
    assert reads["bytes"] == 0


async def test_a_huge_sparse_file_is_too_large_before_a_byte_is_read(root, reads):
    storage, bundle = await published(root)
    os.truncate(bundle / "deliver" / "README.txt", 200 * 1024**3)  # 200 GiB of holes
    reads["bytes"] = 0
    with pytest.raises(TooLarge) as refused:
        await storage.read_file(FOLDER, "deliver/README.txt", limit=LIMIT)
    assert (refused.value.size, refused.value.limit) == (200 * 1024**3, LIMIT)
    assert str(refused.value).startswith("deliver/README.txt is too large")
    assert reads["bytes"] == 0


def test_a_file_that_grows_while_read_stops_past_the_limit():
    # A pipe says it is empty (st_size 0) and then delivers more: like a file
    # appended to between the size check and the read.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x" * 100)
        os.close(write_end)
        with pytest.raises(safe_fs.Oversized) as refused:
            safe_fs.read_bounded(read_end, 10)
        assert refused.value.size == 11  # limit + 1 read, no more
    finally:
        os.close(read_end)


@pytest.mark.timeout(10)
async def test_a_file_in_a_symlinked_folder_is_not_read(root, outside, reads):
    storage, bundle = await published(root)
    (outside / "en.vtt").write_bytes(b"WEBVTT\n\nfrom elsewhere")
    (bundle / "captions" / "en.vtt").unlink()
    (bundle / "captions").rmdir()
    (bundle / "captions").symlink_to(outside, target_is_directory=True)
    reads["bytes"] = 0
    with pytest.raises(NotRegularFile) as refused:
        await storage.read_file(FOLDER, "captions/en.vtt", limit=LIMIT)
    assert (refused.value.path, refused.value.kind) == ("captions", "symlink")
    assert await storage.file_digest(FOLDER, "captions/en.vtt") is None
    assert reads["bytes"] == 0


async def test_a_symlinked_manifest_is_not_a_manifest(root, outside):
    storage, bundle = await published(root)
    (outside / "project.json").write_bytes(manifest(99, []))
    (bundle / "project.json").unlink()
    (bundle / "project.json").symlink_to(outside / "project.json")
    assert await storage.read_manifest(FOLDER) is None
    with pytest.raises(NotRegularFile):
        await storage.read_file(FOLDER, "project.json", limit=MAX_MANIFEST_BYTES)


# -- listing --------------------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_a_listing_shows_every_entry_as_it_is(root, outside):
    storage, bundle = await published(root)
    deliver = bundle / "deliver"
    (deliver / "en.vtt").write_bytes(b"WEBVTT\n")
    (deliver / "link.vtt").symlink_to(outside)
    (deliver / "sub").mkdir()
    os.mkfifo(deliver / "pipe.vtt")
    kinds = {f.name: f.kind for f in await storage.list_files(FOLDER, "deliver")}
    assert kinds == {
        "README.txt": "file",
        "en.vtt": "file",
        "link.vtt": "symlink",
        "pipe.vtt": "fifo",
        "sub": "directory",
    }


async def test_a_listing_of_a_symlinked_or_file_folder_is_refused(root, outside):
    storage, bundle = await published(root)
    (outside / "en.vtt").write_bytes(b"WEBVTT\n")
    (bundle / "media").write_bytes(b"not a folder")
    symlink_deliver(bundle, outside)
    with pytest.raises(NotRegularFile) as refused:
        await storage.list_files(FOLDER, "deliver")
    assert (refused.value.path, refused.value.kind) == ("deliver", "symlink")
    with pytest.raises(NotRegularFile) as refused:
        await storage.list_files(FOLDER, "media")
    assert (refused.value.path, refused.value.kind) == ("media", "file")
    assert await storage.list_files(FOLDER, "absent") == []


async def test_a_symlink_to_a_folder_is_not_a_bundle(root, outside):
    await published(root)
    (outside / "project.json").write_bytes(manifest(1, []))
    (root / "Elsewhere [a9]").symlink_to(outside, target_is_directory=True)
    storage = LocalStorage(root)
    assert await storage.list_folders() == [FOLDER]
    assert await storage.find_bundles("a9") == []
    assert [folder for _, folder, _ in await storage.list_bundles()] == [FOLDER]


# -- single files ---------------------------------------------------------------------


def symlink_deliver(bundle, outside):
    """deliver/ swapped for a link to a folder outside the root."""
    shutil.rmtree(bundle / "deliver")
    (bundle / "deliver").symlink_to(outside, target_is_directory=True)


async def test_a_file_is_not_put_through_a_symlinked_folder(root, outside):
    storage, bundle = await published(root)
    symlink_deliver(bundle, outside)
    with pytest.raises(Blocked) as blocked:
        await storage.put_file(FOLDER, "deliver/ERRORS.txt", b"en.vtt, line 3: ...")
    assert blocked.value.path == "deliver/ERRORS.txt"
    assert str(root) not in str(blocked.value)  # captioners may read it
    assert str(blocked.value).startswith("deliver/ERRORS.txt cannot be written: deliver is a")
    assert list(outside.iterdir()) == []


@pytest.mark.timeout(10)
async def test_a_file_put_over_a_fifo_replaces_it_unopened(root):
    storage, bundle = await published(root)
    errors = bundle / "deliver" / "ERRORS.txt"
    os.mkfifo(errors)
    # Our own reader on the FIFO: had the service opened it to write (and not
    # blocked, as it would without a reader), the text would be waiting here.
    reader = os.open(errors, os.O_RDONLY | os.O_NONBLOCK)
    try:
        await storage.put_file(FOLDER, "deliver/ERRORS.txt", b"en.vtt, line 3: ...")
        assert os.read(reader, 100) == b""  # nothing was ever written into it
    finally:
        os.close(reader)
    assert errors.read_bytes() == b"en.vtt, line 3: ..."
    assert sorted(p.name for p in errors.parent.iterdir()) == ["ERRORS.txt", "README.txt"]


async def test_a_file_put_over_a_symlink_replaces_the_link_not_its_target(root, outside):
    storage, bundle = await published(root)
    (outside / "victim.txt").write_bytes(b"keep me")
    (bundle / "deliver" / "ERRORS.txt").symlink_to(outside / "victim.txt")
    await storage.put_file(FOLDER, "deliver/ERRORS.txt", b"errors")
    assert not (bundle / "deliver" / "ERRORS.txt").is_symlink()
    assert (bundle / "deliver" / "ERRORS.txt").read_bytes() == b"errors"
    assert (outside / "victim.txt").read_bytes() == b"keep me"


async def test_a_folder_at_a_put_path_blocks_it_and_leaves_no_temporary(root):
    storage, bundle = await published(root)
    (bundle / "deliver" / "ERRORS.txt").mkdir()
    (bundle / "deliver" / "ERRORS.txt" / "theirs.txt").write_bytes(b"theirs")
    with pytest.raises(Blocked):
        await storage.put_file(FOLDER, "deliver/ERRORS.txt", b"errors")
    assert sorted(p.name for p in (bundle / "deliver").iterdir()) == ["ERRORS.txt", "README.txt"]
    assert (bundle / "deliver" / "ERRORS.txt" / "theirs.txt").read_bytes() == b"theirs"


async def test_delete_removes_a_regular_file_only_and_never_through_a_link(root, outside):
    storage, bundle = await published(root)
    deliver = bundle / "deliver"
    (outside / "ERRORS.txt").write_bytes(b"outside")
    (deliver / "ERRORS.txt").symlink_to(outside / "ERRORS.txt")
    (deliver / "README.txt").unlink()
    (deliver / "README.txt").mkdir()
    await storage.delete_file(FOLDER, "deliver/ERRORS.txt")  # a link: left alone
    await storage.delete_file(FOLDER, "deliver/README.txt")  # a folder: left alone
    assert (deliver / "ERRORS.txt").is_symlink()
    assert (deliver / "README.txt").is_dir()
    symlink_deliver(bundle, outside)
    await storage.delete_file(FOLDER, "deliver/ERRORS.txt")  # through a link: never
    assert (outside / "ERRORS.txt").read_bytes() == b"outside"


# -- publishing -----------------------------------------------------------------------


async def test_a_publish_skips_a_symlinked_folder_and_says_so(root, outside):
    storage, bundle = await published(root)
    symlink_deliver(bundle, outside)
    blocked = await republish(storage, ["captions/en.vtt", "deliver/README.txt"])
    assert list(outside.iterdir()) == []
    assert blocked == ["deliver/README.txt"]
    assert (bundle / "captions" / "en.vtt").read_bytes() == b"new captions/en.vtt"
    assert revision(bundle) == 2
    assert not (bundle / ".project.json.previous").exists()


async def test_a_folder_at_a_published_path_is_left_and_the_rest_placed(root):
    storage, bundle = await published(root)
    receipt = bundle / "deliver" / "RECEIPT.json"
    receipt.mkdir()
    (receipt / "theirs.txt").write_bytes(b"theirs")
    files = ["captions/en.vtt", "deliver/RECEIPT.json", "deliver/README.txt", "index.html"]
    assert await republish(storage, files) == ["deliver/RECEIPT.json"]
    for path in ("captions/en.vtt", "deliver/README.txt", "index.html"):
        assert (bundle / path).read_bytes() == f"new {path}".encode()
    assert revision(bundle) == 2
    assert not (bundle / ".project.json.previous").exists()
    assert [p.name for p in receipt.iterdir()] == ["theirs.txt"]
    assert (receipt / "theirs.txt").read_bytes() == b"theirs"


async def test_a_removal_never_goes_through_a_link(root, outside):
    storage, bundle = await published(root)
    (outside / "x.vtt").write_bytes(b"outside")
    shutil.rmtree(bundle / "captions")
    (bundle / "captions").symlink_to(outside, target_is_directory=True)
    blocked = await republish(storage, ["index.html"], remove=["captions/x.vtt"])
    assert (outside / "x.vtt").read_bytes() == b"outside"
    assert blocked == ["captions/x.vtt"]
    assert revision(bundle) == 2


@pytest.mark.timeout(10)
async def test_a_removal_leaves_anything_but_a_regular_file_and_says_so(root, outside):
    storage, bundle = await published(root, ["a.txt", "b.txt", "c.txt", "d.txt"])
    (outside / "target").write_bytes(b"outside")
    for name in ("a.txt", "b.txt", "c.txt"):
        (bundle / name).unlink()
    (bundle / "a.txt").mkdir()
    (bundle / "b.txt").symlink_to(outside / "target")
    os.mkfifo(bundle / "c.txt")
    # The paths come from the previous manifest, which a captioner may edit.
    remove = ["a.txt", "b.txt", "c.txt", "d.txt", "gone.txt", "../escape"]
    blocked = await republish(storage, ["index.html"], remove=remove)
    assert sorted(blocked) == ["../escape", "a.txt", "b.txt", "c.txt"]
    assert (bundle / "a.txt").is_dir()
    assert (bundle / "b.txt").is_symlink()
    assert (bundle / "c.txt").is_fifo()
    assert not (bundle / "d.txt").exists()  # the service's file: removed
    assert (outside / "target").read_bytes() == b"outside"
    assert revision(bundle) == 2


@pytest.mark.parametrize("failing_call", [2, 3, 4])
async def test_a_publish_failing_part_way_leaves_the_previous_manifest(
    root, monkeypatch, failing_call
):
    storage, bundle = await published(root)
    before = (bundle / "project.json").read_bytes()
    calls = {"n": 0}
    real = os.replace

    def replace(*args, **kwargs):
        # Call 1 sets project.json aside; later ones place files, then the manifest.
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise OSError(errno.EIO, "Input/output error")
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output"):
        await republish(storage, ["captions/en.vtt", "deliver/README.txt"])
    assert (bundle / "project.json").read_bytes() == before
    assert calls["n"] > failing_call  # put back by the roll-back, after the failure
    assert not (bundle / ".project.json.previous").exists()
    assert await storage.find_bundles("a1") == [FOLDER]


async def test_a_symlinked_bundle_folder_is_not_published_into(root, outside):
    storage, _ = await published(root)
    (root / "Linked [a2]").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError) as refused:
        async with storage.stage("Linked [a2]") as staging:
            await staging.write_bytes("captions/en.vtt", b"WEBVTT")
            await staging.publish(manifest(1, ["captions/en.vtt"]), [])
    assert str(root) not in str(refused.value)
    assert list(outside.iterdir()) == []
    with pytest.raises(Blocked):
        await storage.put_file("Linked [a2]", "deliver/ERRORS.txt", b"errors")
    assert list(outside.iterdir()) == []


async def test_a_new_bundle_still_appears_whole(root):
    _, bundle = await published(root)
    assert sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*")) == [
        "captions",
        "captions/en.vtt",
        "deliver",
        "deliver/README.txt",
        "project.json",
    ]
    assert list((root / ".staging").iterdir()) == []


@pytest.mark.timeout(10)
async def test_a_digest_with_the_written_size_never_reads_a_file_of_another_size(root):
    storage = LocalStorage(root)
    bundle = root / FOLDER
    (bundle / "captions").mkdir(parents=True, exist_ok=True)
    (bundle / "captions" / "en.vtt").touch()
    os.truncate(bundle / "captions" / "en.vtt", 200 * 1024**3)
    assert await storage.file_digest(FOLDER, "captions/en.vtt", size=10) == "size:214748364800"
    (bundle / "captions" / "fr.vtt").write_bytes(b"0123456789")
    digest = await storage.file_digest(FOLDER, "captions/fr.vtt", size=10)
    assert digest == hashlib.sha256(b"0123456789").hexdigest()

import errno
import json
import os

import pytest

from service.storage import StorageError, check_relative, open_storage, probe
from service.storage.local import LocalStorage

pytestmark = pytest.mark.anyio


def manifest(files):
    return json.dumps({"status": "ready", "files": [{"path": f} for f in files]}).encode()


async def test_new_bundle_appears_whole_at_publish(tmp_path):
    storage = LocalStorage(tmp_path)
    async with storage.stage("Title [a1]") as staging:
        await staging.write_bytes("media/m.mp4", b"media")
        size, digest = await staging.write_bytes("captions/en.vtt", b"WEBVTT")
        assert (size, len(digest)) == (6, 64)
        assert not (tmp_path / "Title [a1]").exists()
        await staging.publish(manifest(["media/m.mp4", "captions/en.vtt"]), [])
    assert (tmp_path / "Title [a1]" / "media" / "m.mp4").read_bytes() == b"media"
    assert (await storage.read_manifest("Title [a1]"))["status"] == "ready"
    assert await storage.find_bundles("a1") == ["Title [a1]"]
    assert list((tmp_path / ".staging").iterdir()) == []


async def test_refresh_replaces_service_files_and_keeps_captioner_files(tmp_path):
    storage = LocalStorage(tmp_path)
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("captions/en.vtt", b"old en")
        await staging.write_bytes("captions/de.vtt", b"old de")
        await staging.publish(manifest(["captions/en.vtt", "captions/de.vtt"]), [])
    (tmp_path / "T [a1]" / "captions" / "mine.txt").write_text("captioner")
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("captions/en.vtt", b"new en")
        await staging.publish(manifest(["captions/en.vtt"]), ["captions/de.vtt"])
    folder = tmp_path / "T [a1]"
    assert (folder / "captions" / "en.vtt").read_bytes() == b"new en"
    assert not (folder / "captions" / "de.vtt").exists()  # Iconik dropped it; we wrote it
    assert (folder / "captions" / "mine.txt").read_text() == "captioner"


async def test_leftovers_of_a_crashed_build_are_cleared(tmp_path):
    stale = tmp_path / ".staging" / "T [a1].deadbeef"
    stale.mkdir(parents=True)
    (stale / "half.mp4").write_bytes(b"half")
    # Its lock file is there, but nobody holds it: the build died.
    (tmp_path / ".staging" / "T [a1].deadbeef.lock").write_bytes(b"")
    async with LocalStorage(tmp_path).stage("T [a1]"):
        assert not stale.exists()
        assert not (tmp_path / ".staging" / "T [a1].deadbeef.lock").exists()
    assert list((tmp_path / ".staging").iterdir()) == []


async def test_a_running_build_of_the_same_folder_is_never_cut_off(tmp_path):
    storage = LocalStorage(tmp_path)
    async with storage.stage("T [a1]") as first:
        await first.write_bytes("media/m.mp4", b"first build")
        async with storage.stage("T [a1]") as second:
            assert first.dir.exists()  # its lock is held: not a leftover
            await second.write_bytes("media/m.mp4", b"second build")
            await second.publish(manifest(["media/m.mp4"]), [])
        await first.publish(manifest(["media/m.mp4"]), [])
    assert (tmp_path / "T [a1]" / "media" / "m.mp4").read_bytes() == b"first build"
    assert list((tmp_path / ".staging").iterdir()) == []


async def test_a_change_cut_off_midway_leaves_a_bundle_that_is_found_again(tmp_path):
    storage = LocalStorage(tmp_path)
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("captions/en.vtt", b"WEBVTT")
        await staging.publish(manifest(["captions/en.vtt"]), [])
    folder = tmp_path / "T [a1]"
    # What a refresh killed after setting the manifest aside leaves behind.
    (folder / "project.json").rename(folder / ".project.json.previous")
    assert await storage.find_bundles("a1") == ["T [a1]"]
    assert (await storage.read_manifest("T [a1]"))["status"] == "ready"
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("captions/en.vtt", b"WEBVTT again")
        await staging.publish(manifest(["captions/en.vtt"]), [])
    assert (folder / "project.json").exists()
    assert not (folder / ".project.json.previous").exists()


async def test_unwritable_root_is_not_ready(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="not writable"):
        await LocalStorage(tmp_path / "file").ping()


async def test_ping_publishes_a_probe_and_leaves_nothing_behind(tmp_path):
    await LocalStorage(tmp_path).ping()
    assert [p.name for p in tmp_path.iterdir()] == [".staging"]
    assert list((tmp_path / ".staging").iterdir()) == []


async def test_full_disk_is_named_with_the_path_and_errno(tmp_path, monkeypatch):
    # A real full disk is in test_readiness.py (a small tmpfs); here the write
    # the probe makes fails as it would there.
    def no_space(path, size=probe.PROBE_BYTES):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(probe, "write_file", no_space)
    with pytest.raises(StorageError) as failed:
        await LocalStorage(tmp_path).ping()
    assert str(failed.value) == (
        f"folder {tmp_path} is not writable: cannot write in {tmp_path}/.staging: "
        "No space left on device (ENOSPC)"
    )
    assert list((tmp_path / ".staging").iterdir()) == []


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/./b", "", "a/.."])
def test_paths_outside_the_bundle_are_refused(bad):
    with pytest.raises(ValueError):
        check_relative(bad)


def test_storage_url_forms(tmp_path):
    assert open_storage(str(tmp_path)).root == tmp_path
    assert open_storage(f"file://{tmp_path}").root == tmp_path


async def test_deliver_folders_are_listed_and_service_files_put_in_place(tmp_path):
    storage = LocalStorage(tmp_path)
    async with storage.stage("T [a1]") as staging:
        await staging.write_bytes("deliver/README.txt", b"how to")
        await staging.publish(manifest(["deliver/README.txt"]), [])
    (tmp_path / "Half [a2]").mkdir()
    deliver = tmp_path / "T [a1]" / "deliver"
    (deliver / "en.vtt").write_bytes(b"WEBVTT\n")
    (deliver / "sub").mkdir()
    (deliver / "link.vtt").symlink_to(tmp_path / "T [a1]" / "project.json")
    assert await storage.list_folders() == ["Half [a2]", "T [a1]"]  # .staging is not one
    listed = {f.name: f for f in await storage.list_files("T [a1]", "deliver")}
    kinds = {name: f.kind for name, f in listed.items()}
    # Every entry, as it is: the link is not followed, the folder is not entered.
    assert kinds == {
        "README.txt": "file",
        "en.vtt": "file",
        "link.vtt": "symlink",
        "sub": "directory",
    }
    assert listed["en.vtt"].size == 7
    assert await storage.list_files("Half [a2]", "deliver") == []

    before = listed["en.vtt"].look
    (deliver / "en.vtt").write_bytes(b"WEBVTT\n\n")
    after = {f.name: f for f in await storage.list_files("T [a1]", "deliver")}["en.vtt"].look
    assert after != before  # a change shows in the look

    await storage.put_file("T [a1]", "deliver/ERRORS.txt", b"en.vtt, line 3: ...")
    assert (deliver / "ERRORS.txt").read_bytes() == b"en.vtt, line 3: ..."
    assert sorted(p.name for p in deliver.iterdir()) == [
        "ERRORS.txt",
        "README.txt",
        "en.vtt",
        "link.vtt",
        "sub",
    ]  # no temporary file beside it, ever
    assert list((tmp_path / ".staging").iterdir()) == []
    await storage.delete_file("T [a1]", "deliver/ERRORS.txt")
    await storage.delete_file("T [a1]", "deliver/ERRORS.txt")  # already gone: fine
    assert not (deliver / "ERRORS.txt").exists()
    with pytest.raises(ValueError, match="unsafe"):
        await storage.put_file("T [a1]", "../escape.txt", b"x")

"""Where deliver/ changed: S3 event notifications through SQS (moto's server
over HTTP) and inotify on a real folder, each giving only folder names."""

from __future__ import annotations

import json
import os
import time

import anyio
import pytest

from service.deliver.changes import LocalWatch, folder_of, folders_in_message

pytestmark = pytest.mark.anyio


def test_only_keys_in_a_bundles_deliver_name_a_folder():
    assert folder_of("shared/A [1]/deliver/en.vtt", "shared") == "A [1]"
    assert folder_of("shared/A [1]/deliver/sub/en.vtt", "shared/") == "A [1]"
    assert folder_of("A [1]/deliver/en.vtt") == "A [1]"
    for key in (
        "shared/A [1]/captions/en.vtt",  # not the out-tray
        "shared/A [1]/deliver",  # the folder's name as an object, nothing in it
        "other/A [1]/deliver/en.vtt",  # another prefix
        "shared/.staging/deliver/en.vtt",  # hidden: not a bundle
        "shared/../deliver/en.vtt",
        "shared/deliver/en.vtt",
    ):
        assert folder_of(key, "shared") is None, key


def test_a_message_names_folders_or_nothing():
    record = {"s3": {"object": {"key": "shared%2FA+%5B1%5D%2Fdeliver%2Fen+fr.vtt"}}}
    plain = json.dumps({"Records": [record, {"s3": {}}, "junk"]})
    assert folders_in_message(plain, "shared") == {"A [1]"}
    through_sns = json.dumps({"Type": "Notification", "Message": plain})
    assert folders_in_message(through_sns, "shared") == {"A [1]"}
    for body in (
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
        "not json",
        "[]",
        json.dumps({"Records": {"s3": 1}}),
        json.dumps({"Type": "Notification", "Message": "{"}),
        " " * 300_000 + "{}",
    ):
        assert folders_in_message(body, "shared") == set(), body[:40]


async def reported(batches, write, *, wanted: str) -> set[str]:
    """The first batch that names `wanted`, writing (`write()`) every 50 ms
    until it comes: inotify gives no sign of when a watch is in place."""
    got: set[str] = set()
    async with anyio.create_task_group() as group:

        async def keep_writing() -> None:
            while True:
                write()
                await anyio.sleep(0.05)

        group.start_soon(keep_writing)
        while wanted not in got:
            got = await anext(batches)
        group.cancel_scope.cancel()
    return got


async def test_local_watch_sees_deliver_only_and_never_through_a_link(tmp_path):
    root = tmp_path / "share"
    for folder in ("A [1]", "B [2]"):
        (root / folder / "deliver").mkdir(parents=True)
        (root / folder / "captions").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "L [3]").mkdir()
    os.symlink(elsewhere, root / "L [3]" / "deliver")
    (root / "N [4]" / "deliver").mkdir(parents=True)  # not a bundle the registry knows yet
    folders = ["A [1]", "B [2]", "L [3]"]
    watch = LocalWatch(root, lambda: folders)

    def write_around() -> None:
        (root / "N [4]" / "deliver" / "de.vtt").write_text("x")  # not watched yet
        (root / "B [2]" / "captions" / "x.vtt").write_text("x")  # not deliver/
        (elsewhere / "en.vtt").write_text("x")  # L's deliver/ is a link: not watched
        (root / "A [1]" / "deliver" / "en.vtt").write_text("WEBVTT\n")

    with anyio.fail_after(20):
        batches = watch.batches()
        assert await reported(batches, write_around, wanted="A [1]") == {"A [1]"}

        # Once the registry knows it, its deliver/ is watched too.
        folders.append("N [4]")
        watch.renew()
        write = lambda: (root / "N [4]" / "deliver" / "de.vtt").write_text("x")  # noqa: E731
        assert "N [4]" in await reported(batches, write, wanted="N [4]")
        await batches.aclose()


def test_a_bundle_that_came_while_the_watch_was_remade_is_watched_and_looked_at(tmp_path):
    """Remaking the watch stops the old one first: a bundle renamed into place
    in between has no event. The next watch finds it by listing the root
    (the registry does not know it yet), watches its deliver/ and names it."""
    root = tmp_path / "share"
    (root / "A [1]" / "deliver").mkdir(parents=True)  # there before the first watch
    watch = LocalWatch(root, lambda: [])
    assert watch._paths() == [root.absolute()]  # A is not the registry's: not watched
    (root / "B [2]" / "deliver").mkdir(parents=True)  # renamed into place, no event
    assert root.absolute() / "B [2]" / "deliver" in watch._paths()
    assert watch._fresh == {"B [2]"}


def test_a_deliver_folder_changed_while_the_watch_was_remade_is_looked_at(tmp_path):
    root = tmp_path / "share"
    for folder in ("A [1]", "B [2]"):
        (root / folder / "deliver").mkdir(parents=True)
        stamp = time.time() - 60  # made a while ago
        os.utime(root / folder / "deliver", (stamp, stamp))
    watch = LocalWatch(root, lambda: ["A [1]", "B [2]"])
    watch._paths()
    watch._remake()  # the old watch is stopped...
    (root / "A [1]" / "deliver" / "en.vtt").write_text("WEBVTT\n")  # ...and this has no event
    watch._paths()
    assert watch._fresh == {"A [1]"}  # B's deliver/ did not change: no look at it

"""service/bundle/plan.py: which files a bundle change may write over, keep or remove.

Pure: the previous manifest and the digests on disk in, a Placement out.
The whole product's view of the same rule (a refresh beside a captioner's
edits) is in tests/unit/bundle/test_bundle.py and tests/unit/bundle/test_outtray.py.
"""

from service.bundle import plan

OURS, EDITED, OTHER = "a" * 64, "b" * 64, "c" * 64


def manifest(*files: tuple[str, str], edits: tuple[str, ...] = ()) -> dict:
    return {
        "files": [{"path": p, "sha256": d, "size": 1, "proxy_id": "px1"} for p, d in files],
        "captioner_edits": list(edits),
    }


def test_a_first_build_writes_every_file_where_it_wants_it():
    placement = plan.place(["captions/en.vtt", "index.html"], previous=None, on_disk={}, revision=1)
    assert placement.where == {"captions/en.vtt": "captions/en.vtt", "index.html": "index.html"}
    assert placement.captioner_edits == []


def test_a_file_the_service_wrote_and_nobody_changed_is_written_over():
    previous = manifest(("captions/en.vtt", OURS))
    placement = plan.place(
        ["captions/en.vtt"], previous=previous, on_disk={"captions/en.vtt": OURS}, revision=2
    )
    assert placement.where == {"captions/en.vtt": "captions/en.vtt"}
    assert placement.captioner_edits == []


def test_an_edited_file_is_left_and_the_services_version_goes_beside_it():
    previous = manifest(("captions/en.vtt", OURS))
    placement = plan.place(
        ["captions/en.vtt"], previous=previous, on_disk={"captions/en.vtt": EDITED}, revision=3
    )
    assert placement.where == {"captions/en.vtt": "captions/en.iconik-r3.vtt"}
    assert placement.captioner_edits == ["captions/en.vtt"]


def test_a_file_at_a_path_the_service_never_wrote_is_the_captioners():
    placement = plan.place(
        ["captions/fr.vtt", "notes"],
        previous=manifest(),
        on_disk={"captions/fr.vtt": OTHER, "notes": OTHER},
        revision=4,
    )
    assert placement.where == {
        "captions/fr.vtt": "captions/fr.iconik-r4.vtt",
        "notes": "notes.iconik-r4",
    }
    assert placement.captioner_edits == ["captions/fr.vtt", "notes"]


def test_once_the_captioners_a_path_stays_theirs_even_when_it_matches_again():
    previous = manifest(("captions/en.vtt", OURS), edits=("captions/en.vtt",))
    placement = plan.place(
        ["captions/en.vtt"], previous=previous, on_disk={"captions/en.vtt": OURS}, revision=5
    )
    assert placement.where == {"captions/en.vtt": "captions/en.iconik-r5.vtt"}
    assert placement.captioner_edits == ["captions/en.vtt"]


def test_a_file_removed_from_disk_is_the_services_to_write_again():
    previous = manifest(("captions/en.vtt", OURS))
    placement = plan.place(
        ["captions/en.vtt"], previous=previous, on_disk={"captions/en.vtt": None}, revision=2
    )
    assert placement.where == {"captions/en.vtt": "captions/en.vtt"}


def test_stale_removes_only_unchanged_service_files_the_new_bundle_drops():
    previous = manifest(
        ("captions/de.vtt", OURS),  # dropped, unchanged: remove
        ("captions/fr.vtt", OURS),  # dropped, but edited since: keep
        ("captions/en.vtt", OURS),  # still wanted: keep
        ("deliver/README.txt", OURS),  # the out-tray: never
        ("project.json", OURS),  # the manifest: never
        ("media/gone.mp4", OURS),  # dropped, and no longer on disk: nothing to remove
    )
    on_disk = {
        "captions/de.vtt": OURS,
        "captions/fr.vtt": EDITED,
        "captions/en.vtt": OURS,
        "deliver/README.txt": OURS,
        "project.json": OURS,
        "media/gone.mp4": None,
    }
    placement = plan.place(["captions/en.vtt"], previous=previous, on_disk=on_disk, revision=2)
    assert placement.stale(kept=["captions/en.vtt"]) == ["captions/de.vtt"]


def test_stale_never_removes_a_path_the_captioner_owns():
    previous = manifest(("captions/de.vtt", OURS), edits=("captions/de.vtt",))
    on_disk = {"captions/de.vtt": OURS}
    placement = plan.place([], previous=previous, on_disk=on_disk, revision=2)
    assert placement.stale(kept=[]) == []


def test_reusable_only_when_the_file_and_its_entry_are_still_what_is_wanted():
    previous = manifest(("media/proxy.mp4", OURS))
    placement = plan.place(
        ["media/proxy.mp4"], previous=previous, on_disk={"media/proxy.mp4": OURS}, revision=2
    )
    entry = placement.reusable("media/proxy.mp4", proxy_id="px1", size=1)
    assert entry == {"path": "media/proxy.mp4", "sha256": OURS, "size": 1, "proxy_id": "px1"}
    assert placement.reusable("media/proxy.mp4", proxy_id="px2") is None  # another proxy
    assert placement.reusable("media/other.mp4") is None  # not in the previous manifest
    changed = plan.place(
        ["media/proxy.mp4"], previous=previous, on_disk={"media/proxy.mp4": EDITED}, revision=2
    )
    assert changed.reusable("media/proxy.mp4") is None  # the file there is not ours now


def test_reusable_entry_is_a_copy_the_caller_may_change():
    previous = manifest(("media/proxy.mp4", OURS))
    placement = plan.place(
        ["media/proxy.mp4"], previous=previous, on_disk={"media/proxy.mp4": OURS}, revision=2
    )
    placement.reusable("media/proxy.mp4")["sha256"] = EDITED  # type: ignore[index]
    assert placement.reusable("media/proxy.mp4") is not None


def test_paths_to_check_are_the_wanted_and_the_listed_without_the_manifest():
    previous = manifest(("captions/de.vtt", OURS), ("project.json", OURS))
    assert plan.paths_to_check(["index.html", "project.json"], previous) == [
        "captions/de.vtt",
        "index.html",
    ]
    assert plan.paths_to_check(["b", "a", "a"], None) == ["a", "b"]


def test_reusable_never_for_a_path_that_is_the_captioners():
    # The file matches what the service once wrote, but the path is theirs:
    # the service's version goes beside it and must be written there.
    previous = manifest(("captions/en.vtt", OURS), edits=("captions/en.vtt",))
    placement = plan.place(
        ["captions/en.vtt"], previous=previous, on_disk={"captions/en.vtt": OURS}, revision=2
    )
    assert placement.reusable("captions/en.vtt") is None

"""Collections and saved searches become one bundle per distinct asset."""

import uuid

import pytest

from tests.support.service import custom_action_body
from tests.support.stack import stack


def cid(name):
    """A collection's (or saved search's) Iconik id, stable per name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-expand/{name}"))


def asset(asset_id):
    return {"id": asset_id, "object_type": "assets", "title": "t"}


def collection(name):
    return {"id": cid(name), "object_type": "collections", "title": name}


def test_nested_collections_with_a_cycle_give_one_bundle_per_asset(tmp_path):
    with stack(tmp_path, allow_original_media=True) as s:
        a = s.seeded
        s.sim.collections.update(
            {
                cid("root"): [asset(a.normal), collection("season"), collection("extras")],
                cid("season"): [
                    asset(a.transcoding),
                    asset(a.normal),
                    collection("root"),
                    collection("deeper"),
                ],
                cid("deeper"): [asset(a.traversal_title), collection("season")],
                cid("extras"): [asset(a.original_only), asset(a.traversal_title)],
            }
        )
        answer = s.send(
            custom_action_body(context="COLLECTION", asset_ids=[], collection_ids=[cid("root")])
        )
        s.drain()
        builds = [
            t["asset_id"] for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"
        ]
        expected = {a.normal, a.transcoding, a.traversal_title, a.original_only}
        assert sorted(builds) == sorted(expected)
        folders = [p.name for p in s.root.iterdir() if not p.name.startswith(".")]
        assert len(folders) == 4 and all(any(x in f for x in expected) for f in folders)


def test_collection_contents_are_followed_across_pages(tmp_path):
    with stack(tmp_path) as s:
        # Fifteen entries on pages of ten (the simulator's default page size).
        s.sim.collections[cid("big")] = [collection(f"empty-{i}") for i in range(14)] + [
            asset(s.seeded.normal)
        ]
        for i in range(14):
            s.sim.collections[cid(f"empty-{i}")] = []
        answer = s.send(
            custom_action_body(context="COLLECTION", collection_ids=[cid("big")], asset_ids=[])
        )
        s.drain()
        assert [
            t["asset_id"] for t in s.status(answer["request_id"])["tasks"] if t["kind"] == "build"
        ] == [s.seeded.normal]


@pytest.mark.slow
def test_saved_search_gives_one_bundle_per_asset_collections_included(tmp_path):
    with stack(tmp_path, allow_original_media=True) as s:
        a = s.seeded
        # A collection in the results is expanded like a COLLECTION click:
        # nested, cycle-safe, each asset once across everything found.
        s.sim.collections.update(
            {
                cid("found"): [asset(a.original_only), collection("inner"), asset(a.normal)],
                cid("inner"): [asset(a.traversal_title), collection("found")],
            }
        )
        s.sim.saved_searches[cid("search-1")] = [
            asset(a.normal),
            asset(a.large),
            asset(a.normal),
            collection("found"),
        ]
        answer = s.send(
            custom_action_body(
                context="SAVED_SEARCH", asset_ids=[], saved_search_ids=[cid("search-1")]
            )
        )
        s.drain()
        status = s.status(answer["request_id"])
        assert status["status"] == "done"
        assert sorted(t["asset_id"] for t in status["tasks"] if t["kind"] == "build") == sorted(
            [a.normal, a.large, a.original_only, a.traversal_title]
        )


def test_a_missing_collection_in_saved_search_results_fails_with_a_reason(tmp_path):
    with stack(tmp_path) as s:
        s.sim.saved_searches[cid("search-1")] = [asset(s.seeded.normal), collection("gone")]
        answer = s.send(
            custom_action_body(
                context="SAVED_SEARCH", asset_ids=[], saved_search_ids=[cid("search-1")]
            )
        )
        s.drain()
        [expand] = s.status(answer["request_id"])["tasks"]
        assert (expand["state"], expand["error"]) == (
            "failed",
            f"collection {cid('gone')} not found in Iconik",
        )


def test_unknown_collection_fails_with_a_reason(tmp_path):
    with stack(tmp_path) as s:
        answer = s.send(
            custom_action_body(context="COLLECTION", asset_ids=[], collection_ids=[cid("missing")])
        )
        s.drain()
        [expand] = s.status(answer["request_id"])["tasks"]
        assert expand["state"] == "failed"
        assert expand["error"] == f"collection {cid('missing')} not found in Iconik"


def test_empty_selection_fails_with_a_reason(tmp_path):
    with stack(tmp_path) as s:
        answer = s.send(custom_action_body(context="BULK", asset_ids=[]))
        s.drain()
        [expand] = s.status(answer["request_id"])["tasks"]
        assert "named no assets" in expand["error"]

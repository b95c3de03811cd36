"""A click's assets are read from Iconik's search in batches (issue 18), end to end.

Against the simulator over real HTTP (tests/support/stack.py): the builds of a click
take each asset, its proxies (signed URLs), files and metadata from one
search of many assets, and call per asset only for the subtitle listing and
each track; an asset the search index does not have yet is read per asset;
a signed URL is never used after it expired. Calls are counted by endpoint
on the simulator's request log.
"""

from __future__ import annotations

import collections
import re

import anyio

from simulator import APPLICATION, Blob, make_srt, make_vtt
from tests.support.service import PAYLOAD_AUTH_TOKEN, custom_action_body
from tests.support.stack import Stack, stack, with_worker

OTHER_VIEW = "0b0c0000-0000-4000-8000-0000000000f1"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _add_assets(s: Stack, count: int, prefix: str = "bulk") -> list[str]:
    """`count` assets with a proxy and metadata; every 4th with an `en` track and its .srt."""
    ids = []
    for n in range(count):
        sim = s.sim.add_asset(f"{prefix}-{n}", f"Bulk {n}")
        s.sim.add_proxy(sim, name=f"{prefix}_{n}.mp4", blob=Blob(512, seed=f"{prefix}-{n}"))
        if n % 4 == 0:
            s.sim.add_subtitle(sim, "en", make_vtt(f"Line {n}."), srt=make_srt(f"Line {n}."))
        sim.metadata[s.seeded.view_id] = {
            "Description": {"field_values": [{"value": f"Asset {n}"}]},
            "Genre": {"field_values": [{"value": "Drama"}, {"value": "Coastal"}]},
        }
        # Set through another view: not one the bundles show.
        sim.metadata[OTHER_VIEW] = {"Internal": {"field_values": [{"value": "secret-ish"}]}}
        ids.append(sim.asset["id"])
    return ids


def _by_endpoint(calls: list[tuple[str, str]]) -> collections.Counter[str]:
    return collections.Counter(f"{m} {_UUID.sub('{id}', p)}" for m, p in calls)


def _builds(status: dict) -> dict[str, str]:
    return {t["asset_id"]: t["state"] for t in status["tasks"] if t["kind"] == "build"}


def test_a_click_of_40_assets_makes_at_most_one_and_a_half_calls_per_asset(tmp_path):
    with stack(tmp_path, worker_concurrency=4) as s:
        ids = _add_assets(s, 40)
        before = len(s.sim.requests)
        answer = s.send(custom_action_body(context="BULK", asset_ids=ids))
        s.run_until_drained()
        status = s.status(answer["request_id"])
        calls = s.sim.requests[before:]
        manifest = s.manifest(ids[4])
    assert _builds(status) == dict.fromkeys(ids, "done")
    by_endpoint = _by_endpoint(calls)
    assert len(calls) <= 1.5 * len(ids), by_endpoint
    # Per asset: the subtitle listing, and each track; nothing else.
    assert by_endpoint["GET /API/files/v1/assets/{id}/subtitles/"] == 40
    assert by_endpoint["GET /API/files/v1/assets/{id}/subtitles/{id}/webvtt/"] == 0  # "en"
    assert sum(n for e, n in by_endpoint.items() if e.endswith("/en/webvtt/")) == 10
    for per_asset in (
        "GET /API/assets/v1/assets/{id}/",
        "GET /API/files/v1/assets/{id}/proxies/",
        "GET /API/files/v1/assets/{id}/files/",
        "GET /API/metadata/v1/assets/{id}/views/{id}/",
    ):
        assert by_endpoint[per_asset] == 0, per_asset
    # The user's search said what may be bundled; the application's searched only that.
    searches = [(who, ids_) for who, ids_ in s.sim.searches]
    assert {who for who, _ in searches} == {"editor", APPLICATION}
    assert all(set(asked) <= set(ids) for who, asked in searches if who == APPLICATION)
    # What the search gave is what the bundle holds: the view's fields, the
    # proxy's bytes, the track and Iconik's .srt of it.
    assert manifest["asset"]["metadata"] == {
        "Description": "Asset 4",
        "Genre": ["Drama", "Coastal"],
    }
    kinds = sorted((f["kind"], f.get("format") or "") for f in manifest["files"])
    assert ("media", "MP4") in kinds and ("caption", "srt") in kinds, kinds


def test_an_asset_missing_from_the_search_index_is_bundled_by_per_asset_reads(tmp_path):
    # Just created: Iconik's search does not find it yet, for the user nor the application.
    with stack(tmp_path) as s:
        ids = _add_assets(s, 3)
        fresh = ids[1]
        s.sim.search_lag.add(fresh)
        answer = s.send(custom_action_body(context="BULK", asset_ids=ids))
        s.drain()
        status = s.status(answer["request_id"])
        manifest = s.manifest(fresh)
    assert _builds(status) == dict.fromkeys(ids, "done")
    app_reads = {p for m, p, who in s.sim.calls_by if who == APPLICATION and m == "GET"}
    assert f"/API/assets/v1/assets/{fresh}/" in app_reads
    assert f"/API/files/v1/assets/{fresh}/proxies/" in app_reads
    assert f"/API/metadata/v1/assets/{fresh}/views/{s.seeded.view_id}/" in app_reads
    assert manifest["asset"]["metadata"]["Description"] == "Asset 1"
    # The others came from the search.
    assert not {f"/API/assets/v1/assets/{a}/" for a in (ids[0], ids[2])} & app_reads


def test_a_signed_url_from_the_search_is_not_used_after_it_expired(tmp_path):
    # Iconik's signed URLs live 150 s here; a build that runs later than that
    # after the search reads its asset again rather than use the old URL.
    with stack(tmp_path) as s:
        ids = _add_assets(s, 3)
        s.sim.signed_url_life = 150.0
        s.sim.url_clock = s.clock
        answer = s.send(custom_action_body(context="BULK", asset_ids=ids))

        async def steps(worker, queue) -> None:
            assert await worker.run_once()  # the expand
            assert await worker.run_once()  # one build: its search signs all three
            s.clock.now += 200  # the others wait past the URLs' life
            while await worker.run_once():
                pass

        anyio.run(with_worker, s.settings, s.clock, steps)
        status = s.status(answer["request_id"])
    assert _builds(status) == dict.fromkeys(ids, "done")
    assert all(t["attempts"] == 1 for t in status["tasks"])
    assert s.sim.expired_refusals == 0  # no expired URL was fetched
    app_searches = [asked for who, asked in s.sim.searches if who == APPLICATION]
    assert len(app_searches) == 2 and set(app_searches[1]) < set(ids)


def test_a_refresh_from_a_webhook_reads_per_asset(tmp_path):
    from tests.support.service import webhook_body

    with stack(tmp_path) as s:
        [asset] = _add_assets(s, 1)
        s.send(custom_action_body(context="BULK", asset_ids=[asset]))
        s.drain()
        searches = len(s.sim.searches)
        s.sim.assets[asset].metadata[s.seeded.view_id]["Description"] = {
            "field_values": [{"value": "Changed"}]
        }
        answer = s.webhook(webhook_body(object_id=asset, operation="update", data={"id": asset}))
        assert answer.status_code == 202, answer.text
        s.drain()
        manifest = s.manifest(asset)
    assert len(s.sim.searches) == searches  # no search: the per-asset reads are current
    assert manifest["asset"]["metadata"]["Description"] == "Changed"


def test_the_user_may_not_read_an_asset_the_application_never_searches_for_it(tmp_path):
    with stack(tmp_path) as s:
        ids = _add_assets(s, 4)
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(ids[2])
        answer = s.send(custom_action_body(context="BULK", asset_ids=ids))
        s.drain()
        status = s.status(answer["request_id"])
    assert _builds(status) == {**dict.fromkeys(ids, "done"), ids[2]: "failed"}
    app_searched = {a for who, asked in s.sim.searches if who == APPLICATION for a in asked}
    assert app_searched == set(ids) - {ids[2]}


def test_an_application_role_without_can_search_reads_per_asset(tmp_path):
    with stack(tmp_path) as s:
        ids = _add_assets(s, 2)
        s.sim.fail_next("/API/search/v1/search/", None, 403)  # the user's passes; the builds' not
        answer = s.send(custom_action_body(context="BULK", asset_ids=ids))
        s.drain()
        status = s.status(answer["request_id"])
        manifest = s.manifest(ids[0])
    assert _builds(status) == dict.fromkeys(ids, "done")
    assert all(t["attempts"] == 1 for t in status["tasks"])
    app_reads = {p for m, p, who in s.sim.calls_by if who == APPLICATION and m == "GET"}
    assert {f"/API/assets/v1/assets/{a}/" for a in ids} <= app_reads
    assert manifest["asset"]["metadata"]["Description"] == "Asset 0"

"""A click acts with the clicking user's Iconik rights (issue 16), end to end.

The simulator's users (simulator/users.py) have rights: a user's
token does not see the assets that user may not read. The service reads
collections and saved searches with the click's `auth_token`, checks every
asset with Iconik's search under it, and never falls back to the
application token; the token itself is sealed at rest, deleted once the
expand task ends, and never logged or shown.
"""

from __future__ import annotations

import json
import sqlite3
import uuid

import anyio
import httpx2
import pytest
import structlog

from service.iconik.client import BadResponse, IconikClient, UnusableId, UserTokenRefused
from service.work.expand import CLICK_AGAIN, NOT_READABLE, READ_AS_USER
from simulator import APPLICATION
from tests.support.extract_openapi import USED
from tests.support.iconik_api import operation_for
from tests.support.service import PAYLOAD_AUTH_TOKEN, custom_action_body
from tests.support.stack import stack

COLLECTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "test-rights/collection"))
SEARCH = str(uuid.uuid5(uuid.NAMESPACE_URL, "test-rights/search"))


def _asset(asset_id: str) -> dict[str, str]:
    return {"id": asset_id, "object_type": "assets", "title": "t"}


def _builds(status: dict) -> dict[str, tuple[str, str | None]]:
    return {t["asset_id"]: (t["state"], t["error"]) for t in status["tasks"] if t["asset_id"]}


def _folders(s) -> list[str]:
    return (
        [p.name for p in s.root.iterdir() if not p.name.startswith(".")] if s.root.exists() else []
    )


def _user_calls(s) -> list[tuple[str, str]]:
    return [(m, p) for m, p, who in s.sim.calls_by if who != APPLICATION]


def _app_listings(s) -> list[str]:
    """Collection or saved-search reads made with the application token, and its
    searches that named an asset the clicking user may not read (a build's search
    by id of what the user may read is a read of those assets, as per asset)."""
    hidden = s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read
    return [
        p
        for m, p, who in s.sim.calls_by
        if who == APPLICATION and ("/collections/" in p or "/search/saved/" in p)
    ] + [
        f"search of {ids}"
        for who, ids in s.sim.searches
        if who == APPLICATION and hidden & set(ids)
    ]


def test_a_collection_bundles_only_what_the_clicking_user_may_read(tmp_path):
    with stack(tmp_path) as s:
        a = s.seeded
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(a.large)
        s.sim.collections[COLLECTION] = [_asset(a.normal), _asset(a.large)]
        answer = s.send(
            custom_action_body(context="COLLECTION", asset_ids=[], collection_ids=[COLLECTION])
        )
        s.drain()
        status = s.status(answer["request_id"])
    assert _builds(status) == {a.normal: ("done", None)}
    assert not any(a.large in folder for folder in _folders(s))
    [expand] = [t for t in status["tasks"] if t["kind"] == "expand"]
    assert expand["state"] == "done" and expand["error"] == READ_AS_USER
    # Read as the user: the collection and the search; never as the application.
    assert ("GET", f"/API/assets/v1/collections/{COLLECTION}/contents/") in _user_calls(s)
    assert ("POST", "/API/search/v1/search/") in _user_calls(s)
    assert _app_listings(s) == []
    assert all(m == "GET" or p == "/API/search/v1/search/" for m, p in _user_calls(s))
    used = {f"{m} {p}" for m, p in USED}
    assert [f"{m} {p}" for m, p in s.sim.requests if operation_for(m, p) not in used] == []


def test_a_saved_search_is_read_with_the_users_rights(tmp_path):
    with stack(tmp_path) as s:
        a = s.seeded
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(a.large)
        s.sim.saved_searches[SEARCH] = [_asset(a.normal), _asset(a.large)]
        answer = s.send(
            custom_action_body(context="SAVED_SEARCH", asset_ids=[], saved_search_ids=[SEARCH])
        )
        s.drain()
        status = s.status(answer["request_id"])
    assert _builds(status) == {a.normal: ("done", None)}
    assert _app_listings(s) == []


def test_a_selected_asset_the_user_may_not_read_is_not_bundled_and_the_status_says_why(tmp_path):
    with stack(tmp_path) as s:
        a = s.seeded
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(a.large)
        answer = s.send(custom_action_body(context="BULK", asset_ids=[a.normal, a.large]))
        s.drain()
        status = s.status(answer["request_id"])
        [job] = s.sim.jobs.values()
    assert _builds(status) == {a.normal: ("done", None), a.large: ("failed", NOT_READABLE)}
    assert status["status"] == "done_with_errors"
    assert not any(a.large in folder for folder in _folders(s))
    assert job["status"] == "FINISHED_WITH_WARNING" and NOT_READABLE in job["message"]
    # One search covered both assets; the unreadable one was asked for once by id.
    searches = [p for m, p in _user_calls(s) if m == "POST"]
    assert searches == ["/API/search/v1/search/"]
    # The application token never read the asset the user may not read.
    assert not [p for m, p, who in s.sim.calls_by if who == APPLICATION and a.large in p]


def test_the_job_of_an_asset_the_user_may_not_read_does_not_show_its_title(tmp_path):
    """The job is the user's to see: its name must not tell them the title of
    an asset their own rights hide (it was read with the application's token)."""
    with stack(tmp_path) as s:
        a = s.seeded
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(a.large)
        answer = s.send(custom_action_body(context="ASSET", asset_ids=[a.large]))
        s.drain()
        status = s.status(answer["request_id"])
        [job] = s.sim.jobs.values()
        hidden_title = s.sim.assets[a.large].asset["title"]
    assert _builds(status) == {a.large: ("failed", NOT_READABLE)}
    assert job["title"] == f"Send to Captioning: {a.large}"
    assert hidden_title not in json.dumps(job)
    assert not [p for m, p, who in s.sim.calls_by if who == APPLICATION and a.large in p]


def test_an_asset_missing_from_the_search_index_is_asked_for_by_id(tmp_path):
    # Iconik's search index can lag behind a fresh upload: not found by the
    # search, but readable by id, it is bundled.
    with stack(tmp_path) as s:
        a = s.seeded
        s.sim.search_lag.add(a.normal)
        answer = s.send(custom_action_body(context="ASSET", asset_ids=[a.normal]))
        s.drain()
        status = s.status(answer["request_id"])
    assert _builds(status) == {a.normal: ("done", None)}
    assert ("GET", f"/API/assets/v1/assets/{a.normal}/") in _user_calls(s)


def test_an_expired_user_token_fails_the_request_asking_to_click_again(tmp_path):
    with stack(tmp_path) as s:
        a = s.seeded
        s.sim.collections[COLLECTION] = [_asset(a.normal), _asset(a.large)]
        s.sim.expire_user(PAYLOAD_AUTH_TOKEN)
        answer = s.send(
            custom_action_body(context="COLLECTION", asset_ids=[], collection_ids=[COLLECTION])
        )
        s.drain()
        status = s.status(answer["request_id"])
    [expand] = status["tasks"]
    assert expand["state"] == "failed" and expand["attempts"] == 1
    assert CLICK_AGAIN in expand["error"] and "expired" in expand["error"]
    assert status["status"] == "failed"
    assert _folders(s) == []
    assert _app_listings(s) == []  # no fallback to the application's wider view


def test_a_click_without_a_user_token_fails_saying_so(tmp_path):
    with stack(tmp_path) as s:
        body = json.loads(custom_action_body(context="BULK", asset_ids=[s.seeded.normal]))
        del body["auth_token"]
        answer = s.send(json.dumps(body).encode())
        s.drain()
        [expand] = s.status(answer["request_id"])["tasks"]
    assert expand["state"] == "failed"
    assert "no user token" in expand["error"] and "CLICK_RIGHTS=application" in expand["error"]
    assert _folders(s) == []


def test_click_rights_application_is_the_applications_wider_view(tmp_path):
    with stack(tmp_path, click_rights="application") as s:
        a = s.seeded
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(a.large)
        s.sim.collections[COLLECTION] = [_asset(a.normal), _asset(a.large)]
        answer = s.send(
            custom_action_body(context="COLLECTION", asset_ids=[], collection_ids=[COLLECTION])
        )
        with sqlite3.connect(s.settings.sqlite_path) as db:
            [(stored,)] = db.execute("SELECT user_token FROM requests").fetchall()
        s.drain()
        status = s.status(answer["request_id"])
    assert stored is None  # not kept at all
    assert _builds(status) == {a.normal: ("done", None), a.large: ("done", None)}
    assert _user_calls(s) == []


def _at_rest(s) -> bytes:
    folder = s.settings.sqlite_path.parent
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_the_user_token_is_sealed_at_rest_deleted_once_used_and_never_shown(tmp_path):
    secret = PAYLOAD_AUTH_TOKEN.encode()
    with stack(tmp_path) as s, structlog.testing.capture_logs() as events:
        a = s.seeded
        s.sim.users[PAYLOAD_AUTH_TOKEN].cannot_read.add(a.large)
        answer = s.send(custom_action_body(context="BULK", asset_ids=[a.normal, a.large]))
        with sqlite3.connect(s.settings.sqlite_path) as db:
            [(sealed,)] = db.execute("SELECT user_token FROM requests").fetchall()
        queued_bytes = _at_rest(s)
        status_while_queued = s.status(answer["request_id"])
        s.drain()
        with sqlite3.connect(s.settings.sqlite_path) as db:
            [(after,)] = db.execute("SELECT user_token FROM requests").fetchall()
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        done_bytes = _at_rest(s)
        status_done = s.status(answer["request_id"])
    assert sealed and secret not in sealed.encode()  # stored, but sealed
    assert secret not in queued_bytes and secret not in done_bytes
    assert after is None  # deleted in the transaction that ended the expand task
    assert sealed.encode() not in done_bytes  # and not left behind in the file
    for shown in (status_while_queued, status_done):
        assert PAYLOAD_AUTH_TOKEN not in json.dumps(shown) and sealed not in json.dumps(shown)
    logged = repr(events)
    assert PAYLOAD_AUTH_TOKEN not in logged and sealed not in logged
    assert any(e.get("event") == "task.done" for e in events)  # the capture saw the work


def test_the_user_view_of_the_client_reads_only_and_never_echoes_the_token():
    seen: list[tuple[str, str, str]] = []

    def iconik(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, request.url.path, request.headers["auth-token"]))
        if "expired" in request.url.path:
            return httpx2.Response(401, json={"errors": ["Token is invalid"]})
        if "echo" in request.url.path:
            return httpx2.Response(400, text=f"bad token {request.headers['auth-token']}")
        return httpx2.Response(200, json={"objects": [], "pages": 1})

    async def main() -> None:
        async with IconikClient(
            "https://iconik.test", "app", "app-token", transport=httpx2.MockTransport(iconik)
        ) as client:
            user = client.for_user("user-token")
            await user.get_json("/API/assets/v1/collections/x/contents/")
            await user.search_assets(["0a1b2c3d-0000-4000-8000-00000000a001"])
            for method, path in [("POST", "/API/jobs/v1/jobs/"), ("PATCH", "/API/jobs/v1/j/")]:
                with pytest.raises(UnusableId, match="reads only"):
                    await user.request(method, path, json={})
            with pytest.raises(UserTokenRefused):
                await user.get_json("/API/expired/")
            with pytest.raises(BadResponse) as answer:
                await user.get_json("/API/echo/")
            assert "user-token" not in str(answer.value)
            await user.aclose()  # a view closes nothing: the client still works
            await client.get_json("/API/assets/v1/collections/x/contents/")

    anyio.run(main)
    assert [who for _, _, who in seen] == ["user-token"] * 4 + ["app-token"]
    assert ("POST", "/API/search/v1/search/", "user-token") in seen


def test_the_search_asks_a_few_hundred_ids_a_call_and_stops_when_iconik_ignores_the_filter():
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"search/{n}")) for n in range(600)]
    bodies: list[dict] = []
    ignore_filter = False

    def iconik(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if ignore_filter:  # every asset of the domain, page after page
            others = [{"id": str(uuid.uuid4()), "object_type": "assets", "title": "x"}]
            return httpx2.Response(200, json={"objects": others, "page": 1, "pages": 99})
        [term] = body["filter"]["terms"]
        found = [{"id": i, "object_type": "assets", "title": "t"} for i in term["value_in"]]
        return httpx2.Response(200, json={"objects": found, "page": 1, "pages": 1})

    async def main() -> None:
        nonlocal ignore_filter
        async with IconikClient(
            "https://iconik.test", "app", "t", transport=httpx2.MockTransport(iconik)
        ) as client:
            found = await client.search_assets(ids)
            assert sorted(d["id"] for d in found) == sorted(ids)
            assert [len(b["filter"]["terms"][0]["value_in"]) for b in bodies] == [250, 250, 100]
            ignore_filter = True
            with pytest.raises(BadResponse, match="more than 20 pages"):
                await client.search_assets(ids[:3])
            with pytest.raises(UnusableId):
                await client.search_assets([ids[0], "../x"])

    anyio.run(main)
    assert len(bodies) == 3 + 20  # and nothing for the id that is not one

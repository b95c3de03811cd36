"""Ids reach Iconik paths only as Iconik ids; URLs from Iconik only as http(s) (issue 16).

From a payload, anything but an Iconik id is a 400 at intake. From Iconik
(a listing, a proxy, a download URL), it is a task failed with a reason
that says so, never an "internal error" and never a request to a path the
service does not document: asserted on the simulator's request log.
"""

from __future__ import annotations

import json
import uuid

import httpx2
import pytest

from service.iconik.paths import checked_download_url, checked_path
from service.ids import is_iconik_id
from tests.support.extract_openapi import USED
from tests.support.iconik_api import operation_for
from tests.support.service import PAYLOAD_AUTH_TOKEN, custom_action_body, signed, webhook_body
from tests.support.stack import stack

GOOD = "0a1b2c3d-0000-4000-8000-00000000a001"
HOSTILE = [
    "../../API/notifications/v1/webhooks",
    "..",
    "%2e%2e",
    "%2e%2e%2fAPI",
    GOOD + "\n",
    " " + GOOD,
    GOOD + "/../x",
    "{" + GOOD + "}",
    GOOD.replace("-", ""),
    "not-a-uuid",
    "",
]
LIST_FIELDS = ["asset_ids", "collection_ids", "saved_search_ids"]
SCALAR_FIELDS = ["user_id", "action_id", "system_domain_id", "metadata_view_id"]


def test_only_canonical_uuids_are_iconik_ids():
    assert is_iconik_id(GOOD) and is_iconik_id(GOOD.upper())
    for value in [*HOSTILE, None, 7, ["x"]]:
        assert not is_iconik_id(value), value


def test_the_client_refuses_paths_and_urls_that_could_steer_a_request():
    assert checked_path(f"/API/assets/v1/assets/{GOOD}/") == f"/API/assets/v1/assets/{GOOD}/"
    assert checked_path("/API/assets/v1/collections/x/contents/?page=2&per_page=100")
    for path in [
        "/API/assets/v1/assets/../../notifications/v1/webhooks/",
        "/API/assets/v1/assets/%2e%2e/",
        f"/API/assets/v1/assets/{GOOD}\n/",
        "/API/assets/v1/assets/a b/",
        "/elsewhere/",
        "//evil.example/API/",
        "/API/x/?a=b#frag",
    ]:
        with pytest.raises(Exception, match="refusing to call Iconik"):
            checked_path(path)
    assert checked_download_url("https://storage.example/x?sig=1", "it")
    for url in ["file:///etc/passwd", "/storage/x", "ftp://h/x", "http:///x", "data:,x", ""]:
        with pytest.raises(Exception, match="Iconik gave an unusable download URL"):
            checked_download_url(url, "it")


def _only_documented_calls(sim) -> list[str]:
    used = {f"{m} {p}" for m, p in USED}
    return [f"{m} {p}" for m, p in sim.requests if operation_for(m, p) not in used]


@pytest.mark.slow
def test_hostile_ids_in_every_field_of_a_click_are_refused_at_intake(tmp_path):
    with stack(tmp_path) as s:
        url = s.app_url + "/iconik/custom-action"
        for field in LIST_FIELDS + SCALAR_FIELDS:
            for value in HOSTILE:
                overrides = {field: [GOOD, value] if field in LIST_FIELDS else value}
                if field != "asset_ids":
                    overrides.setdefault("asset_ids", [GOOD])
                body = custom_action_body(context="BULK", **overrides)
                answer = httpx2.post(url, content=body, headers=signed(body))
                assert answer.status_code == 400, (field, value, answer.text)
                refusal = answer.json()
                assert refusal["error"] == "bad_payload"
                assert field in refusal["detail"] and "not an Iconik id" in refusal["detail"]
                if value.strip():
                    assert value.strip() not in refusal["detail"]  # described, never quoted
                assert PAYLOAD_AUTH_TOKEN not in answer.text
        s.drain()
    assert s.sim.requests == []  # nothing was stored, so nothing reached Iconik


@pytest.mark.slow
def test_hostile_ids_in_a_webhook_are_refused_at_intake(tmp_path):
    with stack(tmp_path) as s:
        for value in HOSTILE:
            for body in (
                webhook_body(object_id=value, operation="delete"),
                webhook_body(
                    object_id=GOOD, realm="proxies", operation="create", data={"asset_id": value}
                ),
            ):
                answer = s.webhook(body)
                if value == "":  # names no asset: an event the service ignores
                    assert answer.json() == {"ignored": True}
                    continue
                assert answer.status_code == 400, (value, answer.text)
                assert "not an Iconik id" in answer.json()["detail"]
        s.drain()
    assert s.sim.requests == []


def test_an_upper_case_id_is_taken_as_the_same_asset(tmp_path):
    with stack(tmp_path) as s:
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal.upper()]))
        s.drain()
        status = s.status(answer["request_id"])
    assert [(t["asset_id"], t["state"]) for t in status["tasks"] if t["asset_id"]] == [
        (s.seeded.normal, "done")
    ]


def _collection(sim, items) -> str:
    collection_id = str(uuid.uuid4())
    sim.collections[collection_id] = items
    return collection_id


@pytest.mark.slow
def test_a_hostile_id_in_an_iconik_listing_fails_the_request_with_a_reason(tmp_path):
    with stack(tmp_path) as s:
        for kind in ("assets", "collections"):
            collection_id = _collection(
                s.sim,
                [
                    {"id": s.seeded.normal, "object_type": "assets"},
                    {"id": "../../notifications/v1/webhooks", "object_type": kind},
                ],
            )
            answer = s.send(
                custom_action_body(
                    context="COLLECTION", asset_ids=[], collection_ids=[collection_id]
                )
            )
            s.drain()
            [expand] = s.status(answer["request_id"])["tasks"]
            assert expand["state"] == "failed" and expand["attempts"] == 1
            assert f"Iconik listed an item of collection {collection_id}" in expand["error"]
            assert "not an Iconik id" in expand["error"]
        assert _only_documented_calls(s.sim) == []
        assert not [p for _, p in s.sim.requests if "webhooks" in p]


def test_a_hostile_proxy_id_from_iconik_fails_the_build_with_a_reason(tmp_path):
    with stack(tmp_path) as s:
        proxy = s.sim.assets[s.seeded.normal].proxies[0]
        proxy["id"] = "../../../notifications/v1/webhooks"
        # Without a signed URL in the listing, the proxy's id goes into a path.
        s.sim.with_urls = lambda request, kind, items: items
        s.sim.sign_search_urls = False  # nor in the search of the click's assets
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        [build] = [t for t in s.status(answer["request_id"])["tasks"] if t["asset_id"]]
    assert build["state"] == "failed" and build["attempts"] == 1
    assert "proxy" in build["error"] and "not an Iconik id" in build["error"]
    assert "internal error" not in build["error"]
    assert _only_documented_calls(s.sim) == []


@pytest.mark.parametrize("bad_url", ["file:///etc/passwd", "/storage/elsewhere", "gopher://x/"])
def test_an_unusable_download_url_from_iconik_fails_the_build_with_a_reason(tmp_path, bad_url):
    with stack(tmp_path) as s:
        signed_url = s.sim.signed_url

        def hostile(request, key):
            return bad_url if key.startswith("proxies/") else signed_url(request, key)

        s.sim.signed_url = hostile
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        [build] = [t for t in s.status(answer["request_id"])["tasks"] if t["asset_id"]]
        manifests = [p for p in s.root.glob("*/project.json")] if s.root.exists() else []
    assert build["state"] == "failed" and build["attempts"] == 1
    assert build["error"].startswith("Iconik gave an unusable download URL for the proxy")
    assert "internal error" not in build["error"] and "etc/passwd" not in build["error"]
    assert manifests == []
    assert json.dumps(s.sim.downloads).count("proxies") == 0

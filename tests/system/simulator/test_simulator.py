"""The simulator speaks Iconik's published API, and the client asks only for what exists."""

import httpx2
import jsonschema
import pytest

from simulator import Simulator
from tests.support.extract_openapi import USED
from tests.support.iconik_api import (
    operation_for,
    operations,
    request_schema,
    schema,
    strict_schema,
    validated,
)
from tests.support.servers import running
from tests.support.service import custom_action_body
from tests.support.stack import APP_ID, stack

TOKEN = "sim-token"
C1, C2 = "0c000000-0000-4000-8000-0000000000c1", "0c000000-0000-4000-8000-0000000000c2"
S1 = "05000000-0000-4000-8000-000000000051"


@pytest.mark.slow
def test_every_request_the_service_made_exists_in_iconiks_api(tmp_path):
    with stack(tmp_path, allow_original_media=True) as s:
        s.sim.collections[C1] = [{"id": s.seeded.normal, "object_type": "assets"}]
        s.send(custom_action_body(context="BULK", asset_ids=s.seeded.all))
        s.send(custom_action_body(context="COLLECTION", asset_ids=[], collection_ids=[C1]))
        s.sim.saved_searches[S1] = [{"id": s.seeded.large, "object_type": "assets"}]
        s.send(custom_action_body(context="SAVED_SEARCH", asset_ids=[], saved_search_ids=[S1]))
        s.drain()
        made = {(m, p) for m, p in s.sim.requests}
    used = {f"{m} {p}" for m, p in USED}
    unknown = sorted(f"{m} {p}" for m, p in made if operation_for(m, p) not in used)
    assert unknown == []
    # And the run reached a good part of what the client can do.
    assert len({operation_for(m, p) for m, p in made}) >= 10


@pytest.fixture(scope="module")
def sim_server():
    sim = Simulator(APP_ID, TOKEN)
    seeded = sim.seed(large_proxy_bytes=1024)
    sim.collections[C1] = [
        {"id": seeded.normal, "object_type": "assets", "title": "Harbour Lights: Episode 1"},
        {"id": C2, "object_type": "collections", "title": "Sub"},
    ]
    with running(sim.app()) as url:
        yield (
            sim,
            seeded,
            httpx2.Client(base_url=url, headers={"App-ID": APP_ID, "Auth-Token": TOKEN}),
        )


def _validate_search(response):
    """A search's answer: the page as SearchDocumentsSchema, each asset document as
    assets.json's AssetElasticSchema (what the search of assets holds), strictly."""
    key = "POST /API/search/v1/search/"
    assert response.status_code == operations()[key]["status"], response.text
    page = operations()[key]["response"]["schema"]
    envelope = {**page, "properties": {**page["properties"], "objects": {"type": "array"}}}
    jsonschema.validate(response.json(), strict_schema(envelope))
    for document in response.json()["objects"]:
        assert document["object_type"] == "assets"
        jsonschema.validate(document, strict_schema(schema("AssetElasticSchema")))
    return response


def test_simulator_responses_validate_against_iconiks_schemas(sim_server):
    sim, seeded, client = sim_server
    asset = seeded.normal
    proxy = sim.assets[asset].proxies[0]["id"]
    file_id = sim.assets[asset].files[0]["id"]
    gets = [
        f"/API/assets/v1/assets/{asset}/",
        f"/API/files/v1/assets/{asset}/proxies/",
        f"/API/files/v1/assets/{asset}/proxies/{proxy}/download_url/",
        f"/API/files/v1/assets/{asset}/files/",
        f"/API/files/v1/assets/{asset}/files/{file_id}/download_url/",
        f"/API/files/v1/assets/{asset}/subtitles/",
        f"/API/files/v1/assets/{asset}/subtitles/en/webvtt/",
        f"/API/files/v1/assets/{asset}/subtitles/fr/cc/webvtt/",
        f"/API/metadata/v1/assets/{asset}/views/{seeded.view_id}/",
        f"/API/assets/v1/collections/{C1}/contents/",
        f"/API/metadata/v1/views/{seeded.view_id}/",
        f"/API/metadata/v1/views/{seeded.form_view_id}/",
    ]
    for path in gets:
        validated("GET", path, client.get(path))
    job = {
        "title": "Captioning",
        "type": "CUSTOM",
        "status": "STARTED",
        "progress_total": 2,
        "progress_processed": 0,
    }
    created = validated("POST", "/API/jobs/v1/jobs/", client.post("/API/jobs/v1/jobs/", json=job))
    job_path = f"/API/jobs/v1/jobs/{created.json()['id']}/"
    validated("PATCH", job_path, client.patch(job_path, json={"status": "FINISHED"}))


def _valid_request(method, template, body):
    jsonschema.validate(body, request_schema(operations()[f"{method} {template}"]["request"]))


def test_caption_track_writes_validate_and_replace_in_place(sim_server):
    sim, seeded, client = sim_server
    asset = seeded.traversal_title
    base = "/API/files/v1/assets/{asset_id}"
    fmt = {
        "name": "SUBTITLES",
        "metadata": [{"subtitle_language": "es", "subtitle_closed_captions": "false"}],
    }
    _valid_request("POST", f"{base}/formats/", fmt)
    formats = f"/API/files/v1/assets/{asset}/formats/"
    created = validated("POST", formats, client.post(formats, json=fmt)).json()
    subtitle = {
        "format_id": created["id"],
        "language": "es",
        "closed_captions": False,
        "name": "es",
        "content": "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHola\n",
    }
    _valid_request("POST", f"{base}/subtitles/", subtitle)
    subtitles = f"/API/files/v1/assets/{asset}/subtitles/"
    track = validated("POST", subtitles, client.post(subtitles, json=subtitle)).json()
    assert client.get(subtitles + "es/webvtt/").text.endswith("Hola\n")

    replaced = {**subtitle, "content": subtitle["content"].replace("Hola", "Buenas")}
    _valid_request("PUT", f"{base}/subtitles/{{subtitle_id}}/", replaced)
    one = f"{subtitles}{track['id']}/"
    validated("PUT", one, client.put(one, json=replaced))
    assert client.get(subtitles + "es/webvtt/").text.endswith("Buenas\n")
    assert [t["id"] for t in sim.tracks(asset, "es", False)] == [track["id"]]
    validated("GET", subtitles, client.get(subtitles))  # the list still fits its schema
    assert ("PUT", one, replaced) in sim.bodies

    # What Iconik would refuse, the simulator refuses too.
    assert client.post(subtitles, json={**subtitle, "content": "not webvtt"}).status_code == 400
    assert client.post(subtitles, json={**subtitle, "format_id": "nope"}).status_code == 400
    assert client.post(subtitles, json={**subtitle, "colour": "red"}).status_code == 400
    assert client.post(formats, json={"metadata": []}).status_code == 400
    assert client.put(f"{subtitles}no-such-id/", json=replaced).status_code == 404


def test_strict_validation_would_catch_an_undeclared_field(sim_server):
    _sim, seeded, client = sim_server
    spec = operations()["GET /API/assets/v1/assets/{asset_id}/"]
    body = client.get(f"/API/assets/v1/assets/{seeded.normal}/").json()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "not_in_iconik": 1}, strict_schema(spec["response"]["schema"]))


def test_paging_and_errors_look_like_iconik(sim_server):
    _sim, seeded, client = sim_server
    first = client.get(f"/API/files/v1/assets/{seeded.normal}/proxies/", params={"per_page": 1})
    last_id = first.json()["objects"][0]["id"]
    second = client.get(
        f"/API/files/v1/assets/{seeded.normal}/proxies/", params={"per_page": 1, "last_id": last_id}
    )
    assert second.json()["objects"][0]["id"] != last_id
    page = client.get(f"/API/assets/v1/collections/{C1}/contents/", params={"per_page": 1}).json()
    assert page["next_url"].startswith(f"/API/assets/v1/collections/{C1}/contents/?page=2")
    missing = client.get("/API/assets/v1/assets/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404 and missing.json() == {"errors": ["Asset does not exist"]}
    unauthorised = httpx2.get(str(client.base_url) + f"/API/assets/v1/assets/{seeded.normal}/")
    assert unauthorised.status_code == 401


def test_storage_urls_need_no_credentials_and_stream_generated_bytes(sim_server):
    sim, seeded, client = sim_server
    large = sim.assets[seeded.large].proxies[0]["id"]
    url = client.get(f"/API/files/v1/assets/{seeded.large}/proxies/{large}/download_url/").json()
    body = httpx2.get(url["url"]).content
    assert len(body) == 1024 and body == httpx2.get(url["url"]).content


def test_search_validates_and_honours_each_users_rights(sim_server):
    sim, seeded, client = sim_server
    hidden, seen = seeded.large, seeded.normal
    sim.add_user("viewer-token", "viewer", cannot_read=(hidden,))
    sim.add_user("gone-token", "gone").expired = True
    viewer = {"App-ID": APP_ID, "Auth-Token": "viewer-token"}
    body = {
        "doc_types": ["assets"],
        "filter": {"operator": "AND", "terms": [{"name": "id", "value_in": [seen, hidden]}]},
    }
    _valid_request("POST", "/API/search/v1/search/", body)
    params = {"per_page": 100, "generate_signed_url": "false", "save_search_history": "false"}
    path = "/API/search/v1/search/"
    as_app = _validate_search(client.post(path, params=params, json=body)).json()
    assert sorted(o["id"] for o in as_app["objects"]) == sorted([seen, hidden])
    as_viewer = client.post(path, params=params, json=body, headers=viewer)
    assert [o["id"] for o in _validate_search(as_viewer).json()["objects"]] == [seen]
    # Asked for ids only (as the expand task asks), a document is Iconik's plain one.
    only_ids = {**body, "include_fields": ["id", "title"]}
    plain = validated("POST", path, client.post(path, params=params, json=only_ids)).json()
    assert {tuple(sorted(o)) for o in plain["objects"]} == {("id", "object_type", "title")}
    # By id, in a collection: what the viewer may not read is not there for them.
    assert client.get(f"/API/assets/v1/assets/{hidden}/", headers=viewer).status_code == 404
    assert client.get(f"/API/assets/v1/assets/{seen}/", headers=viewer).status_code == 200
    sim.collections[C2] = [
        {"id": seen, "object_type": "assets"},
        {"id": hidden, "object_type": "assets"},
    ]
    listed = client.get(f"/API/assets/v1/collections/{C2}/contents/", headers=viewer).json()
    assert [o["id"] for o in listed["objects"]] == [seen]
    # An expired user token is refused like any invalid token.
    expired = {"App-ID": APP_ID, "Auth-Token": "gone-token"}
    assert client.post(path, json=body, headers=expired).status_code == 401
    # What Iconik would refuse, the simulator refuses too.
    assert client.post(path, json={"filter": {"terms": []}}).status_code == 400
    assert client.post(path, json={"doc_types": ["files"]}).status_code == 400
    assert client.post(path, json={"colour": "red"}).status_code == 400
    assert client.post(path, json=[]).status_code == 400
    assert ("POST", path, "viewer") in sim.calls_by


def test_search_documents_hold_proxies_files_and_metadata_with_urls_on_request(sim_server):
    sim, seeded, client = sim_server
    path = "/API/search/v1/search/"
    body = {
        "doc_types": ["assets"],
        "filter": {"operator": "AND", "terms": [{"name": "id", "value_in": [seeded.normal]}]},
    }
    plain = _validate_search(client.post(path, params={"per_page": 10}, json=body)).json()
    [document] = plain["objects"]
    assert [p["id"] for p in document["proxies"]] == [
        p["id"] for p in sim.assets[seeded.normal].proxies
    ]
    assert not any("url" in p for p in document["proxies"] + document["files"])
    assert document["metadata"]["Genre"] == ["Drama", "Coastal"]  # by field, as lists
    flags = {
        "per_page": 10,
        "generate_signed_proxy_url": "true",
        "generate_signed_download_url": "true",
    }
    [signed] = _validate_search(client.post(path, params=flags, json=body)).json()["objects"]
    assert all(p["url"] for p in signed["proxies"]) and all(f["url"] for f in signed["files"])
    # The view's definition says which fields it shows.
    view = client.get(f"/API/metadata/v1/views/{seeded.view_id}/").json()
    assert {f["name"] for f in view["view_fields"]} == {"Description", "Genre"}
    missing = client.get("/API/metadata/v1/views/00000000-0000-4000-8000-000000000000/")
    assert missing.status_code == 404


def test_a_signed_url_past_its_life_is_refused_by_storage():
    from tests.support.clock import FakeClock
    from tests.support.stack import STACK_EPOCH

    sim = Simulator(APP_ID, TOKEN)
    seeded = sim.seed(large_proxy_bytes=1024)
    clock = FakeClock(STACK_EPOCH)
    sim.signed_url_life, sim.url_clock = 60.0, clock
    with running(sim.app()) as url:
        client = httpx2.Client(base_url=url, headers={"App-ID": APP_ID, "Auth-Token": TOKEN})
        proxy = sim.assets[seeded.large].proxies[0]["id"]
        link = client.get(f"/API/files/v1/assets/{seeded.large}/proxies/{proxy}/download_url/")
        signed = link.json()["url"]
        assert httpx2.get(signed).status_code == 200
        clock.now += 61
        assert httpx2.get(signed).status_code == 403
    assert sim.expired_refusals == 1

"""The simulator's metadata writes (fields, views, an asset's values) against Iconik's spec."""

import httpx2
import jsonschema

from service.commands import register_status
from service.work import caption_status
from simulator import Simulator
from tests.support.iconik_api import operations, request_schema, validated
from tests.support.servers import running
from tests.support.stack import APP_ID

TOKEN = "sim-token"


def _valid_request(method, template, body):
    jsonschema.validate(body, request_schema(operations()[f"{method} {template}"]["request"]))


def test_field_view_and_values_validate_and_are_refused_as_iconik_would():
    sim = Simulator(APP_ID, TOKEN)
    asset = sim.seed(large_proxy_bytes=1024).normal
    with running(sim.app()) as url:
        client = httpx2.Client(base_url=url, headers={"App-ID": APP_ID, "Auth-Token": TOKEN})
        field = register_status.desired_field("caption_status")
        _valid_request("POST", "/API/metadata/v1/fields/", field)
        validated(
            "POST", "/API/metadata/v1/fields/", client.post("/API/metadata/v1/fields/", json=field)
        )
        assert client.post("/API/metadata/v1/fields/", json=field).status_code == 400  # exists
        one = "/API/metadata/v1/fields/caption_status/"
        validated("GET", one, client.get(one))
        validated("GET", "/API/metadata/v1/fields/", client.get("/API/metadata/v1/fields/"))
        assert client.get("/API/metadata/v1/fields/nope/").status_code == 404

        view = {"name": "Status", "view_fields": [{"name": "caption_status", "label": "State"}]}
        _valid_request("POST", "/API/metadata/v1/views/", view)
        views = "/API/metadata/v1/views/"
        made = validated("POST", views, client.post(views, json=view)).json()
        validated("GET", views, client.get(views))
        unknown = {"name": "x", "view_fields": [{"name": "not_a_field"}]}
        assert client.post(views, json=unknown).status_code == 400

        values = caption_status.values_body("caption_status", "In captioning")
        template = "/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/"
        _valid_request("PUT", template, values)
        path = f"/API/metadata/v1/assets/{asset}/views/{made['id']}/"
        validated("PUT", path, client.put(path, json=values))
        validated("GET", path, client.get(path))
        assert sim.metadata_value(asset, made["id"], "caption_status") == "In captioning"
        outside = caption_status.values_body("notes", "x")
        assert client.put(path, json=outside).status_code == 400  # not a field of the view
        nowhere = f"/API/metadata/v1/assets/{asset}/views/00000000-0000-4000-8000-000000000000/"
        assert client.put(nowhere, json=values).status_code == 404
        assert len(sim.metadata_writes) == 1

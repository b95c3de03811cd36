"""The simulator's metadata writes: fields, views, and an asset's values in a view.

What `caption-bridge register` calls to make the captioning-state field and
its view (service/commands/register_status.py), and what the worker calls to keep that
field current (service/work/caption_status.py):

- `GET/POST /API/metadata/v1/fields/`, `GET /API/metadata/v1/fields/{name}/`;
- `GET/POST /API/metadata/v1/views/` (a view names fields that exist);
- `PUT /API/metadata/v1/{object_type}/{object_id}/views/{view_id}/`: each
  value in `metadata_values` overwrites the field's (Iconik's default
  `mode`), and must be a field of that view.

Shapes are Iconik's (MetadataFieldSchema, MetadataViewSchema,
MetadataValuesSchema); tests/system/simulator/test_simulator_metadata.py checks them against
the published spec. `metadata_writes` (state.py) lists each PUT, for tests to count.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.state import IconikState, errors, json_object, now

# MetadataViewFieldSchema: a field as a view lists it.
_VIEW_FIELD_KEYS = {"name", "label", "auto_set", "hide_if_not_set", "options", "read_only"}
_FIELD_KEYS = {"name", "label", "field_type", "description", "read_only", "multi", "options"}


async def all_fields(sim: IconikState, request: Request) -> Response:
    if request.method == "GET":
        objects = list(sim.fields.values())
        return JSONResponse(
            {"objects": objects, "page": 1, "pages": 1, "per_page": 500, "total": len(objects)}
        )
    body = await json_object(request)
    if body is None:
        return errors(400, "the body must be a JSON object")
    missing = [k for k in ("name", "label", "field_type") if not isinstance(body.get(k), str)]
    if missing:
        return errors(400, f"{missing}: Missing data for required field.")
    if body["name"] in sim.fields:
        return errors(400, f"Field with name {body['name']} already exists")
    field = {
        **{k: v for k, v in body.items() if k in _FIELD_KEYS},
        "date_created": now(),
        "date_modified": now(),
    }
    sim.fields[field["name"]] = field
    return JSONResponse(field, status_code=201)


async def one_field(sim: IconikState, request: Request) -> Response:
    field = sim.fields.get(request.path_params["field_name"])
    return JSONResponse(field) if field else errors(404, "Metadata field doesn't exist")


async def all_views(sim: IconikState, request: Request) -> Response:
    if request.method == "GET":  # listed views show their fields as a view holds them
        return JSONResponse(
            {
                "objects": [
                    {
                        **view,
                        "view_fields": [
                            {k: v for k, v in f.items() if k in _VIEW_FIELD_KEYS}
                            for f in view["view_fields"]
                        ],
                    }
                    for view in sim.views.values()
                ]
            }
        )
    body = await json_object(request)
    if body is None or not isinstance(body.get("name"), str):
        return errors(400, "name: Missing data for required field.")
    view_fields = body.get("view_fields")
    if not isinstance(view_fields, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) for f in view_fields
    ):
        return errors(400, "view_fields: a list of objects with a name")
    unknown = [f["name"] for f in view_fields if f["name"] not in sim.fields]
    if unknown:
        return errors(400, f"view_fields: no such field {unknown}")
    view = {
        "id": str(uuid.uuid4()),
        "name": body["name"],
        "description": body.get("description"),
        "date_created": now(),
        "date_modified": now(),
        "view_fields": [{**sim.fields[f["name"]], **f} for f in view_fields],
    }
    sim.views[view["id"]] = view
    return JSONResponse(view, status_code=201)


async def put_values(sim: IconikState, request: Request) -> Response:
    params = request.path_params
    view = sim.views.get(params["view_id"])
    if view is None:
        return errors(404, "Metadata view doesn't exist")
    # An asset in the recycle bin (deleted) keeps its metadata, as in Iconik.
    asset = sim.assets.get(params["object_id"]) if params["object_type"] == "assets" else None
    if asset is None:
        return errors(404, "Object doesn't exist")
    body = await json_object(request)
    values = body.get("metadata_values") if body else None
    if not isinstance(values, dict):
        return errors(400, "metadata_values: Missing data for required field.")
    in_view = {f["name"] for f in view["view_fields"]}
    for name, value in values.items():
        if name not in in_view:
            return errors(400, f"metadata_values: {name} is not a field of this view")
        if not isinstance(value, dict) or not isinstance(value.get("field_values"), list):
            return errors(400, f"metadata_values.{name}: field_values is required")
    stored = asset.metadata.setdefault(params["view_id"], {})
    stored.update({name: {"field_values": v["field_values"]} for name, v in values.items()})
    sim.metadata_writes.append((params["object_id"], params["view_id"], values))
    return JSONResponse(
        {
            "object_id": params["object_id"],
            "object_type": "assets",
            "metadata_values": stored,
            "date_modified": now(),
        }
    )


_BASE = "/API/metadata/v1"
ENDPOINTS = [
    (f"{_BASE}/fields/", all_fields, ["GET", "POST"]),
    (f"{_BASE}/fields/{{field_name}}/", one_field, ["GET"]),
    (f"{_BASE}/views/", all_views, ["GET", "POST"]),
    (f"{_BASE}/{{object_type}}/{{object_id}}/views/{{view_id}}/", put_values, ["PUT"]),
]

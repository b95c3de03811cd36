"""The simulator's metadata writes: fields, views, and an asset's values in a view.

What `caption-bridge register` calls to make the captioning-state field and
its view (service/register_status.py), and what the worker calls to keep that
field current (service/caption_status.py):

- `GET/POST /API/metadata/v1/fields/`, `GET /API/metadata/v1/fields/{name}/`;
- `GET/POST /API/metadata/v1/views/` (a view names fields that exist);
- `PUT /API/metadata/v1/{object_type}/{object_id}/views/{view_id}/`: each
  value in `metadata_values` overwrites the field's (Iconik's default
  `mode`), and must be a field of that view.

Shapes are Iconik's (MetadataFieldSchema, MetadataViewSchema,
MetadataValuesSchema); tests/test_simulator_metadata.py checks them against
the published spec. `metadata_writes` lists each PUT, for tests to count.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from service.simulator import SimAsset

# MetadataViewFieldSchema: a field as a view lists it.
_VIEW_FIELD_KEYS = {"name", "label", "auto_set", "hide_if_not_set", "options", "read_only"}
_FIELD_KEYS = {"name", "label", "field_type", "description", "read_only", "multi", "options"}


def _errors(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [message]}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class MetadataWrites:
    """Mixed into `Simulator`: metadata fields, views made through the API, values."""

    assets: dict[str, SimAsset]
    views: dict[str, dict[str, Any]]
    if TYPE_CHECKING:  # Simulator's: credentials, faults and recording

        def _api(self, handler: Any) -> Any: ...

    def _init_metadata(self) -> None:
        self.fields: dict[str, dict[str, Any]] = {}  # metadata fields, by name
        # Every asset metadata write, as (asset_id, view_id, metadata_values).
        self.metadata_writes: list[tuple[str, str, dict[str, Any]]] = []

    def metadata_value(self, asset_id: str, view_id: str, field: str) -> Any:
        """The first value of `field` on the asset in that view, or None (for tests)."""
        values = self.assets[asset_id].metadata.get(view_id, {}).get(field) or {}
        first = (values.get("field_values") or [{}])[0]
        return first.get("value")

    def metadata_routes(self) -> list[Route]:
        base = "/API/metadata/v1"
        return [
            Route(f"{base}/fields/", self._api(self._fields), methods=["GET", "POST"]),
            Route(f"{base}/fields/{{field_name}}/", self._api(self._field), methods=["GET"]),
            Route(f"{base}/views/", self._api(self._views), methods=["GET", "POST"]),
            Route(
                f"{base}/{{object_type}}/{{object_id}}/views/{{view_id}}/",
                self._api(self._put_values),
                methods=["PUT"],
            ),
        ]

    async def _fields(self, request: Request) -> Response:
        if request.method == "GET":
            objects = list(self.fields.values())
            return JSONResponse(
                {"objects": objects, "page": 1, "pages": 1, "per_page": 500, "total": len(objects)}
            )
        body = await _json_object(request)
        if body is None:
            return _errors(400, "the body must be a JSON object")
        missing = [k for k in ("name", "label", "field_type") if not isinstance(body.get(k), str)]
        if missing:
            return _errors(400, f"{missing}: Missing data for required field.")
        if body["name"] in self.fields:
            return _errors(400, f"Field with name {body['name']} already exists")
        field = {
            **{k: v for k, v in body.items() if k in _FIELD_KEYS},
            "date_created": _now(),
            "date_modified": _now(),
        }
        self.fields[field["name"]] = field
        return JSONResponse(field, status_code=201)

    async def _field(self, request: Request) -> Response:
        field = self.fields.get(request.path_params["field_name"])
        return JSONResponse(field) if field else _errors(404, "Metadata field doesn't exist")

    async def _views(self, request: Request) -> Response:
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
                        for view in self.views.values()
                    ]
                }
            )
        body = await _json_object(request)
        if body is None or not isinstance(body.get("name"), str):
            return _errors(400, "name: Missing data for required field.")
        view_fields = body.get("view_fields")
        if not isinstance(view_fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) for f in view_fields
        ):
            return _errors(400, "view_fields: a list of objects with a name")
        unknown = [f["name"] for f in view_fields if f["name"] not in self.fields]
        if unknown:
            return _errors(400, f"view_fields: no such field {unknown}")
        view = {
            "id": str(uuid.uuid4()),
            "name": body["name"],
            "description": body.get("description"),
            "date_created": _now(),
            "date_modified": _now(),
            "view_fields": [{**self.fields[f["name"]], **f} for f in view_fields],
        }
        self.views[view["id"]] = view
        return JSONResponse(view, status_code=201)

    async def _put_values(self, request: Request) -> Response:
        params = request.path_params
        view = self.views.get(params["view_id"])
        if view is None:
            return _errors(404, "Metadata view doesn't exist")
        # An asset in the recycle bin (deleted) keeps its metadata, as in Iconik.
        sim = self.assets.get(params["object_id"]) if params["object_type"] == "assets" else None
        if sim is None:
            return _errors(404, "Object doesn't exist")
        body = await _json_object(request)
        values = body.get("metadata_values") if body else None
        if not isinstance(values, dict):
            return _errors(400, "metadata_values: Missing data for required field.")
        in_view = {f["name"] for f in view["view_fields"]}
        for name, value in values.items():
            if name not in in_view:
                return _errors(400, f"metadata_values: {name} is not a field of this view")
            if not isinstance(value, dict) or not isinstance(value.get("field_values"), list):
                return _errors(400, f"metadata_values.{name}: field_values is required")
        stored = sim.metadata.setdefault(params["view_id"], {})
        stored.update({name: {"field_values": v["field_values"]} for name, v in values.items()})
        self.metadata_writes.append((params["object_id"], params["view_id"], values))
        return JSONResponse(
            {
                "object_id": params["object_id"],
                "object_type": "assets",
                "metadata_values": stored,
                "date_modified": _now(),
            }
        )

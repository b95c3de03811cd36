"""The simulator's caption-track writes: an asset's formats and subtitles.

What the deliver task (service/deliver/task.py) calls: `POST .../formats/`,
`POST .../subtitles/` and `PUT .../subtitles/{subtitle_id}/`. Bodies are
checked as Iconik would refuse them (400 with `errors`), and a POST of a
track that already exists adds a second one, as in Iconik, so a test sees
it when the service fails to replace instead. The bodies themselves are
checked against Iconik's published schemas by tests/system/simulator/test_simulator.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import webvtt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from webvtt.errors import MalformedCaptionError, MalformedFileError

from simulator.state import IconikState, SimAsset, errors, json_object
from simulator.users import visible_asset
from simulator.webhooks import asset_event

_SUBTITLE_FIELDS = {"language", "closed_captions", "format_id", "name", "content", "version_id"}


async def create_format(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    if asset is None:
        return errors(404, "Asset does not exist")
    body = await json_object(request)
    if body is None or not isinstance(body.get("name"), str) or not body["name"]:
        return errors(400, "name: Missing data for required field.")
    metadata = body.get("metadata", [])
    if not isinstance(metadata, list) or not all(
        isinstance(m, dict) and all(isinstance(v, str) for v in m.values()) for m in metadata
    ):
        return errors(400, "metadata: a list of objects of strings")
    record = {
        "id": str(uuid.uuid4()),
        "asset_id": asset.asset["id"],
        "name": body["name"],
        "metadata": metadata,
        "status": "ACTIVE",
        "archive_status": "NOT_ARCHIVED",
        "is_online": True,
        "storage_methods": [],
        "version_id": asset.asset["versions"][0]["id"],
    }
    sim.formats[record["id"]] = record
    return JSONResponse(record, status_code=201)


async def create_subtitle(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    if asset is None:
        return errors(404, "Asset does not exist")
    body = await _subtitle_body(sim, asset, request)
    if isinstance(body, Response):
        return body
    record = {
        "id": str(uuid.uuid4()),
        "asset_id": asset.asset["id"],
        "language": body["language"],
        "closed_captions": body["closed_captions"],
        "format_id": body["format_id"],
        "name": body.get("name") or body["language"],
        "version_id": asset.asset["versions"][0]["id"],
    }
    asset.subtitles.append(record)
    asset.webvtt[(record["language"], record["closed_captions"])] = body["content"]
    # Iconik tells its webhooks (webhooks.py), after the answer.
    event = asset_event(sim, asset.asset["id"], "create", "subtitles", record["id"], record)
    return JSONResponse(record, status_code=201, background=event)


async def update_subtitle(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    subtitle_id = request.path_params["subtitle_id"]
    subtitles = asset.subtitles if asset else []
    record = next((s for s in subtitles if s["id"] == subtitle_id), None)
    if asset is None or record is None:
        return errors(404, "Subtitle for this asset doesn't exist")
    body = await _subtitle_body(sim, asset, request)
    if isinstance(body, Response):
        return body
    old = (record["language"], record["closed_captions"])
    record.update({k: body[k] for k in ("language", "closed_captions", "format_id", "name")})
    if old != (record["language"], record["closed_captions"]):
        asset.webvtt.pop(old, None)
    asset.webvtt[(record["language"], record["closed_captions"])] = body["content"]
    event = asset_event(sim, asset.asset["id"], "update", "subtitles", record["id"], record)
    return JSONResponse(record, background=event)


async def _subtitle_body(
    sim: IconikState, asset: SimAsset, request: Request
) -> dict[str, Any] | Response:
    """The request's subtitle, or the 400 Iconik would answer."""
    body = await json_object(request)
    problem = _subtitle_problem(sim, asset, body)
    if problem is not None or body is None:
        return errors(400, problem or "the body must be a JSON object")
    return body


def _subtitle_problem(sim: IconikState, asset: SimAsset, body: dict[str, Any] | None) -> str | None:
    if body is None:
        return "the body must be a JSON object"
    unknown = sorted(set(body) - _SUBTITLE_FIELDS)
    if unknown:
        return f"{unknown}: Unknown field."
    for field, kind in (("language", str), ("closed_captions", bool), ("format_id", str)):
        if not isinstance(body.get(field), kind):
            return f"{field}: Missing data for required field."
    fmt = sim.formats.get(body["format_id"]) or {}
    known = {s["format_id"] for s in asset.subtitles}
    if fmt.get("asset_id") != asset.asset["id"] and body["format_id"] not in known:
        return "format_id: no such format on this asset"
    if not isinstance(body.get("content"), str):
        return "content: the WebVTT text is required"
    try:
        webvtt.from_string(body["content"], strict=True)
    except (MalformedFileError, MalformedCaptionError) as exc:
        return f"content: not WebVTT ({exc})"
    return None


_BASE = "/API/files/v1/assets/{asset_id}"
ENDPOINTS = [
    (f"{_BASE}/formats/", create_format, ["POST"]),
    (f"{_BASE}/subtitles/", create_subtitle, ["POST"]),
    (f"{_BASE}/subtitles/{{subtitle_id}}/", update_subtitle, ["PUT"]),
]

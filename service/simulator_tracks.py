"""The simulator's caption-track writes: an asset's formats and subtitles.

What the deliver task (service/deliver.py) calls: `POST .../formats/`,
`POST .../subtitles/` and `PUT .../subtitles/{subtitle_id}/`. Bodies are
checked as Iconik would refuse them (400 with `errors`), and a POST of a
track that already exists adds a second one, as in Iconik, so a test sees
it when the service fails to replace instead. The bodies themselves are
checked against Iconik's published schemas by tests/test_simulator.py.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import webvtt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from webvtt.errors import MalformedCaptionError, MalformedFileError

if TYPE_CHECKING:
    from service.simulator import SimAsset

_SUBTITLE_FIELDS = {"language", "closed_captions", "format_id", "name", "content", "version_id"}


def _errors(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [message]}, status_code=status)


class TrackWrites:
    """Mixed into `Simulator`, whose state (assets, formats) it changes."""

    assets: dict[str, SimAsset]
    formats: dict[str, dict[str, Any]]
    if TYPE_CHECKING:  # Simulator's: credentials, faults and recording; the asset asked for

        def _api(self, handler: Any) -> Any: ...
        def _asset(self, request: Request) -> SimAsset | None: ...
        def asset_event(
            self, asset_id: str, operation: str, realm: str, object_id: str, data: dict[str, Any]
        ) -> Any: ...

    def track_routes(self) -> list[Route]:
        base = "/API/files/v1/assets/{asset_id}"
        return [
            Route(f"{base}/formats/", self._api(self._create_format), methods=["POST"]),
            Route(f"{base}/subtitles/", self._api(self._create_subtitle), methods=["POST"]),
            Route(
                f"{base}/subtitles/{{subtitle_id}}/",
                self._api(self._update_subtitle),
                methods=["PUT"],
            ),
        ]

    def tracks(self, asset_id: str, language: str, closed_captions: bool) -> list[dict[str, Any]]:
        """The asset's subtitle records of one language and kind (for tests)."""
        return [
            s
            for s in self.assets[asset_id].subtitles
            if (s["language"], s["closed_captions"]) == (language, closed_captions)
        ]

    async def _create_format(self, request: Request) -> Response:
        sim = self._asset(request)
        if sim is None:
            return _errors(404, "Asset does not exist")
        body = await _json_object(request)
        if body is None or not isinstance(body.get("name"), str) or not body["name"]:
            return _errors(400, "name: Missing data for required field.")
        metadata = body.get("metadata", [])
        if not isinstance(metadata, list) or not all(
            isinstance(m, dict) and all(isinstance(v, str) for v in m.values()) for m in metadata
        ):
            return _errors(400, "metadata: a list of objects of strings")
        record = {
            "id": str(uuid.uuid4()),
            "asset_id": sim.asset["id"],
            "name": body["name"],
            "metadata": metadata,
            "status": "ACTIVE",
            "archive_status": "NOT_ARCHIVED",
            "is_online": True,
            "storage_methods": [],
            "version_id": sim.asset["versions"][0]["id"],
        }
        self.formats[record["id"]] = record
        return JSONResponse(record, status_code=201)

    async def _create_subtitle(self, request: Request) -> Response:
        sim = self._asset(request)
        if sim is None:
            return _errors(404, "Asset does not exist")
        body = await self._subtitle_body(sim, request)
        if isinstance(body, Response):
            return body
        record = {
            "id": str(uuid.uuid4()),
            "asset_id": sim.asset["id"],
            "language": body["language"],
            "closed_captions": body["closed_captions"],
            "format_id": body["format_id"],
            "name": body.get("name") or body["language"],
            "version_id": sim.asset["versions"][0]["id"],
        }
        sim.subtitles.append(record)
        sim.webvtt[(record["language"], record["closed_captions"])] = body["content"]
        # Iconik tells its webhooks (simulator_webhooks.py), after the answer.
        event = self.asset_event(sim.asset["id"], "create", "subtitles", record["id"], record)
        return JSONResponse(record, status_code=201, background=event)

    async def _update_subtitle(self, request: Request) -> Response:
        sim = self._asset(request)
        subtitle_id = request.path_params["subtitle_id"]
        record = next((s for s in (sim.subtitles if sim else []) if s["id"] == subtitle_id), None)
        if sim is None or record is None:
            return _errors(404, "Subtitle for this asset doesn't exist")
        body = await self._subtitle_body(sim, request)
        if isinstance(body, Response):
            return body
        old = (record["language"], record["closed_captions"])
        record.update({k: body[k] for k in ("language", "closed_captions", "format_id", "name")})
        if old != (record["language"], record["closed_captions"]):
            sim.webvtt.pop(old, None)
        sim.webvtt[(record["language"], record["closed_captions"])] = body["content"]
        event = self.asset_event(sim.asset["id"], "update", "subtitles", record["id"], record)
        return JSONResponse(record, background=event)

    async def _subtitle_body(self, sim: SimAsset, request: Request) -> dict[str, Any] | Response:
        """The request's subtitle, or the 400 Iconik would answer."""
        body = await _json_object(request)
        problem = self._subtitle_problem(sim, body)
        if problem is not None or body is None:
            return _errors(400, problem or "the body must be a JSON object")
        return body

    def _subtitle_problem(self, sim: SimAsset, body: dict[str, Any] | None) -> str | None:
        if body is None:
            return "the body must be a JSON object"
        unknown = sorted(set(body) - _SUBTITLE_FIELDS)
        if unknown:
            return f"{unknown}: Unknown field."
        for field, kind in (("language", str), ("closed_captions", bool), ("format_id", str)):
            if not isinstance(body.get(field), kind):
                return f"{field}: Missing data for required field."
        fmt = self.formats.get(body["format_id"]) or {}
        known = {s["format_id"] for s in sim.subtitles}
        if fmt.get("asset_id") != sim.asset["id"] and body["format_id"] not in known:
            return "format_id: no such format on this asset"
        if not isinstance(body.get("content"), str):
            return "content: the WebVTT text is required"
        try:
            webvtt.from_string(body["content"], strict=True)
        except (MalformedFileError, MalformedCaptionError) as exc:
            return f"content: not WebVTT ({exc})"
        return None


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None

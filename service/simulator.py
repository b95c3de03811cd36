"""A local stand-in for Iconik, over real HTTP, for the demo and the tests.

It serves the API paths the client uses, with Iconik's response shapes (the
tests validate them against Iconik's published OpenAPI schemas), and
`/storage/` paths for the signed download URLs, outside `/API`, that want
no credentials, like the cloud storage real signed URLs point to. Those
are on the simulator's own origin unless `storage_base` names another
server running `storage_app()` (as real storage is another origin).

Its state is plain Python, so tests change it directly: finish a
transcode, delete an asset, add a subtitle, fail the next few calls, or hold
a download half-way until released.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from service.simulator_metadata import MetadataWrites
from service.simulator_search import SearchDocuments
from service.simulator_seed import SeedData, Seeded, _srt, _uuid, _vtt, sample_video
from service.simulator_storage import Blob, DownloadGate, SignedStorage, served
from service.simulator_tracks import TrackWrites
from service.simulator_users import SimUser, UserRights
from service.simulator_views import MetadataViews
from service.simulator_webhooks import WebhookSender

# Re-exported: tests and the benches build simulators from these.
__all__ = [
    "ICONIK_LIMITS",
    "Blob",
    "DownloadGate",
    "Seeded",
    "SimAsset",
    "SimUser",
    "Simulator",
    "_srt",
    "_vtt",
    "sample_video",
    "track_key",
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class SimAsset:
    asset: dict[str, Any]
    proxies: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    subtitles: list[dict[str, Any]] = field(default_factory=list)
    # Each track's WebVTT: text, or a Blob for one too large to hold (served as it streams).
    webvtt: dict[tuple[str, bool], str | Blob] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Proxy listings left before a transcoding proxy turns CLOSED (None: never by itself).
    transcode_polls_left: int | None = None


# Iconik's limits per token: 50 calls in any 1 s, 1000 in any 20 s.
ICONIK_LIMITS = ((50, 1.0), (1000, 20.0))


class Simulator(
    UserRights,
    SearchDocuments,
    TrackWrites,
    SignedStorage,
    SeedData,
    MetadataViews,
    MetadataWrites,
    WebhookSender,
):
    def __init__(
        self,
        app_id: str,
        auth_token: str,
        *,
        limits: tuple[tuple[int, float], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_id = app_id
        self.auth_token = auth_token
        self.assets: dict[str, SimAsset] = {}
        self.collections: dict[str, list[dict[str, Any]]] = {}
        self.saved_searches: dict[str, list[dict[str, Any]]] = {}
        self.custom_actions: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}  # metadata view definitions, by id
        self.jobs: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, Blob] = {}
        self.requests: list[tuple[str, str]] = []  # API calls, as (method, path)
        self.bodies: list[tuple[str, str, Any]] = []  # writes, as (method, path, JSON body)
        self.formats: dict[str, dict[str, Any]] = {}  # created through the API, by id
        self.downloads: list[str] = []  # signed-URL fetches, by blob key
        self.faults: dict[str, list[int | None]] = {}
        self.storage_faults: dict[str, list[int]] = {}
        # Base URL (ending in "/") of a server running storage_app(); None: this one.
        self.storage_base: str | None = None
        self.gates: dict[str, DownloadGate] = {}
        self.cuts: dict[str, int] = {}
        # Rate limits as Iconik enforces them (`ICONIK_LIMITS`): API calls
        # over any window get 429 with a Retry-After. Off unless asked for.
        self.limits = limits
        self._clock = clock
        self._calls: deque[float] = deque()  # accepted API calls, oldest first
        self.throttled = 0  # how many calls got a 429 from the limits
        self.retry_after = "0"  # the Retry-After of 429s injected by fail_next
        self.echo_credentials = False  # injected faults quote the request's Auth-Token
        self._lock = threading.Lock()
        self._init_users()  # tokens of users, and what each may not read
        self._init_search()  # signed URLs' life
        self._init_metadata()  # fields, and asset metadata writes (simulator_metadata.py)
        self._init_webhook_sender()  # registered webhooks sent (simulator_webhooks.py)

    # -- state changes (for tests and the demo) ----------------------------

    def add_asset(self, name: str, title: str, *, duration_ms: int = 2000) -> SimAsset:
        asset_id = _uuid(name)
        now = _now()
        sim = SimAsset(
            asset={
                "id": asset_id,
                "title": title,
                "type": "ASSET",
                "status": "ACTIVE",
                "is_online": True,
                "archive_status": "NOT_ARCHIVED",
                "date_created": now,
                "date_modified": now,
                "time_start_milliseconds": 0,
                "time_end_milliseconds": duration_ms,
                "versions": [{"id": _uuid(name + "/v1"), "date_created": now}],
            }
        )
        self.assets[asset_id] = sim
        return sim

    def add_blob(self, key: str, blob: Blob) -> None:
        self.blobs[key] = blob

    def add_proxy(
        self,
        sim: SimAsset,
        *,
        name: str,
        blob: Blob,
        status: str = "CLOSED",
        width: int = 1280,
        height: int = 720,
        codec: str = "h264",
        fmt: str = "MP4",
    ) -> dict[str, Any]:
        asset_id = sim.asset["id"]
        proxy_id = _uuid(f"{asset_id}/proxy/{name}")
        self.add_blob(f"proxies/{proxy_id}", blob)
        proxy = {
            "id": proxy_id,
            "asset_id": asset_id,
            "name": name,
            "filename": name,
            "codec": codec,
            "format": fmt,
            "frame_rate": "25",
            "start_time_code": "10:00:00:00",
            "is_drop_frame": False,
            "resolution": {"width": width, "height": height},
            "size": blob.size,
            "status": status,
            "version_id": sim.asset["versions"][0]["id"],
            "storage_method": "GCS",
        }
        sim.proxies.append(proxy)
        return proxy

    def add_file(self, sim: SimAsset, *, name: str, blob: Blob, format_id: str) -> dict[str, Any]:
        asset_id = sim.asset["id"]
        file_id = _uuid(f"{asset_id}/file/{name}")
        self.add_blob(f"files/{file_id}", blob)
        record = {
            "id": file_id,
            "asset_id": asset_id,
            "name": name,
            "original_name": name,
            "directory_path": "",
            "file_set_id": _uuid(f"{asset_id}/fileset/{format_id}"),
            "format_id": format_id,
            "size": blob.size,
            "status": "CLOSED",
            "type": "FILE",
            "version_id": sim.asset["versions"][0]["id"],
        }
        sim.files.append(record)
        return record

    def add_subtitle(
        self,
        sim: SimAsset,
        language: str,
        webvtt: str | Blob,
        *,
        closed_captions: bool = False,
        srt: str | Blob | None = None,
    ) -> dict[str, Any]:
        asset_id = sim.asset["id"]
        format_id = _uuid(f"{asset_id}/subtitle-format/{language}/{closed_captions}")
        subtitle = {
            "id": _uuid(f"{asset_id}/subtitle/{language}/{closed_captions}"),
            "asset_id": asset_id,
            "language": language,
            "closed_captions": closed_captions,
            "format_id": format_id,
            "name": f"{language}{' (CC)' if closed_captions else ''}",
            "version_id": sim.asset["versions"][0]["id"],
        }
        sim.subtitles = [
            s
            for s in sim.subtitles
            if (s["language"], s["closed_captions"]) != (language, closed_captions)
        ] + [subtitle]
        sim.webvtt[(language, closed_captions)] = webvtt
        if srt is not None:
            if isinstance(srt, str):
                data = srt.encode()
                srt = Blob(len(data), data, content_type="text/srt")
            self.add_file(sim, name=f"{language}.srt", blob=srt, format_id=format_id)
        return subtitle

    def finish_transcode(self, asset_id: str) -> None:
        for proxy in self.assets[asset_id].proxies:
            proxy["status"] = "CLOSED"

    def delete_asset(self, asset_id: str) -> None:
        self.assets[asset_id].asset["status"] = "DELETED"

    def fail_next(self, path_fragment: str, *statuses: int | None) -> None:
        """The next calls whose path contains `path_fragment` answer these statuses.

        None lets that call through, so faults can be spread among good answers.
        """
        self.faults.setdefault(path_fragment, []).extend(statuses)

    def app(self) -> Starlette:
        api = [
            ("/API/assets/v1/assets/{asset_id}/", self._get_asset),
            ("/API/files/v1/assets/{asset_id}/proxies/", self._list_proxies),
            ("/API/files/v1/assets/{asset_id}/proxies/{proxy_id}/download_url/", self._proxy_url),
            ("/API/files/v1/assets/{asset_id}/files/", self._list_files),
            ("/API/files/v1/assets/{asset_id}/files/{file_id}/download_url/", self._file_url),
            ("/API/files/v1/assets/{asset_id}/subtitles/", self._list_subtitles),
            ("/API/files/v1/assets/{asset_id}/subtitles/{language}/webvtt/", self._webvtt),
            ("/API/files/v1/assets/{asset_id}/subtitles/{language}/cc/webvtt/", self._webvtt_cc),
            ("/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/", self._metadata),
            ("/API/assets/v1/collections/{collection_id}/contents/", self._collection_contents),
            ("/API/search/v1/search/saved/{search_id}/", self._saved_search),
        ]
        routes = [Route(path, self._api(handler), methods=["GET"]) for path, handler in api]
        routes += [
            Route("/API/jobs/v1/jobs/", self._api(self._create_job), methods=["POST"]),
            Route("/API/jobs/v1/jobs/{job_id}/", self._api(self._update_job), methods=["PATCH"]),
            Route(
                "/API/assets/v1/custom_actions/{context}/",
                self._api(self._actions),
                methods=["GET", "POST"],
            ),
            Route(
                "/API/assets/v1/custom_actions/{context}/{action_id}/",
                self._api(self._action),
                methods=["PUT", "DELETE"],
            ),
            Route(
                "/API/notifications/v1/webhooks/",
                self._api(self._webhooks),
                methods=["GET", "POST"],
            ),
            Route(
                "/API/notifications/v1/webhooks/{webhook_id}/",
                self._api(self._webhook),
                methods=["PUT", "DELETE"],
            ),
            Route("/storage/{key:path}", self._storage, methods=["GET"]),
            *self.track_routes(),
            *self.user_routes(),
            *self.view_routes(),
            *self.metadata_routes(),
        ]
        return Starlette(routes=routes)

    def _api(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def wrapped(request: Request) -> Response:
            path = request.url.path
            body = None
            if request.method in ("POST", "PUT", "PATCH"):
                try:
                    body = json.loads(await request.body())
                except ValueError:
                    body = "<not JSON>"
            with self._lock:
                self.requests.append((request.method, path))
                if request.method in ("POST", "PUT", "PATCH"):
                    self.bodies.append((request.method, path, body))
                for fragment, statuses in self.faults.items():
                    if fragment in path and statuses:
                        status = statuses.pop(0)
                        if status is None:
                            break
                        headers = {"Retry-After": self.retry_after} if status == 429 else None
                        message = "injected fault"
                        if self.echo_credentials:  # as a careless gateway does
                            message += f" for Auth-Token {request.headers.get('auth-token')}"
                        return _errors(status, message, headers)
                wait = self._over_limit()
                if wait is not None:
                    self.throttled += 1
                    return _errors(429, "Rate limit exceeded", {"Retry-After": str(wait)})
            caller = self.caller(request)  # the application, a user, or None
            if request.headers.get("app-id") != self.app_id or caller is None:
                return _errors(401, "Token is invalid")
            self.calls_by.append((request.method, path, caller))
            return await handler(request)

        return wrapped

    def _over_limit(self) -> int | None:
        """Whole seconds until a call fits every window again, or None (and counted)."""
        if not self.limits:
            return None
        now = self._clock()
        longest = max(window for _, window in self.limits)
        while self._calls and self._calls[0] <= now - longest:
            self._calls.popleft()
        waits = []
        for count, window in self.limits:
            recent = [t for t in self._calls if t > now - window]
            if len(recent) >= count:
                waits.append(recent[-count] + window - now)
        if waits:
            return max(1, math.ceil(max(waits)))
        self._calls.append(now)
        return None

    def _with_urls(self, request: Request, kind: str, items: list[dict[str, Any]]) -> Any:
        """Listing records as Iconik gives them with generate_signed_url=true (each has `url`)."""
        if request.query_params.get("generate_signed_url") != "true":
            return items
        return [
            {**item, "url": self._signed_url(request, f"{kind}/{item['id']}")} for item in items
        ]

    def _asset(self, request: Request) -> SimAsset | None:
        sim = self.assets.get(request.path_params["asset_id"])
        if sim is None or sim.asset["status"] == "DELETED":
            return None
        if not self.may_read(request, sim.asset["id"]):  # to that user, it is not there
            return None
        return sim

    async def _get_asset(self, request: Request) -> Response:
        sim = self._asset(request)
        return _errors(404, "Asset does not exist") if sim is None else JSONResponse(sim.asset)

    async def _list_proxies(self, request: Request) -> Response:
        sim = self._asset(request)
        if sim is None:
            return _errors(404, "Proxies for this asset doesn't exist")
        if sim.transcode_polls_left is not None:
            sim.transcode_polls_left -= 1
            if sim.transcode_polls_left < 0:
                self.finish_transcode(sim.asset["id"])
                sim.transcode_polls_left = None
        return _cursor_page(request, self._with_urls(request, "proxies", sim.proxies))

    async def _proxy_url(self, request: Request) -> Response:
        sim = self._asset(request)
        proxy_id = request.path_params["proxy_id"]
        if sim is None or not any(p["id"] == proxy_id for p in sim.proxies):
            return _errors(404, "Proxy for this asset doesn't exist")
        return JSONResponse({"url": self._signed_url(request, f"proxies/{proxy_id}")})

    async def _list_files(self, request: Request) -> Response:
        sim = self._asset(request)
        if sim is None:
            return _errors(404, "Files for this asset don't exist")
        return _cursor_page(request, self._with_urls(request, "files", sim.files))

    async def _file_url(self, request: Request) -> Response:
        sim = self._asset(request)
        file_id = request.path_params["file_id"]
        if sim is None or not any(f["id"] == file_id for f in sim.files):
            return _errors(404, "File for this asset doesn't exist")
        return JSONResponse({"url": self._signed_url(request, f"files/{file_id}")})

    async def _list_subtitles(self, request: Request) -> Response:
        sim = self._asset(request)
        if sim is None:
            return _errors(404, "Subtitles for this asset don't exist")
        return _cursor_page(request, sim.subtitles)

    async def _webvtt(self, request: Request, closed_captions: bool = False) -> Response:
        sim = self._asset(request)
        key = (request.path_params["language"], closed_captions)
        if sim is None or key not in sim.webvtt:
            return _errors(404, "Subtitle for this asset doesn't exist")
        track = sim.webvtt[key]
        if isinstance(track, Blob):  # streamed as generated, maybe held half-way
            gate = self.gates.pop(track_key(sim.asset["id"], *key), None)
            return StreamingResponse(
                served(track, gate), media_type="text/vtt", headers=track.headers
            )
        return Response(track, media_type="text/vtt")

    async def _webvtt_cc(self, request: Request) -> Response:
        return await self._webvtt(request, closed_captions=True)

    async def _metadata(self, request: Request) -> Response:
        params = request.path_params
        sim = self.assets.get(params["object_id"]) if params["object_type"] == "assets" else None
        values = sim.metadata.get(params["view_id"]) if sim else None
        if values is None:
            return _errors(404, "Metadata values for this object and view doesn't exist")
        return JSONResponse(
            {
                "object_id": params["object_id"],
                "object_type": "assets",
                "metadata_values": values,
                "date_modified": _now(),
            }
        )

    async def _collection_contents(self, request: Request) -> Response:
        collection_id = request.path_params["collection_id"]
        if collection_id not in self.collections:
            return _errors(404, "Collection does not exist")
        return _numbered_page(request, self.readable(request, self.collections[collection_id]))

    async def _saved_search(self, request: Request) -> Response:
        search_id = request.path_params["search_id"]
        if search_id not in self.saved_searches:
            return _errors(404, "Saved search does not exist")
        items = self.readable(request, self.saved_searches[search_id])
        if request.query_params.get("include_results") != "true":
            items = []
        return _numbered_page(request, items, {"id": search_id, "name": f"search {search_id}"})

    async def _actions(self, request: Request) -> Response:
        context = request.path_params["context"]
        if request.method == "GET":
            mine = [a for a in self.custom_actions.values() if a["context"] == context]
            return JSONResponse({"objects": mine})
        body = json.loads(await request.body())
        missing = [k for k in ("title", "url") if not body.get(k)]
        if missing:
            return _errors(400, f"missing {missing}")
        action = {
            **body,
            "context": context,
            "id": str(uuid.uuid4()),
            "status": "HEALTHY",
            "date_created": _now(),
            "date_modified": _now(),
        }
        self.custom_actions[action["id"]] = action
        return JSONResponse(action, status_code=201)

    async def _action(self, request: Request) -> Response:
        action = self.custom_actions.get(request.path_params["action_id"])
        if action is None or action["context"] != request.path_params["context"]:
            return _errors(404, "Custom action does not exist")
        if request.method == "DELETE":
            del self.custom_actions[action["id"]]
            return Response(status_code=204)
        action.update(json.loads(await request.body()), id=action["id"], date_modified=_now())
        return JSONResponse(action)

    async def _webhooks(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"objects": list(self.webhooks.values())})
        body = json.loads(await request.body())
        missing = [k for k in ("event_type", "status", "url") if not body.get(k)]
        if missing:
            return _errors(400, f"missing {missing}")
        hook = {**body, "id": str(uuid.uuid4()), "date_created": _now(), "date_modified": _now()}
        self.webhooks[hook["id"]] = hook
        return JSONResponse(hook, status_code=201)

    async def _webhook(self, request: Request) -> Response:
        hook = self.webhooks.get(request.path_params["webhook_id"])
        if hook is None:
            return _errors(404, "Webhook does not exist")
        if request.method == "DELETE":
            del self.webhooks[hook["id"]]
            return Response(status_code=204)
        hook.update(json.loads(await request.body()), id=hook["id"], date_modified=_now())
        return JSONResponse(hook)

    async def _create_job(self, request: Request) -> Response:
        job = json.loads(await request.body())
        job.update(id=str(uuid.uuid4()), date_created=_now(), date_modified=_now())
        self.jobs[job["id"]] = job
        return JSONResponse(_record_job_state(job), status_code=201)

    async def _update_job(self, request: Request) -> Response:
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return _errors(404, "Job does not exist")
        job.update(json.loads(await request.body()), date_modified=_now())
        return JSONResponse(_record_job_state(job))


def track_key(asset_id: str, language: str, closed_captions: bool) -> str:
    """What `hold_download` calls the WebVTT of a track (one that is a Blob)."""
    return f"webvtt/{asset_id}/{language}{'/cc' if closed_captions else ''}"


def _record_job_state(job: dict[str, Any]) -> dict[str, Any]:
    """Note the job's state in its history (for tests: in the order Iconik got the
    writes); return the job as Iconik shows it, without that history."""
    job.setdefault("history", []).append(job.get("status"))
    job.setdefault("processed_history", []).append(job.get("progress_processed"))
    return {k: v for k, v in job.items() if k not in ("history", "processed_history")}


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [message]}, status_code=status, headers=headers)


def _numbered_page(
    request: Request, items: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> JSONResponse:
    """Iconik's assets/search paging: `page` and `per_page`, `next_url` as a path."""
    per_page = int(request.query_params.get("per_page", 10))
    page = int(request.query_params.get("page", 1))
    pages = max(1, -(-len(items) // per_page))
    body: dict[str, Any] = {
        **(extra or {}),
        "objects": items[(page - 1) * per_page : page * per_page],
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "total": len(items),
    }
    if page < pages:
        query = "&".join(
            f"{k}={v}" for k, v in request.query_params.items() if k not in ("page", "per_page")
        )
        body["next_url"] = f"{request.url.path}?page={page + 1}&per_page={per_page}" + (
            f"&{query}" if query else ""
        )
    return JSONResponse(body)


def _cursor_page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
    """Iconik's files-service paging: `per_page`, then `last_id` of the previous page."""
    per_page = int(request.query_params.get("per_page", 10))
    last_id = request.query_params.get("last_id")
    start = 0
    if last_id:
        ids = [item["id"] for item in items]
        start = ids.index(last_id) + 1 if last_id in ids else len(items)
    page = items[start : start + per_page]
    return JSONResponse({"objects": page, "per_page": per_page, "total": len(items)})

"""The simulator's reads of assets: the asset, its proxies, files, subtitles and
metadata values, signed download URLs, and the contents of collections and
saved searches, with Iconik's two kinds of paging.

What a click's expansion and a bundle's build read (service/work/gather.py,
service/work/expand.py). An asset the caller may not read is not there for them
(users.py); a transcoding proxy turns CLOSED after `transcode_polls_left`
listings.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from simulator.blob import Blob, served
from simulator.state import IconikState, errors, now, track_key
from simulator.users import readable, visible_asset


async def get_asset(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    return errors(404, "Asset does not exist") if asset is None else JSONResponse(asset.asset)


async def list_proxies(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    if asset is None:
        return errors(404, "Proxies for this asset doesn't exist")
    if asset.transcode_polls_left is not None:
        asset.transcode_polls_left -= 1
        if asset.transcode_polls_left < 0:
            sim.finish_transcode(asset.asset["id"])
            asset.transcode_polls_left = None
    return _cursor_page(request, sim.with_urls(request, "proxies", asset.proxies))


async def proxy_url(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    proxy_id = request.path_params["proxy_id"]
    if asset is None or not any(p["id"] == proxy_id for p in asset.proxies):
        return errors(404, "Proxy for this asset doesn't exist")
    return JSONResponse({"url": sim.signed_url(request, f"proxies/{proxy_id}")})


async def list_files(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    if asset is None:
        return errors(404, "Files for this asset don't exist")
    return _cursor_page(request, sim.with_urls(request, "files", asset.files))


async def file_url(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    file_id = request.path_params["file_id"]
    if asset is None or not any(f["id"] == file_id for f in asset.files):
        return errors(404, "File for this asset doesn't exist")
    return JSONResponse({"url": sim.signed_url(request, f"files/{file_id}")})


async def list_subtitles(sim: IconikState, request: Request) -> Response:
    asset = visible_asset(sim, request)
    if asset is None:
        return errors(404, "Subtitles for this asset don't exist")
    return _cursor_page(request, asset.subtitles)


async def webvtt(sim: IconikState, request: Request, closed_captions: bool = False) -> Response:
    asset = visible_asset(sim, request)
    key = (request.path_params["language"], closed_captions)
    if asset is None or key not in asset.webvtt:
        return errors(404, "Subtitle for this asset doesn't exist")
    track = asset.webvtt[key]
    if isinstance(track, Blob):  # streamed as generated, maybe held half-way
        gate = sim.gates.pop(track_key(asset.asset["id"], *key), None)
        return StreamingResponse(served(track, gate), media_type="text/vtt", headers=track.headers)
    return Response(track, media_type="text/vtt")


async def webvtt_cc(sim: IconikState, request: Request) -> Response:
    return await webvtt(sim, request, closed_captions=True)


async def metadata_values(sim: IconikState, request: Request) -> Response:
    params = request.path_params
    asset = sim.assets.get(params["object_id"]) if params["object_type"] == "assets" else None
    values = asset.metadata.get(params["view_id"]) if asset else None
    if values is None:
        return errors(404, "Metadata values for this object and view doesn't exist")
    return JSONResponse(
        {
            "object_id": params["object_id"],
            "object_type": "assets",
            "metadata_values": values,
            "date_modified": now(),
        }
    )


async def collection_contents(sim: IconikState, request: Request) -> Response:
    collection_id = request.path_params["collection_id"]
    if collection_id not in sim.collections:
        return errors(404, "Collection does not exist")
    return _numbered_page(request, readable(sim, request, sim.collections[collection_id]))


async def saved_search(sim: IconikState, request: Request) -> Response:
    search_id = request.path_params["search_id"]
    if search_id not in sim.saved_searches:
        return errors(404, "Saved search does not exist")
    items = readable(sim, request, sim.saved_searches[search_id])
    if request.query_params.get("include_results") != "true":
        items = []
    return _numbered_page(request, items, {"id": search_id, "name": f"search {search_id}"})


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


_FILES = "/API/files/v1/assets/{asset_id}"
ENDPOINTS = [
    ("/API/assets/v1/assets/{asset_id}/", get_asset, ["GET"]),
    (f"{_FILES}/proxies/", list_proxies, ["GET"]),
    (f"{_FILES}/proxies/{{proxy_id}}/download_url/", proxy_url, ["GET"]),
    (f"{_FILES}/files/", list_files, ["GET"]),
    (f"{_FILES}/files/{{file_id}}/download_url/", file_url, ["GET"]),
    (f"{_FILES}/subtitles/", list_subtitles, ["GET"]),
    (f"{_FILES}/subtitles/{{language}}/webvtt/", webvtt, ["GET"]),
    (f"{_FILES}/subtitles/{{language}}/cc/webvtt/", webvtt_cc, ["GET"]),
    ("/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/", metadata_values, ["GET"]),
    ("/API/assets/v1/collections/{collection_id}/contents/", collection_contents, ["GET"]),
    ("/API/search/v1/search/saved/{search_id}/", saved_search, ["GET"]),
]

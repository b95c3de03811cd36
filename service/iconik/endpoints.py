"""The Iconik calls the service makes, by what the worker needs (mixed into `IconikClient`).

Each id is checked before it becomes part of a path (`checked_id`), and
each download URL Iconik gives is checked before it is returned
(`checked_download_url`); service/iconik/paths.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from service.iconik.errors import BadResponse
from service.iconik.json_stream import JsonStream
from service.iconik.paths import checked_download_url, checked_id, checked_path
from service.iconik.search import AssetSearch

if TYPE_CHECKING:
    import httpx2


class IconikEndpoints(AssetSearch):
    if TYPE_CHECKING:  # IconikClient's

        async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any: ...
        def paginate(
            self, path: str, params: dict[str, Any] | None = None, *, cursor: bool = False
        ) -> AsyncIterator[dict[str, Any]]: ...

    async def get_asset(self, asset_id: str) -> dict[str, Any]:
        asset_id = checked_id(asset_id, "the asset id")
        asset: dict[str, Any] = await self.get_json(f"/API/assets/v1/assets/{asset_id}/")
        return asset

    async def list_proxies(self, asset_id: str) -> list[dict[str, Any]]:
        params = {"generate_signed_url": "true", "content_disposition": "attachment"}
        path = f"/API/files/v1/assets/{checked_id(asset_id, 'the asset id')}/proxies/"
        return [p async for p in self.paginate(path, params, cursor=True)]

    async def proxy_download_url(self, asset_id: str, proxy_id: str) -> str:
        checked_id(asset_id, "the asset id")
        checked_id(proxy_id, f"the id Iconik gave a proxy of asset {asset_id}")
        body = await self.get_json(
            f"/API/files/v1/assets/{asset_id}/proxies/{proxy_id}/download_url/"
        )
        return _url_of(body, f"proxy {proxy_id} of asset {asset_id}")

    async def list_files(self, asset_id: str) -> list[dict[str, Any]]:
        params = {"generate_signed_url": "true", "content_disposition": "attachment"}
        path = f"/API/files/v1/assets/{checked_id(asset_id, 'the asset id')}/files/"
        return [f async for f in self.paginate(path, params, cursor=True)]

    async def file_download_url(self, asset_id: str, file_id: str) -> str:
        checked_id(asset_id, "the asset id")
        checked_id(file_id, f"the id Iconik gave a file of asset {asset_id}")
        body = await self.get_json(f"/API/files/v1/assets/{asset_id}/files/{file_id}/download_url/")
        return _url_of(body, f"file {file_id} of asset {asset_id}")

    async def list_subtitles(self, asset_id: str) -> list[dict[str, Any]]:
        path = f"/API/files/v1/assets/{checked_id(asset_id, 'the asset id')}/subtitles/"
        return [s async for s in self.paginate(path, cursor=True)]

    def subtitle_path(self, asset_id: str, language: str, closed_captions: bool) -> str:
        cc = "cc/" if closed_captions else ""
        path = f"/API/files/v1/assets/{checked_id(asset_id, 'the asset id')}/subtitles/"
        return checked_path(f"{path}{language}/{cc}webvtt/")

    async def metadata_view(self, asset_id: str, view_id: str) -> dict[str, Any]:
        checked_id(asset_id, "the asset id")
        checked_id(view_id, "the metadata view id")
        view: dict[str, Any] = await self.get_json(
            f"/API/metadata/v1/assets/{asset_id}/views/{view_id}/"
        )
        return view

    def saved_search_results(self, search_id: str) -> AsyncIterator[dict[str, Any]]:
        """The objects (assets, collections) a saved search finds, across pages."""
        search_id = checked_id(search_id, "the saved search id")
        path = f"/API/search/v1/search/saved/{search_id}/"
        return self.paginate(path, {"include_results": "true"})

    async def collection_contents(self, collection_id: str) -> AsyncIterator[dict[str, Any]]:
        collection_id = checked_id(collection_id, "the collection id")
        path = f"/API/assets/v1/collections/{collection_id}/contents/"
        async for item in self.paginate(path):
            yield item

    # Writing a caption track (service/deliver/task.py): its format, then the subtitle.

    async def create_format(self, asset_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/API/files/v1/assets/{checked_id(asset_id, 'the asset id')}/formats/"
        return _object_of(await self.request("POST", path, json=body), f"POST {path}")

    async def create_subtitle(
        self, asset_id: str, body: dict[str, Any] | JsonStream
    ) -> dict[str, Any]:
        path = f"/API/files/v1/assets/{checked_id(asset_id, 'the asset id')}/subtitles/"
        return _object_of(await self.request("POST", path, json=body), f"POST {path}")

    async def update_subtitle(
        self, asset_id: str, subtitle_id: str, body: dict[str, Any] | JsonStream
    ) -> dict[str, Any]:
        checked_id(subtitle_id, f"the id Iconik gave a subtitle of asset {asset_id}")
        asset_id = checked_id(asset_id, "the asset id")
        path = f"/API/files/v1/assets/{asset_id}/subtitles/{subtitle_id}/"
        return _object_of(await self.request("PUT", path, json=body), f"PUT {path}")

    async def create_job(self, job: dict[str, Any]) -> dict[str, Any]:
        response = await self.request("POST", "/API/jobs/v1/jobs/", json=job)
        created: dict[str, Any] = response.json()
        return created

    async def update_job(self, job_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        job_id = checked_id(job_id, "the id Iconik gave the job")
        response = await self.request("PATCH", f"/API/jobs/v1/jobs/{job_id}/", json=changes)
        updated: dict[str, Any] = response.json()
        return updated


def _object_of(response: httpx2.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("id"):
        raise BadResponse(f"{what}: Iconik's answer has no id")
    return body


def _url_of(body: Any, what: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("url"), str) and body["url"]:
        return checked_download_url(body["url"], what)
    raise BadResponse(f"Iconik gave no download URL for {what}")

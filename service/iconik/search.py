"""Iconik's search API, for assets named by id: `POST /API/search/v1/search/`.

One call covers up to `per_page` assets (an `id` filter with `value_in`),
and what it returns depends on whose token asks: with the clicking user's
(service/work/expand.py), only the assets that user may read. The result objects
are Iconik's search documents (the asset's fields; its proxies, files and
metadata when `include_fields` asks for them), for callers that want more
than "is it there".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from service.iconik.errors import BadResponse
from service.iconik.paths import checked_id
from service.ids import is_iconik_id

if TYPE_CHECKING:
    import httpx2

SEARCH_PATH = "/API/search/v1/search/"
# Iconik pages search results; a few hundred ids per call keeps the filter
# and the answer small while one click of MAX_ASSETS_PER_REQUEST (1000)
# still takes only a handful of calls.
SEARCH_PER_PAGE = 250
_MAX_PAGES_PER_BATCH = 20  # a batch of ids is one page; more means Iconik ignored the filter


class AssetSearch:
    """Mixed into `IconikClient`."""

    if TYPE_CHECKING:

        async def request(
            self,
            method: str,
            path: str,
            *,
            params: dict[str, Any] | None = None,
            json: Any = None,
        ) -> httpx2.Response: ...

    async def search_assets(
        self,
        asset_ids: Iterable[str],
        *,
        per_page: int = SEARCH_PER_PAGE,
        include_fields: list[str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The search documents of those of `asset_ids` that Iconik finds for this token.

        Ids are sent `per_page` at a time; each must be an Iconik id
        (`UnusableId` otherwise, before any call). Documents that are not
        assets, or whose id is not one asked for, are dropped.
        """
        wanted = list(dict.fromkeys(checked_id(a, "an asset id to search for") for a in asset_ids))
        asked = {a.lower() for a in wanted}
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), per_page):
            batch = wanted[start : start + per_page]
            body: dict[str, Any] = {
                "doc_types": ["assets"],
                "filter": {"operator": "AND", "terms": [{"name": "id", "value_in": batch}]},
            }
            if include_fields is not None:
                body["include_fields"] = include_fields
            for page in range(1, _MAX_PAGES_PER_BATCH + 1):
                query = {
                    "per_page": per_page,
                    "page": page,
                    "generate_signed_url": "false",
                    "save_search_history": "false",
                    **(params or {}),
                }
                response = await self.request("POST", SEARCH_PATH, params=query, json=body)
                try:
                    document = response.json()
                except ValueError:
                    raise BadResponse(f"POST {SEARCH_PATH}: response is not JSON") from None
                if not isinstance(document, dict):
                    raise BadResponse(f"POST {SEARCH_PATH}: response is not a JSON object")
                objects = document.get("objects") or []
                found += [
                    o
                    for o in objects
                    if isinstance(o, dict)
                    and (o.get("object_type") or "assets") == "assets"
                    and is_iconik_id(o.get("id"))
                    and o["id"].lower() in asked
                ]
                batch_found = {o["id"].lower() for o in found} & {a.lower() for a in batch}
                done = len(batch_found) == len(batch)  # every id of the batch is in
                if done or not objects or page >= int(document.get("pages") or 1):
                    break
            else:
                raise BadResponse(
                    f"POST {SEARCH_PATH}: more than {_MAX_PAGES_PER_BATCH} pages for "
                    f"{len(batch)} ids; refusing to go on"
                )
        return found

    async def metadata_view_fields(self, view_id: str) -> list[str]:
        """The names of a metadata view's fields (`GET /API/metadata/v1/views/{id}/`).

        A search document holds an asset's metadata by field, whatever the
        view; these say which of them a view shows.
        """
        view_id = checked_id(view_id, "the metadata view id")
        path = f"/API/metadata/v1/views/{view_id}/"
        response = await self.request("GET", path)
        try:
            view = response.json()
        except ValueError:
            raise BadResponse(f"GET {path}: response is not JSON") from None
        fields = view.get("view_fields") if isinstance(view, dict) else None
        if not isinstance(fields, list):
            raise BadResponse(f"GET {path}: view_fields is not a list")
        return [f["name"] for f in fields if isinstance(f, dict) and isinstance(f.get("name"), str)]

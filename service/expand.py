"""The `expand` task: a custom action becomes one `build` task per asset.

A click names assets, collections (followed into sub-collections, each
collection once, to a bounded depth) or saved searches (whose results may
be assets or collections). Each distinct asset is built once.
"""

from __future__ import annotations

from service.iconik import IconikClient, NotFound
from service.queue import NewTask, Task
from service.tasks import TaskContext, TaskFailed

COLLECTION_DEPTH = 10


async def expand(ctx: TaskContext, task: Task) -> list[NewTask]:
    payload = task.payload
    context = payload.get("context")
    asset_ids: list[str] = list(payload.get("asset_ids") or [])
    collections: list[str] = list(payload.get("collection_ids") or [])
    for search_id in payload.get("saved_search_ids") or []:
        assets, found_collections = await _saved_search(ctx.iconik, search_id)
        asset_ids += assets
        collections += found_collections
    asset_ids += await _collection_assets(ctx.iconik, collections)
    unique = list(dict.fromkeys(asset_ids))
    if not unique:
        raise TaskFailed(
            f"the {context} custom action named no assets (asset_ids, collection_ids "
            "and saved_search_ids were empty)"
        )
    cap = ctx.settings.max_assets_per_request
    if len(unique) > cap:
        raise TaskFailed(
            f"the request covers {len(unique)} assets, more than MAX_ASSETS_PER_REQUEST "
            f"({cap}); select fewer assets or raise the limit"
        )
    await ctx.jobs.start(task.request_id, unique)
    return [NewTask("build", asset_id) for asset_id in unique]


async def _saved_search(iconik: IconikClient, search_id: str) -> tuple[list[str], list[str]]:
    """The assets and the collections a saved search finds."""
    path = f"/API/search/v1/search/saved/{search_id}/"
    assets: list[str] = []
    collections: list[str] = []
    try:
        async for item in iconik.paginate(path, {"include_results": "true"}):
            kind = (item.get("object_type") or "assets").lower()
            if not item.get("id"):
                continue
            if kind == "assets":
                assets.append(item["id"])
            elif kind == "collections":
                collections.append(item["id"])
    except NotFound:
        raise TaskFailed(f"saved search {search_id} not found in Iconik") from None
    return assets, collections


async def _collection_assets(iconik: IconikClient, roots: list[str]) -> list[str]:
    """Every asset under the collections, sub-collections included, each collection once."""
    found: list[str] = []
    seen = set(roots)
    frontier = [(root, 0) for root in dict.fromkeys(roots)]
    while frontier:
        collection_id, depth = frontier.pop(0)
        try:
            async for item in iconik.collection_contents(collection_id):
                kind = (item.get("object_type") or "assets").lower()
                item_id = item.get("id")
                if not item_id:
                    continue
                if kind == "collections":
                    if item_id not in seen and depth + 1 < COLLECTION_DEPTH:
                        seen.add(item_id)
                        frontier.append((item_id, depth + 1))
                elif kind == "assets":
                    found.append(item_id)
        except NotFound:
            raise TaskFailed(f"collection {collection_id} not found in Iconik") from None
    return found

"""The `expand` task: a custom action becomes one `build` task per asset.

A click names assets, collections (followed into sub-collections, each
collection once, to a bounded depth) or saved searches (whose results may
be assets or collections). Each distinct asset is built once.

Whose rights: with CLICK_RIGHTS=user (the default) the click acts with the
rights of the person who clicked. Collections and saved searches are read
with the custom action's `auth_token` (Iconik lists only what that user may
read), and every asset found or named is checked with it through Iconik's
search (`search_assets`, a few hundred ids a call; an asset the search does
not find is asked for once by id, as the search index may lag behind a
fresh upload). An asset the user may not read gets a task that is failed
from the start, whose reason the request's status and Iconik job show; it
is never bundled. A missing or refused token fails the request, asking the
user to click again; nothing falls back to the application token, which is
used only by CLICK_RIGHTS=application (the application's wider view, chosen
by the house). The token is read from the queue only here, and the queue
deletes it when this task ends (done or failed).

The user's search here asks for ids only: it says what may be bundled. The
builds then read those assets (proxies, files, metadata) from Iconik's
search with the application token, a batch at a time, when they run
(service/work/bulk_reads.py), so that no signed URL waits in the queue.
"""

from __future__ import annotations

from service.iconik.client import IconikClient, NotFound, NotPermitted, UserTokenRefused
from service.iconik.user_token import TokenSeal
from service.ids import describe, is_iconik_id
from service.queue import Expanded, NewTask, Task, TaskKind
from service.work.tasks import TaskContext, TaskFailed

COLLECTION_DEPTH = 10

CLICK_AGAIN = "click Send to Captioning again in Iconik"
NOT_READABLE = "not bundled: the user who clicked may not read this asset in Iconik (or it is gone)"
READ_AS_USER = (
    "read with the clicking user's Iconik rights (CLICK_RIGHTS=user): what they may not "
    "read in these collections or searches is not listed to them, and not bundled"
)


async def expand(ctx: TaskContext, task: Task) -> Expanded:
    payload = task.payload
    context = payload.get("context")
    as_user = ctx.settings.click_rights == "user"
    reader = _user_reader(ctx, task) if as_user else ctx.iconik
    try:
        unique = await _asset_ids(reader, payload)
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
        readable = await _readable(reader, unique) if as_user else set(unique)
    except UserTokenRefused:
        raise TaskFailed(
            "Iconik no longer accepts the token of the user who clicked (it expired or was "
            f"revoked before the request was expanded); nothing was bundled: {CLICK_AGAIN}"
        ) from None
    await ctx.jobs.start(task.request_id, unique, frozenset(unique) - readable)
    children = [
        NewTask(TaskKind.BUILD, a)
        if a in readable
        else NewTask(TaskKind.BUILD, a, failed=NOT_READABLE)
        for a in unique
    ]
    searched = payload.get("collection_ids") or payload.get("saved_search_ids")
    return Expanded(children, READ_AS_USER if as_user and searched else None)


def _user_reader(ctx: TaskContext, task: Task) -> IconikClient:
    """The Iconik client reading with the clicking user's token, or TaskFailed saying why not."""
    if not task.user_token:
        raise TaskFailed(
            "Iconik sent no user token with the click (auth_token), so it cannot be read with "
            f"the clicking user's rights; nothing was bundled: {CLICK_AGAIN} (a house that "
            "wants the application's wider view sets CLICK_RIGHTS=application)"
        )
    token = TokenSeal.from_settings(ctx.settings).open(task.user_token)
    if token is None:
        raise TaskFailed(
            "the clicking user's token could not be opened (USER_TOKEN_KEYS, WEBHOOK_SECRETS or "
            f"BEARER_TOKENS changed since the click); nothing was bundled: {CLICK_AGAIN}"
        )
    return ctx.iconik.for_user(token)


async def _asset_ids(reader: IconikClient, payload: dict[str, object]) -> list[str]:
    """Every distinct asset the click names, collections and saved searches followed."""
    asset_ids = _ids(payload.get("asset_ids"), "asset_ids")
    collections = _ids(payload.get("collection_ids"), "collection_ids")
    for search_id in _ids(payload.get("saved_search_ids"), "saved_search_ids"):
        assets, found_collections = await _saved_search(reader, search_id)
        asset_ids += assets
        collections += found_collections
    asset_ids += await _collection_assets(reader, collections)
    return list(dict.fromkeys(asset_ids))


def _ids(value: object, field: str) -> list[str]:
    """A payload's id list (checked at intake; a request stored before that is checked here)."""
    items = value if isinstance(value, list) else []
    for position, item in enumerate(items):
        if not is_iconik_id(item):
            raise TaskFailed(
                f"{field} item {position} is not an Iconik id (a UUID): {describe(item)}"
            )
    return [str(item).lower() for item in items]


def _listed_id(item: dict[str, object], where: str) -> str:
    item_id = item.get("id")
    if not is_iconik_id(item_id):
        raise TaskFailed(
            f"Iconik listed an item of {where} whose id is not an Iconik id (a UUID): "
            f"{describe(item_id)}; nothing was bundled"
        )
    return str(item_id).lower()


async def _readable(reader: IconikClient, asset_ids: list[str]) -> set[str]:
    """Those of `asset_ids` the reader's token may read: found by its search, or by id."""
    try:
        # Ids only: what the builds bundle they read later (service/work/bulk_reads.py).
        documents = await reader.search_assets(asset_ids, include_fields=["id", "title"])
        found = {doc["id"].lower() for doc in documents}
    except NotPermitted:  # a role without can_search: each asset is asked for by id
        found = set()
    for asset_id in asset_ids:
        if asset_id in found:
            continue
        try:  # not in the search (yet): the index may lag behind a fresh upload
            await reader.get_asset(asset_id)
        except (NotFound, NotPermitted):
            continue
        found.add(asset_id)
    return found


async def _saved_search(iconik: IconikClient, search_id: str) -> tuple[list[str], list[str]]:
    """The assets and the collections a saved search finds."""
    assets: list[str] = []
    collections: list[str] = []
    where = f"saved search {search_id}"
    try:
        async for item in iconik.saved_search_results(search_id):
            kind = (item.get("object_type") or "assets").lower()
            if not item.get("id"):
                continue
            if kind == "assets":
                assets.append(_listed_id(item, where))
            elif kind == "collections":
                collections.append(_listed_id(item, where))
    except NotFound:
        raise TaskFailed(f"saved search {search_id} not found in Iconik") from None
    except NotPermitted:
        raise TaskFailed(f"the user who clicked may not read saved search {search_id}") from None
    return assets, collections


async def _collection_assets(iconik: IconikClient, roots: list[str]) -> list[str]:
    """Every asset under the collections, sub-collections included, each collection once."""
    found: list[str] = []
    seen = set(roots)
    frontier = [(root, 0) for root in dict.fromkeys(roots)]
    while frontier:
        collection_id, depth = frontier.pop(0)
        where = f"collection {collection_id}"
        try:
            async for item in iconik.collection_contents(collection_id):
                kind = (item.get("object_type") or "assets").lower()
                if not item.get("id"):
                    continue
                if kind == "collections":
                    item_id = _listed_id(item, where)
                    if item_id not in seen and depth + 1 < COLLECTION_DEPTH:
                        seen.add(item_id)
                        frontier.append((item_id, depth + 1))
                elif kind == "assets":
                    found.append(_listed_id(item, where))
        except NotFound:
            raise TaskFailed(f"collection {collection_id} not found in Iconik") from None
        except NotPermitted:
            raise TaskFailed(
                f"the user who clicked may not read collection {collection_id}"
            ) from None
    return found

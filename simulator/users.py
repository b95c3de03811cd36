"""The simulator's users and their rights, and Iconik's search that honours them.

Iconik answers a call according to whose token made it. The application
token (the simulator's `auth_token`) reads everything. A user's token
(state.py's `add_user`, the `auth_token` of that user's clicks) reads everything but
the assets that user may not read: those are 404 to them by id, missing
from collection contents and saved-search results, and never found by the
search. A user's token can be expired (`expire_user`): every call with it
is then 401, as Iconik answers a token past its life.

`POST /API/search/v1/search/` takes Iconik's search criteria (checked as
Iconik would refuse them: 400 with `errors`), with an `id` filter (`value`
or `value_in`) and `doc_types`, and answers Iconik's search documents,
paged with `page` and `per_page` (the documents themselves:
search.py). `calls_by` records who made each API
call, so a test can see which token reached which path.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.search import search_document
from simulator.state import IconikState, SimAsset, errors

APPLICATION = "application"
_DOC_TYPES = {"assets", "collections", "segments", "saved_searches", "saved_search_groups"}
_CRITERIA_FIELDS = {
    "doc_types",
    "exclude_fields",
    "facets",
    "facets_filters",
    "filter",
    "include_fields",
    "metadata_view_id",
    "query",
    "search_after",
    "search_fields",
    "sort",
}


def caller(sim: IconikState, request: Request) -> str | None:
    """Who the request's token is ("application" or a user's name); None: 401."""
    token = request.headers.get("auth-token")
    if token == sim.auth_token:
        return APPLICATION
    user = sim.users.get(token or "")
    if user is None or user.expired:
        return None
    return user.name


def may_read(sim: IconikState, request: Request, asset_id: str) -> bool:
    user = sim.users.get(request.headers.get("auth-token") or "")
    return user is None or asset_id not in user.cannot_read


def readable(
    sim: IconikState, request: Request, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Listing entries as this caller sees them: assets they may not read left out."""
    return [
        item
        for item in items
        if (item.get("object_type") or "assets") != "assets"
        or may_read(sim, request, item.get("id", ""))
    ]


def visible_asset(sim: IconikState, request: Request) -> SimAsset | None:
    """The request's `asset_id` as this caller sees it: None if deleted or not theirs."""
    asset = sim.assets.get(request.path_params["asset_id"])
    if asset is None or asset.asset["status"] == "DELETED":
        return None
    if not may_read(sim, request, asset.asset["id"]):  # to that user, it is not there
        return None
    return asset


async def search(sim: IconikState, request: Request) -> Response:
    try:
        criteria = json.loads(await request.body())
    except ValueError:
        return errors(400, "body: not JSON")
    problem = _criteria_problem(criteria)
    if problem:
        return errors(400, problem)
    try:
        per_page = int(request.query_params.get("per_page", 10))
        page = int(request.query_params.get("page", 1))
    except ValueError:
        return errors(400, "per_page and page must be integers")
    if per_page < 1 or page < 1:
        return errors(400, "per_page and page must be at least 1")
    doc_types = set(criteria.get("doc_types") or ["assets"])
    wanted = _id_filter(criteria.get("filter"))
    sim.searches.append((caller(sim, request) or "", sorted(wanted or ())))
    found = []
    if "assets" in doc_types:
        for asset_id, asset in sim.assets.items():
            if wanted is not None and asset_id not in wanted:
                continue
            if asset.asset["status"] == "DELETED" or not may_read(sim, request, asset_id):
                continue
            if asset_id in sim.search_lag:
                continue
            found.append(search_document(sim, request, asset, criteria))
    pages = max(1, math.ceil(len(found) / per_page))
    if page > pages:
        return errors(404, "Requested page does not exist")
    return JSONResponse(
        {
            "objects": found[(page - 1) * per_page : page * per_page],
            "page": page,
            "pages": pages,
            "per_page": per_page,
            "total": len(found),
            "facets": {},
        }
    )


ENDPOINTS = [("/API/search/v1/search/", search, ["POST"])]


def _criteria_problem(criteria: Any) -> str | None:
    """What Iconik would refuse in a search body (SearchCriteriaSchema), or None."""
    if not isinstance(criteria, dict):
        return "body: must be an object"
    unknown = sorted(set(criteria) - _CRITERIA_FIELDS)
    if unknown:
        return f"{unknown[0]}: Unknown field."
    doc_types = criteria.get("doc_types", [])
    if not isinstance(doc_types, list) or not set(doc_types) <= _DOC_TYPES:
        return f"doc_types: must be a list of {sorted(_DOC_TYPES)}"
    return _filter_problem(criteria.get("filter"), "filter")


def _filter_problem(node: Any, where: str) -> str | None:
    if node is None:
        return None
    if not isinstance(node, dict) or not isinstance(node.get("operator"), str):
        return f"{where}.operator: Missing data for required field."
    for index, term in enumerate(node.get("terms") or []):
        if not isinstance(term, dict) or not isinstance(term.get("name"), str):
            return f"{where}.terms.{index}.name: Missing data for required field."
        values = term.get("value_in")
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            return f"{where}.terms.{index}.value_in: must be a list of strings"
    for index, child in enumerate(node.get("filters") or []):
        problem = _filter_problem(child, f"{where}.filters.{index}")
        if problem:
            return problem
    return None


def _id_filter(node: Any) -> set[str] | None:
    """The ids an (AND) filter's `id` terms allow, or None when it does not name ids."""
    if not isinstance(node, dict):
        return None
    wanted: set[str] | None = None
    for term in node.get("terms") or []:
        if term.get("name") != "id":
            continue
        values = set(term.get("value_in") or []) | ({term["value"]} if term.get("value") else set())
        wanted = values if wanted is None else wanted & values
    return wanted

"""The simulator's search documents and metadata views, as Iconik's search gives them.

An asset's search document (Iconik's `AssetElasticSchema`, assets.json)
holds the asset's fields, its `proxies` and `files` and, in `metadata`,
every metadata field that has values, each as a list (`{"Genre": ["Drama",
"Coastal"]}`), whatever view they were set through. `include_fields` keeps
only the fields named (and `id`, `object_type`), `exclude_fields` drops
some. Signed URLs are made only on request, as Iconik makes them:
`generate_signed_proxy_url=true` gives each proxy a `url`,
`generate_signed_download_url=true` each file.

(A view's definition, which says which of those fields the view shows, is
views.py's.)

Signed URLs expire: with `signed_url_life` set (seconds, on `url_clock`),
each URL carries its end in `Expires`, and storage answers 403 once it is
past, as cloud storage refuses an expired signature (storage.py);
`expired_refusals` counts those.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from simulator.state import IconikState, SimAsset

# The asset's own fields that a search document carries (AssetElasticSchema).
ASSET_FIELDS = (
    "id",
    "title",
    "type",
    "status",
    "is_online",
    "archive_status",
    "date_created",
    "date_modified",
    "time_start_milliseconds",
    "time_end_milliseconds",
    "versions",
)
_ALWAYS = ("id", "object_type")


def search_document(
    sim: IconikState, request: Request, asset: SimAsset, criteria: dict[str, Any]
) -> dict[str, Any]:
    """The asset as Iconik's search finds it, for this request's criteria and flags."""
    query = request.query_params
    proxies, files = asset.proxies, asset.files
    signs = sim.sign_search_urls
    if signs and query.get("generate_signed_proxy_url") == "true":
        proxies = [{**p, "url": sim.signed_url(request, f"proxies/{p['id']}")} for p in proxies]
    if signs and query.get("generate_signed_download_url") == "true":
        files = [{**f, "url": sim.signed_url(request, f"files/{f['id']}")} for f in files]
    metadata: dict[str, list[Any]] = {}
    for values in asset.metadata.values():
        for name, entry in values.items():
            items = entry.get("field_values", []) if isinstance(entry, dict) else entry
            metadata[name] = [v.get("value") if isinstance(v, dict) else v for v in items]
    document = {k: asset.asset[k] for k in ASSET_FIELDS if k in asset.asset}
    document.update(object_type="assets", proxies=proxies, files=files, metadata=metadata)
    include = criteria.get("include_fields")
    if include:
        document = {k: v for k, v in document.items() if k in include or k in _ALWAYS}
    for name in criteria.get("exclude_fields") or []:
        if name not in _ALWAYS:
            document.pop(name, None)
    return document

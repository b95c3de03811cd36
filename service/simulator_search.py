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
service/simulator_views.py's.)

Signed URLs expire: with `signed_url_life` set (seconds, on `url_clock`),
each URL carries its end in `Expires`, and storage answers 403 once it is
past, as cloud storage refuses an expired signature; `expired_refusals`
counts those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

if TYPE_CHECKING:
    from service.simulator import SimAsset

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


class SearchDocuments:
    """Mixed into `Simulator`."""

    assets: dict[str, SimAsset]
    signed_url_life: float | None
    url_clock: Callable[[], float] | None
    expired_refusals: int
    sign_search_urls: bool  # False: an Iconik that ignores the flags (tests)
    if TYPE_CHECKING:

        def _api(self, handler: Any) -> Any: ...
        def _signed_url(self, request: Request, key: str) -> str: ...

    def _init_search(self) -> None:
        self.signed_url_life = None
        self.url_clock = None
        self.expired_refusals = 0
        self.sign_search_urls = True

    def search_document(self, request: Request, sim: SimAsset, criteria: dict[str, Any]) -> dict:
        """The asset as Iconik's search finds it, for this request's criteria and flags."""
        query = request.query_params
        proxies, files = sim.proxies, sim.files
        signs = self.sign_search_urls
        if signs and query.get("generate_signed_proxy_url") == "true":
            proxies = [
                {**p, "url": self._signed_url(request, f"proxies/{p['id']}")} for p in proxies
            ]
        if signs and query.get("generate_signed_download_url") == "true":
            files = [{**f, "url": self._signed_url(request, f"files/{f['id']}")} for f in files]
        metadata: dict[str, list[Any]] = {}
        for values in sim.metadata.values():
            for name, entry in values.items():
                items = entry.get("field_values", []) if isinstance(entry, dict) else entry
                metadata[name] = [v.get("value") if isinstance(v, dict) else v for v in items]
        document = {k: sim.asset[k] for k in ASSET_FIELDS if k in sim.asset}
        document.update(object_type="assets", proxies=proxies, files=files, metadata=metadata)
        include = criteria.get("include_fields")
        if include:
            document = {k: v for k, v in document.items() if k in include or k in _ALWAYS}
        for name in criteria.get("exclude_fields") or []:
            if name not in _ALWAYS:
                document.pop(name, None)
        return document

    def url_expiry(self) -> str:
        """The `Expires` of a URL signed now."""
        if self.signed_url_life is None or self.url_clock is None:
            return "4102444800"
        return str(int(self.url_clock() + self.signed_url_life))

    def url_expired(self, request: Request) -> bool:
        """Storage's check of a signed URL's `Expires` (counted in `expired_refusals`)."""
        if self.url_clock is None:
            return False
        try:
            expired = float(request.query_params.get("Expires", "inf")) < self.url_clock()
        except ValueError:
            expired = True
        self.expired_refusals += expired
        return expired

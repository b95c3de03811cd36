"""`caption-bridge register`: the captioning-state field and the view that holds it.

The service keeps one field of the asset current (service/work/caption_status.py):
a string field, CAPTION_STATUS_FIELD (default `caption_status`), in a view of
its own, STATUS_VIEW_NAME. `ensure` makes what is missing and keeps what is
there (matched by the field's name and the view's name holding that field),
so a second run creates nothing; it returns the view's id, which register
prints for CAPTION_STATUS_VIEW_ID. `describe` is the --dry-run line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from service.commands.register import RegisterError
from service.iconik.client import IconikClient
from service.iconik.errors import CredentialsRejected, IconikError, IconikUnavailable, NotFound

FIELDS = "/API/metadata/v1/fields/"
VIEWS = "/API/metadata/v1/views/"
STATUS_VIEW_NAME = "Caption bridge: captioning state"
STATUS_LABEL = "Captioning state"

_ROLES = {
    FIELDS: "can_read_metadata_fields and can_write_metadata_fields",
    VIEWS: "can_read_metadata_views and can_write_metadata_views",
}


@dataclass(frozen=True)
class StatusView:
    field_verb: str  # "create" | "keep"
    view_verb: str
    view_id: str

    def lines(self, field: str) -> list[str]:
        return [
            f"{self.field_verb:<7} metadata field {field!r}",
            f"{self.view_verb:<7} metadata view {STATUS_VIEW_NAME!r} ({self.view_id})",
            f"set CAPTION_STATUS_VIEW_ID={self.view_id} for the service to write "
            f"{field!r} on each asset sent to captioning",
        ]


def describe(field: str) -> str:
    return (
        f"  ensure  metadata field {field!r} in view {STATUS_VIEW_NAME!r} "
        "(its id is printed, to set as CAPTION_STATUS_VIEW_ID)"
    )


def desired_field(field: str) -> dict[str, Any]:
    return {
        "name": field,
        "label": STATUS_LABEL,
        "field_type": "string",
        "description": "Kept current by caption bridge: sent, in captioning, delivered, refused",
    }


async def _call(iconik: IconikClient, method: str, path: str, json: Any = None) -> Any:
    collection = FIELDS if path.startswith(FIELDS) else VIEWS
    try:
        response = await iconik.request(method, path, json=json)
    except NotFound:
        return None
    except CredentialsRejected:
        raise RegisterError(
            f"Iconik refused {method} {path}: check ICONIK_APP_ID and ICONIK_AUTH_TOKEN; "
            f"the token's user needs {_ROLES[collection]}"
        ) from None
    except IconikUnavailable as exc:
        host = urlsplit(iconik.base_url).netloc
        raise RegisterError(f"cannot reach Iconik at {host}: {exc}") from None
    except IconikError as exc:
        raise RegisterError(f"Iconik: {method} {path}: {exc}") from None
    try:
        return response.json()
    except ValueError:
        raise RegisterError(f"Iconik: {method} {path}: the answer is not JSON") from None


async def ensure(iconik: IconikClient, field: str) -> StatusView:
    """The field and its view, made when missing; the view's id."""
    field_verb = "keep"
    if await _call(iconik, "GET", f"{FIELDS}{field}/") is None:
        await _call(iconik, "POST", FIELDS, desired_field(field))
        field_verb = "create"
    listed = await _call(iconik, "GET", VIEWS) or {}
    for view in listed.get("objects") or []:
        if not isinstance(view, dict) or view.get("name") != STATUS_VIEW_NAME:
            continue
        names = {f.get("name") for f in view.get("view_fields") or [] if isinstance(f, dict)}
        if field in names and isinstance(view.get("id"), str):
            return StatusView(field_verb, "keep", view["id"])
    body = {
        "name": STATUS_VIEW_NAME,
        "description": "What caption bridge writes on assets sent to captioning",
        "view_fields": [{"name": field, "label": STATUS_LABEL}],
    }
    created = await _call(iconik, "POST", VIEWS, body)
    if not isinstance(created, dict) or not isinstance(created.get("id"), str):
        raise RegisterError(f"Iconik: POST {VIEWS}: the answer names no view id")
    return StatusView(field_verb, "create", created["id"])

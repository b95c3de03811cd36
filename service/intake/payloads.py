"""What Iconik POSTs to us: custom-action and webhook bodies.

Parsing is lenient where Iconik is loose (unknown fields are ignored,
`metadata_values` and the id lists may be null, `date_created` may lack a
time zone) and strict only where the worker would otherwise have nothing to
act on, or where a value would become part of an Iconik path: every id the
service may put in a URL (asset, collection and saved-search ids, a
webhook's asset) must be an Iconik id (service/ids.py says which forms), and
ids are given back in lower case. The other ids of a click (user, action,
domain, metadata view) go into project.json only, and are checked the same
way when present, so nothing of that shape ever reaches a bundle.

The custom action's `auth_token` is the clicking user's Iconik token: it is
kept as a SecretStr, out of every repr and error message, and never part of
the stored payload (`storable` leaves it out); intake seals it on its own
(service/iconik/user_token.py) for the expand task, which reads with it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticSerializationError

from service.ids import ICONIK_ID_PATTERN, describe, is_iconik_id
from service.queue.types import TaskKind


class PayloadError(ValueError):
    """The body is not what the endpoint takes; the message is safe to return."""


class _IconikModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_Model = TypeVar("_Model", bound=_IconikModel)


def _none_to_empty_list(value: object) -> object:
    return [] if value is None else value


# An Iconik id (service/ids.py), checked by pydantic's own (Rust) pattern
# match on the hot path; `_describe` words its refusal. In Rust's regex `$`
# is the end of the text: a final newline does not pass.
IconikId = Annotated[str, StringConstraints(pattern=ICONIK_ID_PATTERN, to_lower=True)]


def _assume_utc(value: datetime | None) -> datetime | None:
    # Iconik sometimes sends "2026-11-20T10:00:00.123456" with no offset; it is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class CustomAction(_IconikModel):
    """A custom-action POST ("Send to Captioning" clicked)."""

    context: str = Field(min_length=1)
    action_id: IconikId | None = None
    user_id: IconikId | None = None
    system_domain_id: IconikId | None = None
    asset_ids: list[IconikId] = Field(default_factory=list)
    collection_ids: list[IconikId] = Field(default_factory=list)
    saved_search_ids: list[IconikId] = Field(default_factory=list)
    metadata_view_id: IconikId | None = None
    metadata_values: dict[str, Any] | None = None
    date_created: datetime | None = None
    auth_token: SecretStr | None = Field(default=None, repr=False, exclude=True)

    _lists = field_validator("asset_ids", "collection_ids", "saved_search_ids", mode="before")(
        _none_to_empty_list
    )
    _utc = field_validator("date_created", mode="after")(_assume_utc)

    @field_validator("context", mode="after")
    @classmethod
    def _upper_context(cls, value: str) -> str:
        return value.upper()


class WebhookAction(StrEnum):
    """What the worker does about a webhook event: the kind of the task it stores."""

    WITHDRAW = TaskKind.WITHDRAW
    REFRESH = TaskKind.REFRESH


# Realms of an asset event that change what a bundle holds.
_CONTENT_REALMS = frozenset(
    {"entity", "metadata", "proxies", "subtitles", "files", "formats", "versions"}
)


class Webhook(_IconikModel):
    """A webhook POST (something happened to an object in Iconik)."""

    event_type: str = Field(min_length=1)
    object_id: str | None = None
    system_domain_id: str | None = None
    user_id: str | None = None
    realm: str | None = None
    operation: str | None = None
    request_id: str | None = None
    data: Any = None

    def action(self) -> WebhookAction | None:
        """The bundle-level meaning of this event, or None when it changes no bundle."""
        if self.event_type.lower() != "assets" or not self.asset_id:
            return None
        operation = (self.operation or "").lower()
        realm = (self.realm or "entity").lower()
        if realm == "entity":
            # A new asset has no bundle yet: "create" changes nothing we hold.
            if operation in ("delete", "purge"):
                return WebhookAction.WITHDRAW
            return WebhookAction.REFRESH if operation in ("update", "restore") else None
        if realm in _CONTENT_REALMS and operation in ("create", "update", "delete"):
            return WebhookAction.REFRESH
        return None

    @property
    def asset_id(self) -> str | None:
        """The asset concerned: the event's object, or the asset named in its data."""
        if self.object_id and (self.realm or "entity").lower() == "entity":
            return self.object_id
        if isinstance(self.data, dict) and isinstance(named := self.data.get("asset_id"), str):
            return named
        return self.object_id


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[..." well within MAX_BODY_BYTES
        raise PayloadError("body is nested too deeply to be an Iconik payload") from None
    if not isinstance(document, dict):
        raise PayloadError("body must be a JSON object")
    return document


def _describe(exc: ValidationError) -> str:
    # Only field names and pydantic's message: never the input values, which
    # could include the auth_token.
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        if error["type"] == "string_pattern_mismatch":  # only ids have a pattern
            # What is wrong with it, described, never quoted.
            parts.append(f"{where}: not an Iconik id (a UUID): {describe(error['input'])}")
        else:
            parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _parse(model: type[_Model], body: bytes, what: str) -> _Model:
    # pydantic's own JSON parser first: one pass in Rust for the bodies that
    # are fine, which is nearly all of them. A body it refuses goes the long
    # way, which says what is wrong in the terms `_load_object` and
    # `_describe` use (and accepts what Python's json module accepts).
    try:
        return model.model_validate_json(body)
    except ValueError:
        pass
    document = _load_object(body)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise PayloadError(f"not an Iconik {what}: {_describe(exc)}") from None


def parse_custom_action(body: bytes) -> CustomAction:
    return _parse(CustomAction, body, "custom action")


def parse_webhook(body: bytes) -> Webhook:
    webhook = _parse(Webhook, body, "webhook")
    # Only an event the service acts on puts its asset id in a path; others
    # are ignored whatever their ids look like.
    if webhook.action() is not None and not is_iconik_id(webhook.asset_id):
        where = "object_id" if webhook.asset_id == webhook.object_id else "data.asset_id"
        raise PayloadError(
            f"not an Iconik webhook: {where} is not an Iconik id (a UUID): "
            f"{describe(webhook.asset_id)}"
        )
    return webhook


def storable(model: BaseModel) -> str:
    """The JSON text that goes into the queue (auth_token excluded)."""
    try:
        return model.model_dump_json()
    except PydanticSerializationError:
        # Text that is not UTF-8 (half a surrogate pair, which Python's json
        # module reads): escaped the way json.dumps escapes it.
        return json.dumps(model.model_dump(mode="json"))

"""`caption-bridge register` / `unregister`: wire Iconik to this service.

Creates (or updates in place) the "Send to Captioning" custom actions and the
asset webhooks, each carrying the static `Authorization: Bearer` header that
Iconik can send. Idempotent: an existing action is matched by context, title
and URL, a webhook by URL, event, operation and realm, so a second run
changes what differs and creates nothing twice. `unregister` removes exactly
the actions and webhooks that point at this service under these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.iconik import IconikClient
from service.iconik_paths import checked_id

ACTION_TITLE = "Send to Captioning"
WEBHOOK_PREFIX = "caption bridge: "
CONTEXTS = ("ASSET", "BULK", "COLLECTION")


@dataclass(frozen=True)
class Step:
    verb: str  # "create" | "update" | "keep" | "delete"
    kind: str  # "custom action" | "webhook"
    label: str
    body: dict[str, Any]
    existing_id: str | None = None

    def describe(self) -> str:
        where = f" ({self.existing_id})" if self.existing_id else ""
        return f"{self.verb:<7} {self.kind} {self.label}{where} -> {self.body.get('url')}"


def desired_actions(
    public_url: str, token: str, *, saved_search: bool = False, metadata_view: str | None = None
) -> list[dict[str, Any]]:
    url = public_url.rstrip("/") + "/iconik/custom-action"
    contexts = (*CONTEXTS, "SAVED_SEARCH") if saved_search else CONTEXTS
    return [
        {
            "context": context,
            "title": ACTION_TITLE,
            "url": url,
            "type": "POST",
            "headers": {"Authorization": f"Bearer {token}"},
            "metadata_view": metadata_view,
            "disabled": False,
        }
        for context in contexts
    ]


def desired_webhooks(public_url: str, token: str) -> list[dict[str, Any]]:
    url = public_url.rstrip("/") + "/iconik/webhook"
    events = [
        # Deleted assets withdraw their bundles.
        ("asset deleted", "delete", "entity"),
        # Title, metadata, proxies, subtitles: any realm; the service picks.
        ("asset updated", "update", None),
        # A new proxy or subtitle is a "create" in its own realm.
        ("asset content added", "create", None),
    ]
    return [
        {
            "name": WEBHOOK_PREFIX + name,
            "event_type": "assets",
            "operation": operation,
            "realm": realm,
            "url": url,
            "status": "ENABLED",
            "headers": {"Authorization": f"Bearer {token}"},
        }
        for name, operation, realm in events
    ]


def _action_key(action: dict[str, Any]) -> tuple[Any, ...]:
    return (action.get("context"), action.get("title"), action.get("url"))


def _webhook_key(hook: dict[str, Any]) -> tuple[Any, ...]:
    return (hook.get("url"), hook.get("event_type"), hook.get("operation"), hook.get("realm"))


def _differs(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(existing.get(k) != v for k, v in wanted.items())


async def _existing_actions(iconik: IconikClient, contexts: set[str]) -> list[dict[str, Any]]:
    found = []
    for context in sorted(contexts):
        body = await iconik.get_json(f"/API/assets/v1/custom_actions/{context}/")
        found += [{**a, "context": a.get("context") or context} for a in body.get("objects", [])]
    return found


async def _existing_webhooks(iconik: IconikClient) -> list[dict[str, Any]]:
    body = await iconik.get_json("/API/notifications/v1/webhooks/")
    return list(body.get("objects", []))


async def plan_register(
    iconik: IconikClient, actions: list[dict[str, Any]], webhooks: list[dict[str, Any]]
) -> list[Step]:
    steps: list[Step] = []
    existing = await _existing_actions(iconik, {a["context"] for a in actions})
    for wanted in actions:
        match = next((a for a in existing if _action_key(a) == _action_key(wanted)), None)
        label = f"{wanted['context']} {wanted['title']!r}"
        steps.append(_step("custom action", label, wanted, match))
    hooks = await _existing_webhooks(iconik)
    for wanted in webhooks:
        match = next((h for h in hooks if _webhook_key(h) == _webhook_key(wanted)), None)
        steps.append(_step("webhook", repr(wanted["name"]), wanted, match))
    return steps


def _step(kind: str, label: str, wanted: dict[str, Any], match: dict[str, Any] | None) -> Step:
    if match is None:
        return Step("create", kind, label, wanted)
    verb = "update" if _differs(match, wanted) else "keep"
    return Step(verb, kind, label, wanted, match["id"])


async def plan_unregister(iconik: IconikClient, public_url: str) -> list[Step]:
    base = public_url.rstrip("/")
    steps = []
    all_contexts = {*CONTEXTS, "SAVED_SEARCH"}
    for action in await _existing_actions(iconik, all_contexts):
        if action.get("url") == base + "/iconik/custom-action" and action.get("title") == (
            ACTION_TITLE
        ):
            label = f"{action['context']} {action['title']!r}"
            steps.append(Step("delete", "custom action", label, action, action["id"]))
    for hook in await _existing_webhooks(iconik):
        if hook.get("url") == base + "/iconik/webhook" and str(hook.get("name", "")).startswith(
            WEBHOOK_PREFIX
        ):
            steps.append(Step("delete", "webhook", repr(hook["name"]), hook, hook["id"]))
    return steps


_METHODS = {"create": "POST", "update": "PUT", "delete": "DELETE"}


async def apply(iconik: IconikClient, steps: list[Step]) -> None:
    for step in steps:
        if step.verb == "keep":
            continue
        if step.kind == "custom action":
            collection = f"/API/assets/v1/custom_actions/{step.body['context']}/"
        else:
            collection = "/API/notifications/v1/webhooks/"
        if step.verb == "create":
            path = collection
        else:  # an id Iconik listed: one path segment, checked as such
            path = f"{collection}{checked_id(step.existing_id, f'the id of the {step.kind}')}/"
        body = None if step.verb == "delete" else step.body
        await iconik.request(_METHODS[step.verb], path, json=body)

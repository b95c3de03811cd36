"""`caption-bridge register` / `unregister`: wire Iconik to this service.

Creates (or updates in place) the "Send to Captioning" custom actions and the
asset webhooks, each carrying the static `Authorization: Bearer` header that
Iconik can send. Idempotent: an existing action is matched by context, title
and URL, a webhook by URL, event, operation and realm, so a second run
changes what differs and creates nothing twice. `unregister` removes exactly
the actions and webhooks that point at this service under these names.

What an earlier `register` made is recognised wherever it points: an action
by its title and this service's route (`/iconik/custom-action`), a webhook
by its name prefix and route (and, since this version, its description).
When the public URL changed, `--replace-url` moves those to the new URL
instead of adding a second set; without it, `register` warns that they exist.

Every Iconik failure becomes a `RegisterError`: one line naming the call, and
the Iconik role it needs (on 401/403) or the host that could not be reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from service.iconik.client import IconikClient
from service.iconik.errors import (
    BadResponse,
    CredentialsRejected,
    IconikError,
    IconikUnavailable,
    NotFound,
)
from service.iconik.paths import checked_id

ACTION_TITLE = "Send to Captioning"
WEBHOOK_PREFIX = "caption bridge: "
WEBHOOK_MARKER = "made by caption-bridge register; `caption-bridge unregister` removes it"
ACTION_ROUTE = "/iconik/custom-action"
WEBHOOK_ROUTE = "/iconik/webhook"
CONTEXTS = ("ASSET", "BULK", "COLLECTION")

CUSTOM_ACTIONS = "/API/assets/v1/custom_actions/"
WEBHOOKS = "/API/notifications/v1/webhooks/"

# The role each call needs (Iconik's API reference: "Required roles"). Writing
# custom actions lists none: Iconik leaves that to administrators.
_ROLES = {
    ("GET", CUSTOM_ACTIONS): "can_read_custom_actions",
    ("POST", CUSTOM_ACTIONS): "the right to manage custom actions (an administrator's)",
    ("PUT", CUSTOM_ACTIONS): "the right to manage custom actions (an administrator's)",
    ("DELETE", CUSTOM_ACTIONS): "the right to manage custom actions (an administrator's)",
    ("GET", WEBHOOKS): "can_read_webhooks",
    ("POST", WEBHOOKS): "can_write_webhooks",
    ("PUT", WEBHOOKS): "can_write_webhooks",
    ("DELETE", WEBHOOKS): "can_delete_webhooks",
}


class RegisterError(Exception):
    """Iconik refused or could not be reached; the message is the one line to print."""


def public_url_problems(public_url: str, *, allow_http: bool) -> list[str]:
    """What is wrong with a --public-url, one line each (empty when usable)."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return [
            f"--public-url {public_url!r}: must be the https:// URL Iconik reaches this "
            "service at, e.g. https://captions.example.com"
        ]
    problems = []
    if parts.scheme == "http" and not allow_http:
        problems.append(
            f"--public-url {public_url}: http:// would send the bearer token and every click "
            "unencrypted; use https://, or --allow-http for a test on a private network"
        )
    if parts.query or parts.fragment:
        problems.append(f"--public-url {public_url}: no query or fragment, only the base URL")
    return problems


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
    url = public_url.rstrip("/") + ACTION_ROUTE
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
    url = public_url.rstrip("/") + WEBHOOK_ROUTE
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
            "description": WEBHOOK_MARKER,
            "headers": {"Authorization": f"Bearer {token}"},
        }
        for name, operation, realm in events
    ]


def _action_key(action: dict[str, Any]) -> tuple[Any, ...]:
    return (action.get("context"), action.get("title"), action.get("url"))


def _webhook_key(hook: dict[str, Any]) -> tuple[Any, ...]:
    return (hook.get("url"), hook.get("event_type"), hook.get("operation"), hook.get("realm"))


def _webhook_event(hook: dict[str, Any]) -> tuple[Any, ...]:
    return (hook.get("event_type"), hook.get("operation"), hook.get("realm"))


def _route_of(url: Any) -> str:
    return urlsplit(url).path.rstrip("/") if isinstance(url, str) else ""


def _base_of(url: Any, route: str) -> str:
    return url[: -len(route)] if isinstance(url, str) and url.endswith(route) else str(url)


def is_ours_action(action: dict[str, Any], app_id: str | None = None) -> bool:
    """An action an earlier `register` made, whatever public URL it points at."""
    if action.get("title") != ACTION_TITLE or not _route_of(action.get("url")).endswith(
        ACTION_ROUTE
    ):
        return False
    # Iconik records the application that made it, when it says.
    return app_id is None or action.get("app_id") in (None, app_id)


def is_ours_webhook(hook: dict[str, Any]) -> bool:
    """A webhook an earlier `register` made, whatever public URL it points at."""
    return str(hook.get("name", "")).startswith(WEBHOOK_PREFIX) and (
        hook.get("description") == WEBHOOK_MARKER
        or _route_of(hook.get("url")).endswith(WEBHOOK_ROUTE)
    )


def _differs(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(existing.get(k) != v for k, v in wanted.items())


async def _call(iconik: IconikClient, method: str, path: str, json: Any = None) -> Any:
    """One Iconik call of register; what goes wrong is a RegisterError (one line)."""
    collection = CUSTOM_ACTIONS if path.startswith(CUSTOM_ACTIONS) else WEBHOOKS
    try:
        response = await iconik.request(method, path, json=json)
    except CredentialsRejected:
        role = _ROLES.get((method, collection), "")
        raise RegisterError(
            f"Iconik refused {method} {path}: check ICONIK_APP_ID and ICONIK_AUTH_TOKEN; "
            f"the token's user needs {role}"
        ) from None
    except IconikUnavailable as exc:
        host = urlsplit(iconik.base_url).netloc
        raise RegisterError(
            f"cannot reach Iconik at {host} (ICONIK_URL={iconik.base_url}): {exc}"
        ) from None
    except (NotFound, BadResponse, IconikError) as exc:
        raise RegisterError(f"Iconik: {method} {path}: {exc}") from None
    if method == "GET":
        try:
            return response.json()
        except ValueError:
            raise RegisterError(f"Iconik: {method} {path}: the answer is not JSON") from None
    return None


async def _existing_actions(iconik: IconikClient, contexts: set[str]) -> list[dict[str, Any]]:
    found = []
    for context in sorted(contexts):
        body = await _call(iconik, "GET", f"{CUSTOM_ACTIONS}{context}/")
        found += [{**a, "context": a.get("context") or context} for a in _objects(body)]
    return found


async def _existing_webhooks(iconik: IconikClient) -> list[dict[str, Any]]:
    return _objects(await _call(iconik, "GET", WEBHOOKS))


def _objects(body: Any) -> list[dict[str, Any]]:
    objects = body.get("objects") if isinstance(body, dict) else None
    return [o for o in objects or [] if isinstance(o, dict)]


@dataclass
class Plan:
    steps: list[Step]
    # Public URLs an earlier `register` pointed actions or webhooks at, that
    # this plan leaves in place (without --replace-url).
    elsewhere: dict[str, int] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        return [
            f"warning: an earlier registration points {n} action(s)/webhook(s) at {url}; "
            "Iconik will call both. Run again with --replace-url to move them here, or "
            f"`caption-bridge unregister --public-url {url}`"
            for url, n in sorted(self.elsewhere.items())
        ]


async def plan_register(
    iconik: IconikClient,
    actions: list[dict[str, Any]],
    webhooks: list[dict[str, Any]],
    *,
    replace: bool = False,
    app_id: str | None = None,
) -> Plan:
    """What to create, update or keep; with `replace`, what an earlier
    `register` made for another public URL is moved here (updated), and what
    is left of it deleted, so one set remains."""
    steps: list[Step] = []
    elsewhere: dict[str, int] = {}
    every_context = {*CONTEXTS, "SAVED_SEARCH", *(a["context"] for a in actions)}
    existing = await _existing_actions(iconik, every_context)
    wanted_keys = {_action_key(a) for a in actions}
    movable = [
        a for a in existing if is_ours_action(a, app_id) and _action_key(a) not in wanted_keys
    ]
    for wanted in actions:
        match = next((a for a in existing if _action_key(a) == _action_key(wanted)), None)
        if match is None and replace:
            match = next((a for a in movable if a["context"] == wanted["context"]), None)
            if match is not None:
                movable.remove(match)
        label = f"{wanted['context']} {wanted['title']!r}"
        steps.append(_step("custom action", label, wanted, match))
    for stale in movable:
        label = f"{stale['context']} {stale['title']!r}"
        if replace:
            steps.append(Step("delete", "custom action", label, stale, stale["id"]))
        else:
            base = _base_of(stale.get("url"), ACTION_ROUTE)
            elsewhere[base] = elsewhere.get(base, 0) + 1

    hooks = await _existing_webhooks(iconik)
    wanted_keys = {_webhook_key(h) for h in webhooks}
    movable = [h for h in hooks if is_ours_webhook(h) and _webhook_key(h) not in wanted_keys]
    for wanted in webhooks:
        match = next((h for h in hooks if _webhook_key(h) == _webhook_key(wanted)), None)
        if match is None and replace:
            match = next((h for h in movable if _webhook_event(h) == _webhook_event(wanted)), None)
            if match is not None:
                movable.remove(match)
        steps.append(_step("webhook", repr(wanted["name"]), wanted, match))
    for stale in movable:
        if replace:
            steps.append(Step("delete", "webhook", repr(stale.get("name")), stale, stale["id"]))
        else:
            base = _base_of(stale.get("url"), WEBHOOK_ROUTE)
            elsewhere[base] = elsewhere.get(base, 0) + 1
    return Plan(steps, elsewhere)


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
        if action.get("url") == base + ACTION_ROUTE and action.get("title") == ACTION_TITLE:
            label = f"{action['context']} {action['title']!r}"
            steps.append(Step("delete", "custom action", label, action, action["id"]))
    for hook in await _existing_webhooks(iconik):
        if hook.get("url") == base + WEBHOOK_ROUTE and str(hook.get("name", "")).startswith(
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
            collection = f"{CUSTOM_ACTIONS}{step.body['context']}/"
        else:
            collection = WEBHOOKS
        if step.verb == "create":
            path = collection
        else:  # an id Iconik listed: one path segment, checked as such
            path = f"{collection}{checked_id(step.existing_id, f'the id of the {step.kind}')}/"
        body = None if step.verb == "delete" else step.body
        await _call(iconik, _METHODS[step.verb], path, json=body)

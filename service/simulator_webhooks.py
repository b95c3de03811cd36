"""The simulator sends the webhooks registered with it, as Iconik does.

When its state changes through the API (today: a subtitle track written, as
a delivery does), each ENABLED webhook registered for that event
(`event_type` "assets", its `operation`, and its `realm` or any realm) gets
a POST of Iconik's webhook body with the static headers it was registered
with (`caption-bridge register` puts `Authorization: Bearer …` there). With
`webhook_secret` set, the body is also signed (`X-Iconik-Signature`, HMAC
SHA-256 of the raw body), so the signature path of the service is used too.

Sent after the API answer (a background task of the response), as Iconik
sends them after the change; each attempt is kept in `webhook_deliveries`
for tests, with the receiver's status or the error.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx2
from starlette.background import BackgroundTask

from service import auth


@dataclass(frozen=True)
class SentWebhook:
    url: str
    body: dict[str, Any]
    status: int | None  # the receiver's answer; None: not reached
    error: str | None = None


def _matches(hook: dict[str, Any], operation: str, realm: str) -> bool:
    return (
        hook.get("status") == "ENABLED"
        and hook.get("event_type") == "assets"
        and hook.get("operation") in (None, operation)
        and hook.get("realm") in (None, realm)
    )


class WebhookSender:
    """Mixed into `Simulator`: its registered webhooks, sent on a change."""

    webhooks: dict[str, dict[str, Any]]
    system_domain_id = "00000000-0000-4000-8000-00000000d0a1"

    def _init_webhook_sender(self) -> None:
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[SentWebhook] = []
        self.webhook_sent = threading.Condition()

    def asset_event(
        self, asset_id: str, operation: str, realm: str, object_id: str, data: dict[str, Any]
    ) -> BackgroundTask | None:
        """The sending of this event to every webhook registered for it, to run
        after the answer; None when none is."""
        hooks = [dict(h) for h in self.webhooks.values() if _matches(h, operation, realm)]
        if not hooks:
            return None
        body = {
            "system_domain_id": self.system_domain_id,
            "event_type": "assets",
            "object_id": object_id,
            "realm": realm,
            "operation": operation,
            "data": {**data, "asset_id": asset_id},
            "request_id": uuid.uuid4().hex,
        }
        return BackgroundTask(self._send_all, hooks, body)

    async def _send_all(self, hooks: list[dict[str, Any]], body: dict[str, Any]) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        async with httpx2.AsyncClient(timeout=10) as client:
            for hook in hooks:
                headers = {"Content-Type": "application/json", **(hook.get("headers") or {})}
                if self.webhook_secret:
                    headers["X-Iconik-Signature"] = auth.sign(self.webhook_secret.encode(), raw)
                try:
                    answer = await client.post(hook["url"], content=raw, headers=headers)
                    sent = SentWebhook(hook["url"], body, answer.status_code)
                except httpx2.HTTPError as exc:
                    sent = SentWebhook(hook["url"], body, None, type(exc).__name__)
                with self.webhook_sent:
                    self.webhook_deliveries.append(sent)
                    self.webhook_sent.notify_all()

    def wait_for_webhooks(self, count: int, timeout: float = 10) -> list[SentWebhook]:
        """Block until `count` webhooks were sent (bounded): for tests and the demo's thread."""
        with self.webhook_sent:
            self.webhook_sent.wait_for(lambda: len(self.webhook_deliveries) >= count, timeout)
            return list(self.webhook_deliveries)

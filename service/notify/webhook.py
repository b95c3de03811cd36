"""The notification webhook: a house's own system gets each event as a POST,
signed the Standard Webhooks way (https://www.standardwebhooks.com).

Body: `{"type", "timestamp" (ISO 8601, when the change happened), "data"}`.
Headers: `webhook-id` (the event id: the same on every retry, so a receiver
drops repeats by it), `webhook-timestamp` (this attempt, unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
with the key of NOTIFY_WEBHOOK_SECRET (`whsec_` + base64). Only a 2xx
answer is a success; the answer's body is never read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2

from service.notify.channel import SendFailed
from service.queue import Event

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def parse_secret(secret: str) -> bytes:
    """The signing key of a `whsec_…` secret; ValueError (naming no part of it) if unusable."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with whsec_ followed by a base64 key")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by a base64 key (it is not base64)") from None
    if len(key) < 24:
        raise ValueError("the key after whsec_ must be at least 24 bytes (32 bytes are usual)")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_of(event: Event) -> bytes:
    """The JSON sent: the same bytes for the same event, whichever attempt."""
    payload = {
        "type": event.type,
        "timestamp": datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
        "data": {"asset_id": event.asset_id, **event.data},
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()


class WebhookChannel:
    kind = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        transport: Any = None,
    ) -> None:
        self._url = url
        self._key = parse_secret(secret)
        self.clock = clock
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout),
            follow_redirects=False,  # a redirect is not a delivery (and could leak the body)
            transport=transport,
            headers={"user-agent": "caption-bridge"},
        )

    async def send(self, event: Event) -> None:
        body = body_of(event)
        now = int(self.clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": event.event_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(self._key, event.event_id, now, body),
        }
        try:
            async with self._client.stream("POST", self._url, content=body, headers=headers) as r:
                status = r.status_code  # the answer's body is not read: not ours to hold
        except httpx2.TimeoutException:
            raise SendFailed("the webhook did not answer in time") from None
        except httpx2.HTTPError as exc:
            # The error's text may quote the URL (which may hold a token): its kind only.
            raise SendFailed(f"the webhook could not be reached ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise SendFailed(f"the webhook answered HTTP {status}")

    async def close(self) -> None:
        await self._client.aclose()

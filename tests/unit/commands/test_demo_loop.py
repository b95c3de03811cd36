"""What the demo says when its delivered track does not come back."""

from types import SimpleNamespace

from service.commands.demo_loop import _webhooks_sent
from simulator.state import SentWebhook


def test_a_demo_that_did_not_close_its_loop_says_what_the_webhooks_got():
    body = {"realm": "subtitles", "operation": "create"}
    sim = SimpleNamespace(
        webhook_deliveries=[
            SentWebhook("http://x/iconik/webhook", body, 503),
            SentWebhook("http://x/iconik/webhook", body, None, "ReadTimeout"),
        ]
    )
    said = _webhooks_sent(sim)  # type: ignore[arg-type]
    assert "subtitles create: HTTP 503" in said
    assert "subtitles create: not reached (ReadTimeout)" in said
    none = _webhooks_sent(SimpleNamespace(webhook_deliveries=[]))  # type: ignore[arg-type]
    assert "no webhook: the track was not written to Iconik" in none

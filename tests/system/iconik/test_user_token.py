"""The clicking user's token at rest, through the whole product
(tests/support/stack.py): a token sealed under a key no longer configured.
The rest: tests/unit/iconik/test_user_token.py."""

from __future__ import annotations

import anyio
from cryptography.fernet import Fernet
from pydantic import SecretStr

from service.work.expand import CLICK_AGAIN
from tests.support.service import custom_action_body
from tests.support.stack import drain, stack


def test_a_token_sealed_under_a_key_no_longer_configured_asks_to_click_again(tmp_path):
    key = Fernet.generate_key().decode()
    with stack(tmp_path, user_token_keys=[SecretStr(key)]) as s:
        answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        other = Fernet.generate_key().decode()
        changed = s.settings.model_copy(update={"user_token_keys": [SecretStr(other)]})
        anyio.run(drain, changed, s.clock)
        [expand] = s.status(answer["request_id"])["tasks"]
    assert expand["state"] == "failed" and "could not be opened" in expand["error"]
    assert CLICK_AGAIN in expand["error"]
    # Nothing was read for the click (only its Iconik job was reported), and no
    # call carried a user's token.
    assert [
        p for _, p in s.sim.requests if "/jobs/" not in p and "/assets/v1/assets/" not in p
    ] == []
    assert [who for _, _, who in s.sim.calls_by if who != "application"] == []

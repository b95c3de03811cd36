"""The clicking user's token at rest: sealed with USER_TOKEN_KEYS, rotated, refused when lost."""

from __future__ import annotations

import anyio
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from service.iconik.user_token import TokenSeal
from service.settings import SettingsError, load_settings
from service.work.expand import CLICK_AGAIN
from tests.support.service import custom_action_body, make_settings
from tests.support.stack import drain, stack


def test_keys_seal_with_the_first_and_open_with_any():
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed_before = TokenSeal([old]).seal("user-token")
    rotated = TokenSeal([new, old])
    assert rotated.open(sealed_before) == "user-token"
    assert TokenSeal([new]).open(rotated.seal("t")) == "t"
    assert TokenSeal([new]).open(sealed_before) is None  # the old key is gone
    assert TokenSeal([new]).open(sealed_before[:-4] + "AAAA") is None  # altered
    assert "user-token" not in sealed_before


def test_without_keys_they_are_derived_from_the_delivery_credentials(tmp_path):
    settings = make_settings(tmp_path)
    sealed = TokenSeal.from_settings(settings).seal("user-token")
    assert TokenSeal.from_settings(make_settings(tmp_path)).open(sealed) == "user-token"
    configured = make_settings(
        tmp_path, user_token_keys=[SecretStr(Fernet.generate_key().decode())]
    )
    assert TokenSeal.from_settings(configured).open(sealed) is None  # a key of its own


def test_a_key_that_is_not_a_fernet_key_stops_the_service_naming_the_setting(monkeypatch):
    monkeypatch.setenv("BEARER_TOKENS", "x")
    monkeypatch.setenv("USER_TOKEN_KEYS", "not-a-key")
    with pytest.raises(SettingsError, match="USER_TOKEN_KEYS: each key must be a Fernet key"):
        load_settings()
    monkeypatch.setenv("USER_TOKEN_KEYS", "")
    monkeypatch.setenv("CLICK_RIGHTS", "everyone")
    with pytest.raises(SettingsError, match="CLICK_RIGHTS"):
        load_settings()


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

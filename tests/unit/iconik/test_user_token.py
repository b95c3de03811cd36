"""The clicking user's token at rest: sealed with USER_TOKEN_KEYS, rotated, refused when lost."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from service.iconik.user_token import TokenSeal
from service.settings import SettingsError, load_settings
from tests.support.service import make_settings


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

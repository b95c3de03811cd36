"""The clicking user's Iconik token, sealed while it waits in the queue.

A custom action carries `auth_token`, the token of the person who clicked:
Iconik hands it over so that an integration reads with that person's rights.
With CLICK_RIGHTS=user (the default) the expand task reads the click's
collections and saved searches, and checks its assets, with it
(service/work/expand.py). Between the click and that task it waits in the queue,
and there it is never in clear: intake seals it with Fernet (AES-128-CBC
and HMAC-SHA256, from `cryptography`, so that nothing here is home-made
cryptography), into a column of its own, never into the stored payload
(which `GET /requests/{id}` shows). The queue deletes it in the same
transaction that ends the expand task (done or failed); a retried expand
keeps it for its next attempt.

The keys: USER_TOKEN_KEYS, Fernet keys (`Fernet.generate_key()`), the first
seals and every one opens, so a key is rotated by putting the new one
first. Unset, the keys are derived (HKDF-SHA256, a label of their own) from
WEBHOOK_SECRETS and BEARER_TOKENS, which every replica already shares: the
token is then still never stored in clear, and a house that wants the
database and its delivery credentials kept apart sets USER_TOKEN_KEYS.
A token sealed under a key no longer configured cannot be opened: the
request fails asking the user to click again, as for an expired token.
With CLICK_RIGHTS=application the token is not stored at all.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from service.settings import Settings

_DERIVATION_LABEL = b"caption-bridge: the clicking user's token in the queue, v1"


def derive_key(secret: str) -> bytes:
    """A Fernet key made from a delivery credential (used when USER_TOKEN_KEYS is unset)."""
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_LABEL)
    return base64.urlsafe_b64encode(kdf.derive(secret.encode()))


def check_key(key: str) -> None:
    """ValueError unless `key` is a Fernet key (32 bytes, URL-safe base64)."""
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        raise ValueError(
            "each key must be a Fernet key, 32 bytes in URL-safe base64: make one with python "
            "-c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        ) from None


class TokenSeal:
    """Seals and opens user tokens with the first of `keys` / any of them."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        fernets = [Fernet(key) for key in keys]
        if not fernets:
            raise ValueError("no key to seal user tokens with")
        self._fernet = MultiFernet(fernets)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSeal:
        configured = [s.get_secret_value() for s in settings.user_token_keys]
        if configured:
            return cls(k.encode() for k in configured)
        shared = (*settings.webhook_secrets, *settings.bearer_tokens)
        return cls(derive_key(s.get_secret_value()) for s in shared)

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The token, or None when no configured key opens it (or it was altered)."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError):
            return None

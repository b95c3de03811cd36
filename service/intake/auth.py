"""Who sent this delivery? Pure verification over raw bytes and headers.

No I/O, no framework: the caller hands in the body exactly as received and
the raw header pairs (as the ASGI scope carries them). Verification fails
closed both ways: a request must present at least one credential this
service can check, and every credential it presents must be well formed and
correct. A wrong signature is not rescued by a right token, nor the reverse.

Comparisons run in constant time over fixed-length digests, and every
configured key is tried, so neither timing nor the number of keys tells an
attacker which key was close.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SIGNATURE_HEADER = b"x-iconik-signature"
AUTHORIZATION_HEADER = b"authorization"
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_SIGNATURE_LENGTH = 64  # hex of a SHA-256 digest


class AuthError(Exception):
    """The delivery is not authenticated.

    `reason` is a short, fixed code (safe for logs and metrics); it never
    carries a header value or a secret.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """The delivery is authentic; `method` is `signature` or `bearer`."""

    method: str


@dataclass(frozen=True)
class Credentials:
    """The keys a delivery may be checked against, as bytes."""

    webhook_secrets: tuple[bytes, ...] = ()
    bearer_tokens: tuple[bytes, ...] = ()
    # The tokens' SHA-256 digests, made once: every delivery compares against them.
    bearer_digests: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digests = tuple(hashlib.sha256(t).digest() for t in self.bearer_tokens)
        object.__setattr__(self, "bearer_digests", digests)

    @classmethod
    def from_strings(cls, secrets: Iterable[str], tokens: Iterable[str]) -> Credentials:
        return cls(
            webhook_secrets=tuple(s.encode() for s in secrets if s),
            bearer_tokens=tuple(t.encode() for t in tokens if t),
        )


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Iconik-Signature` value for `body` under `secret`."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    credentials: Credentials,
) -> Verified:
    """Return how the delivery was authenticated, or raise AuthError."""
    signatures = _header_values(headers, SIGNATURE_HEADER)
    authorizations = _header_values(headers, AUTHORIZATION_HEADER)
    if not signatures and not authorizations:
        raise AuthError("missing_credentials")

    methods = []
    if signatures:
        _check_signature(body, signatures, credentials.webhook_secrets)
        methods.append("signature")
    if authorizations:
        _check_bearer(authorizations, credentials.bearer_digests)
        methods.append("bearer")
    return Verified(method="+".join(methods))


def verify_bearer(headers: Sequence[tuple[bytes, bytes]], credentials: Credentials) -> None:
    """For read endpoints: only a bearer token will do (there is no body to sign)."""
    authorizations = _header_values(headers, AUTHORIZATION_HEADER)
    if not authorizations:
        raise AuthError("missing_credentials")
    _check_bearer(authorizations, credentials.bearer_digests)


def _header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def _check_signature(body: bytes, values: list[bytes], secrets: tuple[bytes, ...]) -> None:
    if len(values) != 1:
        raise AuthError("signature_repeated")
    presented = values[0].strip()
    if len(presented) != _SIGNATURE_LENGTH or not _HEX_DIGITS.issuperset(presented):
        raise AuthError("signature_malformed")
    if not secrets:
        raise AuthError("signature_not_configured")
    expected_digest = bytes.fromhex(presented.decode("ascii"))
    # Every secret is tried, so the time taken does not say which one matched.
    matches = [
        hmac.compare_digest(hmac.digest(secret, body, "sha256"), expected_digest)
        for secret in secrets
    ]
    if not any(matches):
        raise AuthError("signature_mismatch")


def _check_bearer(values: list[bytes], token_digests: tuple[bytes, ...]) -> None:
    if len(values) != 1:
        raise AuthError("authorization_repeated")
    scheme, _, token = values[0].strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token or not token.isascii() or b" " in token:
        raise AuthError("authorization_malformed")
    if not token_digests:
        raise AuthError("bearer_not_configured")
    # Digests, so the comparison time does not depend on token lengths.
    presented = hashlib.sha256(token).digest()
    matches = [hmac.compare_digest(digest, presented) for digest in token_digests]
    if not any(matches):
        raise AuthError("bearer_mismatch")

import json

import pytest

from service.intake import auth

SECRET = b"current-secret"
OLD = b"old-secret"
TOKEN = b"the-bearer-token"
CREDS = auth.Credentials(webhook_secrets=(SECRET, OLD), bearer_tokens=(TOKEN,))
BODY = b'{"context":"ASSET","asset_ids":["a"]}'


def headers(**pairs: str | bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in pairs.items():
        raw = value if isinstance(value, bytes) else value.encode()
        out.append((name.replace("_", "-").lower().encode(), raw))
    return out


def sig(secret: bytes = SECRET, body: bytes = BODY) -> str:
    return auth.sign(secret, body)


def test_valid_signature_is_verified():
    assert auth.verify(BODY, headers(x_iconik_signature=sig()), CREDS).method == "signature"


def test_signature_with_any_configured_key_is_verified_for_rotation():
    assert auth.verify(BODY, headers(x_iconik_signature=sig(OLD)), CREDS).method == "signature"


def test_uppercase_hex_signature_is_accepted():
    assert auth.verify(BODY, headers(x_iconik_signature=sig().upper()), CREDS)


def test_valid_bearer_is_verified():
    assert auth.verify(BODY, headers(authorization="Bearer the-bearer-token"), CREDS).method == (
        "bearer"
    )


def test_header_names_are_case_insensitive():
    raw = [(b"X-Iconik-Signature", sig().encode())]
    assert auth.verify(BODY, raw, CREDS).method == "signature"


def test_reserialised_body_does_not_verify():
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    with pytest.raises(auth.AuthError) as err:
        auth.verify(reserialised, headers(x_iconik_signature=sig()), CREDS)
    assert err.value.reason == "signature_mismatch"


def test_rotated_out_key_is_refused():
    with pytest.raises(auth.AuthError, match="signature_mismatch"):
        auth.verify(BODY, headers(x_iconik_signature=sig(b"retired")), CREDS)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "signature_malformed"),
        (b"   ", "signature_malformed"),
        (b"zz" * 32, "signature_malformed"),
        (b"ab" * 31, "signature_malformed"),
        (b"ab" * 33, "signature_malformed"),
        ("é".encode() * 32, "signature_malformed"),
        (b"\xff" * 64, "signature_malformed"),
        (b"sha256=" + b"ab" * 32, "signature_malformed"),
    ],
)
def test_malformed_signature_is_refused(value, reason):
    with pytest.raises(auth.AuthError) as err:
        auth.verify(BODY, [(b"x-iconik-signature", value)], CREDS)
    assert err.value.reason == reason


def test_repeated_signature_header_is_refused_even_if_one_is_right():
    raw = [(b"x-iconik-signature", sig().encode()), (b"x-iconik-signature", b"00" * 32)]
    with pytest.raises(auth.AuthError, match="signature_repeated"):
        auth.verify(BODY, raw, CREDS)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "authorization_malformed"),
        (b"Bearer", "authorization_malformed"),
        (b"Bearer ", "authorization_malformed"),
        (b"Basic dXNlcjpwYXNz", "authorization_malformed"),
        (b"Bearer two words", "authorization_malformed"),
        ("Bearer tökén".encode(), "authorization_malformed"),
        (b"Bearer \xff\xfe", "authorization_malformed"),
        (b"Bearer wrong-token", "bearer_mismatch"),
        (b"Bearer the-bearer-token-and-more", "bearer_mismatch"),
    ],
)
def test_bad_authorization_is_refused(value, reason):
    with pytest.raises(auth.AuthError) as err:
        auth.verify(BODY, [(b"authorization", value)], CREDS)
    assert err.value.reason == reason


def test_repeated_authorization_header_is_refused():
    raw = [(b"authorization", b"Bearer the-bearer-token")] * 2
    with pytest.raises(auth.AuthError, match="authorization_repeated"):
        auth.verify(BODY, raw, CREDS)


def test_no_credentials_is_refused():
    with pytest.raises(auth.AuthError, match="missing_credentials"):
        auth.verify(BODY, headers(content_type="application/json"), CREDS)


def test_wrong_signature_is_not_rescued_by_right_bearer():
    raw = headers(x_iconik_signature=sig(b"wrong"), authorization="Bearer the-bearer-token")
    with pytest.raises(auth.AuthError, match="signature_mismatch"):
        auth.verify(BODY, raw, CREDS)


def test_wrong_bearer_is_not_rescued_by_right_signature():
    raw = headers(x_iconik_signature=sig(), authorization="Bearer nope")
    with pytest.raises(auth.AuthError, match="bearer_mismatch"):
        auth.verify(BODY, raw, CREDS)


def test_both_right_is_verified_by_both():
    raw = headers(x_iconik_signature=sig(), authorization="Bearer the-bearer-token")
    assert auth.verify(BODY, raw, CREDS).method == "signature+bearer"


def test_signature_is_refused_when_no_secret_is_configured():
    creds = auth.Credentials(bearer_tokens=(TOKEN,))
    with pytest.raises(auth.AuthError, match="signature_not_configured"):
        auth.verify(BODY, headers(x_iconik_signature=sig()), creds)


def test_bearer_is_refused_when_no_token_is_configured():
    creds = auth.Credentials(webhook_secrets=(SECRET,))
    with pytest.raises(auth.AuthError, match="bearer_not_configured"):
        auth.verify(BODY, headers(authorization="Bearer the-bearer-token"), creds)


def test_reason_never_carries_the_presented_value():
    with pytest.raises(auth.AuthError) as err:
        auth.verify(BODY, headers(authorization="Bearer leaked-value"), CREDS)
    assert "leaked-value" not in str(err.value)

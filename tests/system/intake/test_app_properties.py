"""Whatever arrives, the receiver answers with JSON and never with a 5xx."""

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.intake import auth
from service.intake.app import create_app
from tests.support.servers import running
from tests.support.service import (
    BEARER,
    CURRENT_SECRET,
    custom_action_body,
    make_settings,
    webhook_body,
)

# Bytes h11 lets a client put in a header value: visible ASCII, space, tab, obs-text.
HEADER_BYTES = st.sampled_from([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
header_values = st.lists(HEADER_BYTES, max_size=80).map(bytes).map(lambda b: b.strip())
header_names = st.sampled_from(
    [b"x-iconik-signature", b"authorization", b"content-type", b"x-other", b"X-Iconik-Signature"]
)
bodies = st.one_of(
    st.binary(max_size=2000),
    # Deep nesting that still fits the body limit (json.loads recursion).
    st.builds(lambda n, c: c * n, st.integers(500, 1400), st.sampled_from([b"[", b'{"a":'])),
    st.just(custom_action_body()),
    st.just(webhook_body()),
    st.builds(
        lambda ctx, ids: custom_action_body(context=ctx, asset_ids=ids),
        st.one_of(st.text(max_size=10), st.integers(), st.none()),
        st.one_of(st.lists(st.text(max_size=5), max_size=3), st.text(), st.none()),
    ),
    st.builds(
        lambda kind, op, realm: webhook_body(event_type=kind, operation=op, realm=realm),
        st.one_of(st.sampled_from(["assets", "collections", ""]), st.integers()),
        st.one_of(st.sampled_from(["delete", "update", "purge"]), st.none(), st.booleans()),
        st.one_of(st.sampled_from(["entity", "metadata", "acls"]), st.none()),
    ),
)
credentials = st.sampled_from(["none", "signature", "bearer", "random"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prop")
    with running(create_app(make_settings(tmp, max_body_bytes=1500))) as url:
        yield url


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=st.sampled_from(["/iconik/custom-action", "/iconik/webhook"]),
    body=bodies,
    how=credentials,
    extra=st.lists(st.tuples(header_names, header_values), max_size=4),
)
def test_receiver_never_answers_5xx(server, path, body, how, extra):
    headers = list(extra)
    if how == "signature":
        headers.append((b"x-iconik-signature", auth.sign(CURRENT_SECRET.encode(), body).encode()))
    elif how == "bearer":
        headers.append((b"authorization", f"Bearer {BEARER}".encode()))
    response = httpx2.post(server + path, content=body, headers=headers, timeout=10)
    assert response.status_code < 500, response.text
    document = response.json()
    assert isinstance(document, dict)
    if response.status_code >= 400:
        assert set(document) == {"error", "detail"}

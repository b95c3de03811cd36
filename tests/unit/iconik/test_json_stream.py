"""A JSON body sent in pieces is the same JSON, byte for byte in meaning, every time it is sent."""

import json

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.iconik import json_stream
from service.iconik.json_stream import JsonStream

pytestmark = pytest.mark.anyio


async def body_of(stream: JsonStream) -> bytes:
    return b"".join([piece async for piece in stream])


@given(
    fields=st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.booleans(), max_size=3),
    text=st.text(),
)
def test_it_is_the_object_it_says_and_as_long_as_it_says(fields, text):
    import anyio

    stream = JsonStream(fields, "content", text)
    sent = anyio.run(body_of, stream)
    assert json.loads(sent) == {**fields, "content": text}
    assert len(sent) == stream.length == int(stream.headers["Content-Length"])
    assert anyio.run(body_of, stream) == sent  # a retry sends it again, whole


async def test_a_large_text_goes_in_pieces_over_http(monkeypatch):
    monkeypatch.setattr(json_stream, "PIECE_CHARS", 7)
    text = 'WEBVTT\n\n00:00.000 --> 00:01.000\n"quoted" \\ é ♪ 𝄞 </script>\n' * 50
    seen = {}

    def handler(request):
        seen["length"] = request.headers["content-length"]
        seen["body"] = request.read()
        return httpx2.Response(200, json={"id": "s1"})

    stream = JsonStream({"language": "en", "closed_captions": False}, "content", text)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as client:
        await client.put("http://iconik.test/", content=stream, headers=stream.headers)
    assert json.loads(seen["body"]) == stream.value()
    assert int(seen["length"]) == len(seen["body"])

"""Caption tracks are read with a cap (MAX_CAPTION_BYTES), never whole and unbounded.

A track over the cap is left out of the bundle, with its reason in
project.json, and the build goes on with the others. The client refuses a
Content-Length over the cap before reading any of the body, and cuts off a
body without one once it passes the cap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx2
import pytest

from service.iconik.client import IconikClient, ResponseTooLarge
from service.work import gather
from simulator import Blob, make_srt, make_vtt, track_key
from tests.support.service import custom_action_body
from tests.support.stack import stack

CAP = 64 * 1024
MIB = 1024 * 1024
CUE = "00:00:00.000 --> 00:00:00.900\nA line of a very long track.\n\n"


def vtt_blob(size: int, *, sized: bool = True) -> Blob:
    return Blob.text(size, "WEBVTT\n\n", CUE, content_type="text/vtt", sized=sized)


# -- the client ---------------------------------------------------------------------


class Body(httpx2.SyncByteStream):
    """A body of `size` bytes made as it is read, counting what was read."""

    def __init__(self, size: int, chunk: int = 16 * 1024) -> None:
        self.size, self.chunk, self.pulled = size, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.pulled < self.size:
            n = min(self.chunk, self.size - self.pulled)
            self.pulled += n
            yield b"x" * n


def client(body: Body, headers: dict[str, str]) -> IconikClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, stream=body)

    return IconikClient(
        "https://iconik.test", "app", "tok", transport=httpx2.MockTransport(handler)
    )


@pytest.mark.anyio
async def test_a_content_length_over_the_cap_is_refused_before_the_body_is_read():
    body = Body(300 * MIB)
    async with client(body, {"Content-Length": str(300 * MIB)}) as c:
        with pytest.raises(ResponseTooLarge) as err:
            await c.read_capped("/API/x/", limit=CAP, what="the de track", api=True)
    assert body.pulled == 0
    assert str(err.value) == "the de track is larger than (314,572,800 > 65,536 bytes)"


@pytest.mark.anyio
async def test_a_body_without_a_content_length_is_cut_off_once_past_the_cap():
    body = Body(300 * MIB)
    async with client(body, {}) as c:
        with pytest.raises(ResponseTooLarge) as err:
            await c.read_capped("/API/x/", limit=CAP, what="the de track", api=True)
    assert CAP < body.pulled <= CAP + 2 * body.chunk  # what reached the cut, no more
    assert err.value.comparison == "(more than 65,536 bytes)"


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [{"Content-Length": str(CAP)}, {}])
async def test_a_body_of_exactly_the_cap_is_read_whole(headers):
    async with client(Body(CAP), headers) as c:
        assert await c.read_capped("/API/x/", limit=CAP, what="t") == b"x" * CAP


# -- a build, over real HTTP to the simulator -----------------------------------------


def test_tracks_over_the_cap_are_left_out_with_their_reason_and_the_others_bundled(tmp_path):
    with stack(tmp_path, max_caption_bytes=CAP, iconik_timeout_seconds=5) as s:
        normal = s.sim.assets[s.seeded.normal]
        s.sim.add_subtitle(normal, "de", vtt_blob(MIB))  # announced: refused unread
        s.sim.add_subtitle(normal, "es", vtt_blob(MIB, sized=False))  # counted, then cut off
        s.sim.add_subtitle(  # a small WebVTT, but Iconik's .srt of it is over the cap
            normal,
            "it",
            make_vtt("Ciao."),
            srt=Blob.text(MIB, "", make_srt("Ciao."), content_type="text/srt"),
        )
        # Each held after its first chunk: reading past it would wait for
        # ICONIK_TIMEOUT_SECONDS and try again; the cap needs none of it.
        gates = [
            s.sim.hold_download(track_key(s.seeded.normal, lang, False), after_bytes=CAP + 1)
            for lang in ("de", "es")
        ]
        try:
            answer = s.send(custom_action_body(asset_ids=[s.seeded.normal]))
            s.drain()
        finally:
            for gate in gates:
                gate.release.set()
        assert s.status(answer["request_id"])["status"] == "done"

        m = s.manifest(s.seeded.normal)
        assert m["tracks_skipped"] == [
            {
                "language": "de",
                "closed_captions": False,
                "reason": "Iconik's track is larger than MAX_CAPTION_BYTES "
                "(1,048,576 > 65,536 bytes)",
            },
            {
                "language": "es",
                "closed_captions": False,
                "reason": "Iconik's track is larger than MAX_CAPTION_BYTES "
                "(more than 65,536 bytes)",
            },
            {
                "language": "it",
                "closed_captions": False,
                "reason": "Iconik's .srt file of the track is larger than MAX_CAPTION_BYTES "
                "(1,048,576 > 65,536 bytes)",
            },
        ]
        folder = s.bundle_dir(s.seeded.normal)
        assert sorted(p.name for p in (folder / "captions").iterdir()) == [
            "en.srt",
            "en.vtt",
            "fr.cc.srt",
            "fr.cc.vtt",
        ]
        assert {f["language"] for f in m["files"] if f["kind"] == "caption"} == {"en", "fr"}
        # Each track was asked for once: nothing waited for a held body, nothing retried.
        webvtt_calls = [p for _, p in s.sim.requests if p.endswith("/webvtt/")]
        assert sorted(re.findall(r"/subtitles/(\w+)/", "".join(webvtt_calls))) == [
            "de",
            "en",
            "es",
            "fr",
            "it",
        ]

        page = (folder / "index.html").read_text()
        data = page.split('<script id="page-data" type="application/json">')[1]
        shown = json.loads(data.split("</script>")[0])["captions"]
        assert [c["language"] for c in shown] == ["en", "fr"]
        assert "de: not in this bundle. Iconik&#x27;s track is larger" in page
        assert len(page) < 32 * 1024  # nothing of the large tracks in it


def test_at_most_max_tracks_per_asset_are_bundled(tmp_path, monkeypatch):
    monkeypatch.setattr(gather, "MAX_TRACKS_PER_ASSET", 1)
    with stack(tmp_path) as s:
        s.send(custom_action_body(asset_ids=[s.seeded.normal]))
        s.drain()
        m = s.manifest(s.seeded.normal)
    assert m["tracks_skipped"] == [
        {
            "language": "fr",
            "closed_captions": True,
            "reason": "more than MAX_TRACKS_PER_ASSET (1) tracks on the asset",
        }
    ]
    assert {f["path"] for f in m["files"] if f["kind"] == "caption"} == {
        "captions/en.vtt",
        "captions/en.srt",
    }
    assert not any(p.endswith("/fr/cc/webvtt/") for _, p in s.sim.requests)  # never read

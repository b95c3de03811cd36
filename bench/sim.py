"""The Iconik stand-in for the benchmarks, in a process of its own: `python -m bench.sim`.

Seeds `--assets` assets, each with one proxy of `--proxy-bytes` (generated
as it streams), values in `--metadata-view` if given, and optionally an `en`
caption track with its SRT original (on every `--captions-every`th asset);
with `--huge-track-bytes`, two more, each with an `en` track and a `de`
track of that size (made as it streams), one served with a Content-Length
and one without; writes their ids (and proxy ids, and names) to `--ids`,
and serves the simulator with Iconik's rate limits when `--limits` is
given. `GET /bench/stats` tells the
benchmark what Iconik saw: each API call with its time, the 429s, the
downloads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service import logging as service_logging
from service.intake.server import Server, bind, config
from simulator import ICONIK_LIMITS, Blob, Simulator, make_srt, make_vtt
from tests.support.service import PAYLOAD_AUTH_TOKEN

APP_ID, TOKEN = "bench-app", "bench-iconik-token"
BENCH_USER_TOKEN = "bench-payload-token"  # bench/load.py's clicks


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=1)
    parser.add_argument("--proxy-bytes", type=int, default=2048)
    parser.add_argument("--captions", action="store_true")
    # With --captions: only every Nth asset gets the track (bench bulk: a quarter).
    parser.add_argument("--captions-every", type=int, default=1)
    # Each asset gets values in this metadata view (bench bulk: one view).
    parser.add_argument("--metadata-view", default="")
    parser.add_argument("--limits", action="store_true")
    parser.add_argument("--huge-track-bytes", type=int, default=0)
    parser.add_argument("--ids", type=Path, required=True)
    args = parser.parse_args()
    service_logging.configure("json")
    sim = Simulator(APP_ID, TOKEN, limits=ICONIK_LIMITS if args.limits else ())
    # The clicks' auth_token (tests' custom_action_body, bench/load.py): a user who reads all.
    sim.add_user(PAYLOAD_AUTH_TOKEN)
    sim.add_user(BENCH_USER_TOKEN)
    assets = []
    for n in range(args.assets):
        asset = sim.add_asset(f"bench-{n}", f"Bench asset {n}")
        proxy = sim.add_proxy(
            asset, name=f"bench_{n}.mp4", blob=Blob(args.proxy_bytes, seed=f"bench-{n}")
        )
        if args.metadata_view:
            if n == 0:
                sim.add_view(
                    args.metadata_view,
                    "Bench",
                    [("Description", "Description", "text"), ("Genre", "Genre", "drop_down")],
                )
            asset.metadata[args.metadata_view] = {
                "Description": {"field_values": [{"value": f"Bench asset {n}"}]},
                "Genre": {"field_values": [{"value": "Drama"}, {"value": "Bench"}]},
            }
        if args.captions and n % args.captions_every == 0:
            captions = ("Hello.", "Bye.")
            sim.add_subtitle(asset, "en", make_vtt(*captions), srt=make_srt(*captions))
        assets.append(
            {"asset_id": asset.asset["id"], "proxy_id": proxy["id"], "name": f"bench-{n}"}
        )
    for sized in (True, False) if args.huge_track_bytes else ():
        name = f"huge-track-{'sized' if sized else 'chunked'}"
        asset = sim.add_asset(name, f"Bench asset with a huge track ({name})")
        proxy = sim.add_proxy(asset, name=f"{name}.mp4", blob=Blob(args.proxy_bytes, seed=name))
        sim.add_subtitle(asset, "en", make_vtt("Hello.", "Bye."))
        cue = "00:00:00.000 --> 00:00:00.900\nA line of a very long track.\n\n"
        track = Blob.text(
            args.huge_track_bytes, "WEBVTT\n\n", cue, content_type="text/vtt", sized=sized
        )
        sim.add_subtitle(asset, "de", track)
        assets.append({"asset_id": asset.asset["id"], "proxy_id": proxy["id"], "name": name})
    args.ids.write_text(json.dumps(assets))
    times: list[float] = []
    inner = sim.app()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"].startswith("/API/"):
            times.append(time.monotonic())
        await inner(scope, receive, send)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "calls": [[t, m, p] for t, (m, p) in zip(times, sim.requests, strict=False)],
                "throttled": sim.throttled,
                "downloads": len(sim.downloads),
            }
        )

    inner.router.routes.append(Route("/bench/stats", stats))
    return Server(config(app), bind("127.0.0.1", 0)).run_here()


if __name__ == "__main__":
    sys.exit(main())

"""`bulk`: one BULK click of many assets against an Iconik that enforces its limits.

The simulator (bench/sim.py) answers 429 beyond 50 calls in any second or
1000 in any 20 s, as Iconik does. The service runs with ICONIK_RATE_LIMIT=45
and one metadata view; a quarter of the assets have one caption track.
Printed per WORKER_CONCURRENCY: Iconik calls per asset, all included (job
updates too), by endpoint; the time from the click to the last bundle; the
429s. At 45/s the calls bound the time: a smooth pacer needs (calls - 1)/45 s.
Goal (issue 18): <= 1.5 calls per asset, 1000 bundles in <= 40 s, no 429.
"""

from __future__ import annotations

import collections
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx2

from bench.procs import AUTH_ENV, listening
from bench.sim import APP_ID, TOKEN
from tests.support.service import bearer, custom_action_body, signed

RATE = 45


def sim_args(workdir: Path, assets: int, **flags: Any) -> list[str]:
    args = ["-m", "bench.sim", f"--assets={assets}", f"--ids={workdir / 'ids.json'}"]
    return args + [
        f"--{k.replace('_', '-')}={v}" if v is not True else f"--{k}" for k, v in flags.items()
    ]


def service_env(workdir: Path, sim_url: str, **extra: str) -> dict[str, str]:
    return {
        **AUTH_ENV,
        "PORT": "0",
        "QUEUE_URL": f"sqlite:///{workdir}/queue.db",
        "STORAGE_URL": str(workdir / "bundles"),
        "ICONIK_URL": sim_url,
        "ICONIK_APP_ID": APP_ID,
        "ICONIK_AUTH_TOKEN": TOKEN,
        **extra,
    }


def click(service_url: str, asset_ids: list[str]) -> str:
    body = custom_action_body(context="BULK", asset_ids=asset_ids)
    answer = httpx2.post(service_url + "/iconik/custom-action", content=body, headers=signed(body))
    answer.raise_for_status()
    return answer.json()["request_id"]


def wait_done(
    service_url: str, request_id: str, timeout: float, poll: float = 0.5
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx2.get(f"{service_url}/requests/{request_id}", headers=bearer()).json()
        if status["status"] not in ("queued", "running"):
            return status
        time.sleep(poll)
    raise RuntimeError(f"request {request_id} not finished within {timeout:.0f}s")


VIEW_ID = "0b0c0000-0000-4000-8000-00000000b0c0"  # the one metadata view the bench reads
CAPTIONS_EVERY = 4  # a quarter of the assets have one caption track
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def endpoint(method: str, path: str) -> str:
    """A call's endpoint: its path with ids and languages as placeholders."""
    path = _UUID.sub("{id}", path)
    path = re.sub(r"/subtitles/[^/]+/(cc/)?webvtt/$", r"/subtitles/{lang}/\1webvtt/", path)
    return f"{method} {path.removeprefix('/API')}"


def bulk(
    workdir: Path, *, assets: int = 1000, concurrencies: tuple[int, ...] = (4, 16)
) -> list[str]:
    lines = [
        f"bulk: one BULK click of {assets} assets (1 caption track on every {CAPTIONS_EVERY}th, "
        f"one metadata view), ICONIK_RATE_LIMIT={RATE}, Iconik's limits on (50/1 s, 1000/20 s)"
    ]
    for concurrency in concurrencies:
        lines += _one_click(workdir / f"c{concurrency}", assets, concurrency)
    return lines


def _one_click(workdir: Path, assets: int, concurrency: int) -> list[str]:
    workdir.mkdir()
    sim_cmd = sim_args(
        workdir,
        assets,
        captions=True,
        captions_every=CAPTIONS_EVERY,
        metadata_view=VIEW_ID,
        limits=True,
    )
    with listening(sim_cmd, {}, workdir, "sim") as sim:
        ids = [a["asset_id"] for a in json.loads((workdir / "ids.json").read_text())]
        env = service_env(
            workdir,
            sim.url,
            ICONIK_RATE_LIMIT=str(RATE),
            WORKER_CONCURRENCY=str(concurrency),
            METADATA_VIEW_IDS=VIEW_ID,
        )
        with listening(["-m", "service", "serve"], env, workdir, "service") as service:
            clicked = time.monotonic()
            request_id = click(service.url, ids)
            status = wait_done(service.url, request_id, timeout=assets * 0.5 + 120)
            took = time.monotonic() - clicked
        stats = httpx2.get(sim.url + "/bench/stats").json()
    calls = stats["calls"]
    starts = sorted(t for t, _, _ in calls)
    ideal = (len(starts) - 1) / RATE
    by_endpoint = collections.Counter(endpoint(m, p) for _, m, p in calls)
    per_asset = len(calls) / assets
    done = sum(t["state"] == "done" for t in status["tasks"] if t["asset_id"])
    seconds = 40 * assets / 1000
    met = per_asset <= 1.5 and took <= seconds and stats["throttled"] == 0
    met = met and done == assets
    lines = [
        f"  WORKER_CONCURRENCY={concurrency}: {len(calls)} Iconik calls, {per_asset:.2f} per asset",
        f"    smooth {RATE}/s pacer (baseline)  {ideal:7.1f} s for those calls",
        f"    service, click to done        {took:7.1f} s   429s {stats['throttled']}   "
        f"assets done {done}/{assets}",
    ]
    for name, count in sorted(by_endpoint.items(), key=lambda item: -item[1]):
        lines.append(f"    {count / assets:6.3f} per asset  {count:6d}  {name}")
    lines.append(
        f"    goal <= 1.5 calls per asset, <= {seconds:.1f} s, 0 x 429, all done "
        f"({'met' if met else 'NOT met'})"
    )
    return lines

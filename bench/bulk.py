"""`bulk`: one BULK click of many assets against an Iconik that enforces its limits.

The simulator (bench/sim.py) answers 429 beyond 50 calls in any second or
1000 in any 20 s, as Iconik does. The service runs with ICONIK_RATE_LIMIT=45.
The baseline is a smooth 45/s pacer: the same number of calls, evenly spaced,
takes (calls - 1) / 45 s; the ratio is that over the time the service took.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import httpx2

from bench.procs import AUTH_ENV, listening
from bench.sim import APP_ID, TOKEN
from tests.conftest import bearer, custom_action_body, signed

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


def bulk(workdir: Path, *, assets: int = 1000) -> list[str]:
    sim_cmd = sim_args(workdir, assets, captions=True, limits=True)
    with listening(sim_cmd, {}, workdir, "sim") as sim:
        ids = [a["asset_id"] for a in json.loads((workdir / "ids.json").read_text())]
        env = service_env(workdir, sim.url, ICONIK_RATE_LIMIT=str(RATE))
        with listening(["-m", "service", "serve"], env, workdir, "service") as service:
            request_id = click(service.url, ids)
            status = wait_done(service.url, request_id, timeout=assets * 0.5 + 120)
        stats = httpx2.get(sim.url + "/bench/stats").json()
    calls = stats["calls"]
    starts = sorted(t for t, _, _ in calls)
    span = starts[-1] - starts[0]
    ideal = (len(starts) - 1) / RATE
    patches = sorted(t for t, m, p in calls if m == "PATCH" and "/jobs/" in p)
    per_second = collections.Counter(int(t - starts[0]) for t in patches)
    building = [p for _, m, p in calls if "/jobs/" not in p and m == "GET"]
    tracks = assets  # one caption track per asset
    per_asset = (len(building) - tracks) / assets
    ratio = ideal / span if span else 0.0
    done = sum(t["state"] == "done" for t in status["tasks"] if t["asset_id"])
    met = ratio >= 0.9 and stats["throttled"] == 0 and per_asset <= 4
    return [
        f"bulk: one BULK click of {assets} assets (1 caption track each), ICONIK_RATE_LIMIT={RATE},"
        " Iconik's limits on (50/1 s, 1000/20 s)",
        f"  smooth {RATE}/s pacer (baseline)   {ideal:7.1f} s for {len(starts)} calls   1.00x",
        f"  service                        {span:7.1f} s   {ratio:5.2f}x   "
        f"429s {stats['throttled']}   assets done {done}/{assets}",
        f"  API calls per asset {per_asset:.2f} + 1 per caption track; job PATCHes "
        f"{len(patches)} (at most {max(per_second.values(), default=0)} in one second)",
        f"  goal >= 0.90x, 0 x 429, <= 4 calls per asset + 1 per track "
        f"({'met' if met else 'NOT met'})",
    ]

"""`storm`: a webhook storm against a person's click, against the same click on an idle service.

Ten assets have bundles; 3000 update webhooks about them arrive from 8
connections. The table gives the events accepted per second and how long a
"Send to Captioning" click sent mid-storm takes to its published bundle,
beside the same click on the idle service, in the same run.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from pathlib import Path

import httpx2

from bench.bulk import click, service_env, sim_args, wait_done
from bench.procs import listening
from tests.support.service import bearer, signed, webhook_body

EVENTS = 3000


def _time_to_bundle(url: str, asset_id: str) -> float:
    """From the click until its request reads done (polled every 10 ms)."""
    started = time.perf_counter()
    request_id = click(url, [asset_id])
    with httpx2.Client(base_url=url, headers=bearer()) as client:
        while client.get(f"/requests/{request_id}").json()["status"] in ("queued", "running"):
            time.sleep(0.01)
    return time.perf_counter() - started


def storm(workdir: Path, *, events: int = EVENTS) -> list[str]:
    with listening(sim_args(workdir, 11), {}, workdir, "sim") as sim:
        ids = [a["asset_id"] for a in json.loads((workdir / "ids.json").read_text())]
        stormed, clicked = ids[:10], ids[10]
        env = service_env(workdir, sim.url, ICONIK_JOBS="false")
        with listening(["-m", "service", "serve"], env, workdir, "service") as service:
            wait_done(service.url, click(service.url, ids), timeout=120)
            idle = _time_to_bundle(service.url, clicked)

            answers: list[int] = []
            half = threading.Event()
            client = httpx2.Client(base_url=service.url, timeout=30)  # shared: one pool

            def send(n: int) -> None:
                body = webhook_body(
                    object_id=stormed[n % 10],
                    realm="metadata",
                    operation="update",
                    request_id=f"storm-{n}",
                )
                status = client.post("/iconik/webhook", content=body, headers=signed(body))
                answers.append(status.status_code)
                if len(answers) >= events // 2:
                    half.set()

            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                sent = pool.map(send, range(events))
                half.wait()
                during = _time_to_bundle(service.url, clicked)
                list(sent)
            storm_seconds = time.perf_counter() - started
            client.close()
    accepted = sum(s in (200, 202) for s in answers)
    return [
        f"storm: {events} update webhooks about 10 bundles from 8 connections, a click mid-storm",
        f"  events accepted              {accepted}/{events}   {accepted / storm_seconds:8.0f} /s",
        f"  click to bundle, idle (baseline)   {idle * 1000:8.0f} ms",
        f"  click to bundle, mid-storm         {during * 1000:8.0f} ms   {during / idle:.2f}x",
    ]

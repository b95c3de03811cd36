"""`copy`: one proxy copied into a bundle, against `curl -o FILE` + `sync FILE`.

Both fetch the same signed URL from the simulator (bench/sim.py, bytes
generated as they stream), in the same run. The service's time runs from
the click's 202 to the request being done (a build: a few API calls, the
copy with its SHA-256, the manifest); its peak RSS is the whole serving
process's, from wait4.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench.bulk import click, service_env, sim_args, wait_done
from bench.procs import listening

GIB = 1024**3


def curl_and_sync(url: str, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-sf", "-o", str(target), url], check=True)
    subprocess.run(["sync", str(target)], check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def copy_once(workdir: Path, size: int, repeats: int = 3) -> tuple[float, float, float | None]:
    """Medians of `repeats` alternating runs of curl + sync and the service.

    This machine's page cache and disk make single runs swing by 2x either
    way (writing 1 GiB took 0.2 s in one run and 1.6 s in the next), so
    each side runs several times, interleaved, and the medians are compared.
    """
    run = workdir / f"copy-{size}"
    run.mkdir()
    baselines, services, peaks = [], [], []
    with listening(sim_args(run, 1, proxy_bytes=size), {}, run, "sim") as sim:
        [asset] = json.loads((run / "ids.json").read_text())
        for attempt in range(repeats):
            url = f"{sim.url}/storage/proxies/{asset['proxy_id']}"
            baselines.append(curl_and_sync(url, run / "curl.out"))
            service_dir = run / f"service-{attempt}"  # its own queue and bundles
            service_dir.mkdir()
            with listening(
                ["-m", "service", "serve"], service_env(service_dir, sim.url), service_dir, "svc"
            ) as svc:
                started = time.perf_counter()
                request_id = click(svc.url, [asset["asset_id"]])
                # Polled often: a copy takes a second or two, half a second's
                # polling would be a quarter of what is measured.
                wait_done(svc.url, request_id, timeout=size / 10e6 + 60, poll=0.02)
                services.append(time.perf_counter() - started)
            peaks.append(svc.peak_rss_mb or 0.0)
            shutil.rmtree(service_dir)  # 4 GiB a time: the disk need not hold them all
    return statistics.median(baselines), statistics.median(services), max(peaks)


def copy(workdir: Path, *, sizes: tuple[int, ...] = (GIB, 4 * GIB), repeats: int = 3) -> list[str]:
    lines = [
        "copy: one proxy into a bundle vs curl -o FILE + sync FILE (same URL, same run;"
        f" medians of {repeats} interleaved runs)"
    ]
    ok = True
    rss = []
    for size in sizes:
        baseline, elapsed, peak = copy_once(workdir, size, repeats)
        ratio = baseline / elapsed
        ok = ok and ratio >= 0.8
        rss.append(peak or 0.0)
        lines.append(
            f"  {size / 2**20:8.0f} MiB   curl+sync {baseline:6.2f} s   service {elapsed:6.2f} s"
            f"   {ratio:5.2f}x   service peak RSS {peak or 0:5.0f} MB"
        )
    ok = ok and max(rss) <= 100
    lines.append(f"  goal >= 0.80x, peak RSS <= 100 MB and flat ({'met' if ok else 'NOT met'})")
    return lines

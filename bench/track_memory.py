"""`track-memory`: what a huge caption track in Iconik costs the worker that bundles it.

The simulator (bench/sim.py, its own process) serves an asset whose `de`
track is `--track-mib` MiB (300 by default, made as it streams), once with a
Content-Length and once without; the service (`serve`, intake and worker in
one process) runs with the default MAX_CAPTION_BYTES. The table gives the
worker's peak RSS (VmHWM of /proc/PID/status) when idle, after bundling an
asset with ordinary tracks (the baseline, in the same run), and after each
huge-track asset, and what project.json says of the huge track.

Before the cap, the whole track was read, decoded and embedded in
index.html: a 300 MB track cost about 2.2 GB of peak RSS.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.bulk import click, service_env, sim_args, wait_done
from bench.procs import listening

MIB = 1024 * 1024
DEFAULT_CAP = 20 * MIB  # Settings.max_caption_bytes


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the process's peak resident set so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def _manifest(bundles: Path, asset_id: str) -> dict:
    [folder] = [p for p in bundles.iterdir() if p.name.endswith(f"[{asset_id}]")]
    return json.loads((folder / "project.json").read_text())


def track_memory(workdir: Path, *, track_mib: int = 300) -> list[str]:
    sim_cmd = sim_args(workdir, 1, captions=True, huge_track_bytes=track_mib * MIB)
    with listening(sim_cmd, {}, workdir, "sim") as sim:
        assets = {a["name"]: a["asset_id"] for a in json.loads((workdir / "ids.json").read_text())}
        env = service_env(workdir, sim.url, ICONIK_JOBS="false")
        with listening(["-m", "service", "serve"], env, workdir, "service") as service:
            pid = service.process.pid
            peaks = [("idle", peak_rss_mib(pid), None)]
            for label, name in (
                ("after an asset with small tracks (baseline)", "bench-0"),
                (f"after {track_mib} MiB track, Content-Length", "huge-track-sized"),
                (f"after {track_mib} MiB track, chunked", "huge-track-chunked"),
            ):
                status = wait_done(service.url, click(service.url, [assets[name]]), 120, 0.05)
                if status["status"] != "done":
                    raise RuntimeError(f"{label}: the request ended {status}")
                peaks.append((label, peak_rss_mib(pid), assets[name]))
    lines = [
        f"track-memory: the worker's peak RSS (VmHWM) bundling an asset whose Iconik track is "
        f"{track_mib} MiB, MAX_CAPTION_BYTES={DEFAULT_CAP:,}",
    ]
    baseline = peaks[1][1]
    refused = 0
    for label, peak, asset_id in peaks:
        lines.append(f"  {label:<48}{peak:8.1f} MiB   {peak - baseline:+8.1f} MiB vs baseline")
        if asset_id in (assets["huge-track-sized"], assets["huge-track-chunked"]):
            manifest = _manifest(workdir / "bundles", asset_id)
            bundled = sorted(f["path"] for f in manifest["files"] if f["kind"] == "caption")
            for skipped in manifest.get("tracks_skipped", []):
                lines.append(f"      tracks_skipped {skipped['language']}: {skipped['reason']}")
                refused += skipped["language"] == "de"
            lines.append(f"      bundled {', '.join(bundled)}")
    increase = peaks[-1][1] - baseline
    goal = DEFAULT_CAP * 3 / MIB  # a track at the cap: its bytes, its text, its JSON
    met = increase <= goal and refused == 2
    lines.append(
        f"  increase over the baseline {increase:+.1f} MiB   goal <= {goal:.0f} MiB (three "
        f"times the cap), both tracks refused ({'met' if met else 'NOT met'})"
    )
    return lines

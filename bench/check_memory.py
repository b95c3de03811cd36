"""`check-memory`: a 20 MiB caption file delivered through a real service.

A simulator and `python -m service serve` (its worker in-process) run as
processes of their own; one click makes the asset's bundle. The service's
peak RSS (VmHWM in /proc/PID/status) is read once the bundle is built
(the baseline, idle), then a generated valid en.vtt (second row: en.srt) of
`size` bytes, every cue within the asset's duration, is dropped into the
bundle's deliver/ and the peak read again once the track is in Iconik
(deliver/RECEIPT.json names it). Each row has fresh processes, so one
file's peak does not hide the other's.

The increase covers the whole delivery (the scan's read and check, the
worker's read and check, the JSON body to Iconik); the goal is the issue's,
<= 5x the file. The CPU seconds are `captions.read` on the same bytes in
this process (the check alone, goal <= 2 s per MiB) and the service's own
CPU over the delivery (from /proc/PID/stat).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from bench.bulk import click, service_env, sim_args, wait_done
from bench.procs import listening
from service.captions import track as captions

MIB = 2**20
_WORDS = [
    "the",
    "a",
    "captioner",
    "wrote",
    "this",
    "line",
    "while",
    "the",
    "camera",
    "rolled",
    "on",
    "and",
    "nobody",
    "noticed",
    "that",
    "weather",
    "over",
    "harbour",
    "light",
    "was",
    "turning",
    "slowly",
    "again",
]


def make_captions(fmt: str, size: int, duration_ms: int, seed: int = 7) -> bytes:
    """A valid file of at most `size` bytes (and at least one cue): numbered
    cues of ~100 bytes, in order, all starting within `duration_ms`."""
    rnd = random.Random(seed)
    cues = max(1, size // 100)
    step = max(0, (duration_ms - 2000) // cues)
    separator = "." if fmt == "vtt" else ","
    parts = ["WEBVTT\n"] if fmt == "vtt" else []
    total = sum(map(len, parts))
    number = 0
    while True:
        at = number * step
        number += 1
        start = captions.timestamp(at).replace(".", separator)
        end = captions.timestamp(at + 1500).replace(".", separator)
        text = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(6, 12)))
        block = (
            f"\n{number}\n{start} --> {end}\n{text}\n"
            if fmt == "vtt"
            else f"{number}\n{start} --> {end}\n{text}\n\n"
        )
        if number > 1 and total + len(block.encode()) > size:  # MAX_CAPTION_BYTES is a limit
            break
        parts.append(block)
        total += len(block.encode())
    return "".join(parts).encode()


def _status(pid: int, key: str) -> float:
    """A /proc/PID/status figure in MiB (VmHWM, VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _check_cpu(name: str, data: bytes, duration: float) -> float:
    started = time.process_time()
    captions.read(name, data, duration)
    return time.process_time() - started


def _deliver(workdir: Path, fmt: str, size: int, timeout: float) -> dict[str, float]:
    with listening(sim_args(workdir, 1, captions=True), {}, workdir, "sim") as sim:
        [asset] = [a["asset_id"] for a in json.loads((workdir / "ids.json").read_text())]
        env = service_env(workdir, sim.url, DELIVER_SCAN_SECONDS="0.2", ICONIK_JOBS="false")
        with listening(["-m", "service", "serve"], env, workdir, "service") as service:
            status = wait_done(service.url, click(service.url, [asset]), timeout=60, poll=0.1)
            if status["status"] != "done":
                raise RuntimeError(f"the bundle was not built: {status}")
            [bundle] = [p for p in (workdir / "bundles").iterdir() if p.name.endswith(f"[{asset}]")]
            manifest = json.loads((bundle / "project.json").read_text())
            duration = float(manifest["asset"]["duration_seconds"])
            data = make_captions(fmt, size, int(duration * 1000))
            name = f"en.{fmt}"
            pid = service.process.pid
            time.sleep(0.5)  # a scan or two of the idle bundle
            idle, cpu_before = _status(pid, "VmHWM"), _cpu_seconds(pid)
            part = bundle / "deliver" / f".{name}.part"  # hidden: the scan skips it
            part.write_bytes(data)
            part.rename(bundle / "deliver" / name)
            dropped = time.monotonic()
            receipt, errors = bundle / "deliver" / "RECEIPT.json", bundle / "deliver" / "ERRORS.txt"
            while name not in (receipt.read_text() if receipt.exists() else ""):
                # ERRORS.txt says "waiting" and "checking" too: only problems are a refusal.
                said = errors.read_text() if errors.exists() else ""
                if "\nPROBLEMS\n" in said:
                    raise RuntimeError(f"{name} refused: {said[:500]}")
                if time.monotonic() - dropped > timeout:
                    raise RuntimeError(f"{name} not delivered within {timeout:.0f} s")
                time.sleep(0.05)
            took = time.monotonic() - dropped
            peak, service_cpu = _status(pid, "VmHWM"), _cpu_seconds(pid) - cpu_before
    return {
        "bytes": len(data),
        "idle": idle,
        "peak": peak,
        "seconds": took,
        "service_cpu": service_cpu,
        "check_cpu": _check_cpu(name, data, duration),
    }


def check_memory(workdir: Path, *, size: int = 20 * MIB, timeout: float = 300) -> list[str]:
    rows = []
    for fmt in ("vtt", "srt"):
        scratch = workdir / fmt
        scratch.mkdir()
        rows.append((fmt, _deliver(scratch, fmt, size, timeout)))
    lines = [
        f"check-memory: a generated valid en.vtt / en.srt of {size / MIB:.1f} MiB dropped in a "
        "bundle's deliver/, through `serve` (worker in-process) to the Iconik simulator",
        "  file     MiB   idle peak RSS (baseline)   delivered peak RSS   increase / file"
        "   check CPU s/MiB   service CPU s   time s",
    ]
    met = True
    for fmt, row in rows:
        mib = row["bytes"] / MIB
        ratio = (row["peak"] - row["idle"]) / mib
        per_mib = row["check_cpu"] / mib
        met = met and ratio <= 5 and per_mib <= 2
        lines.append(
            f"  en.{fmt}  {mib:6.1f}   {row['idle']:10.0f} MiB              "
            f"{row['peak']:7.0f} MiB          {ratio:6.2f}x          {per_mib:6.2f}"
            f"          {row['service_cpu']:6.1f}      {row['seconds']:5.1f}"
        )
    lines.append(
        f"  goal <= 5x the file's size in memory, <= 2 s CPU per MiB for the check "
        f"({'met' if met else 'NOT met'})"
    )
    return lines

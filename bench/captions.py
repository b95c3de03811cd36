"""`captions`: checking and converting a 20 MiB caption file, beside the
captions library (webvtt-py) parsing the same file alone, in the same run.

A generated valid en.vtt and en.srt of `size` bytes (~100 bytes a cue:
over 200,000 cues at 20 MiB) is written to the scratch folder; each row runs
in a fresh Python process that reads the file's bytes, notes its resident
set, then times one call (CPU seconds, `time.process_time`) and reads its
peak resident set (VmHWM) after it:

- `captions.read`: the service's whole check and conversion (the WebVTT
  that would go to Iconik included);
- `webvtt-py`: `webvtt.from_string` / `from_buffer(format="srt")` on the
  decoded text, parsing only (it writes nothing);
- `captions.read from 10:00:00:00`: the same SubRip file with every time
  10 hours later and the media's start timecode 10:00:00:00 (its first cue
  says the file counts from it: still one pass).

Goal (issue 17): <= 2 s of CPU and <= 5x the file's size in memory
(the peak over the resident set before the call) for `captions.read`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.check_memory import MIB, make_captions

DAY_MS = 24 * 3_600_000  # cue times of two-digit hours, as a long programme has

_CHILD = r"""
import json, sys, time
from pathlib import Path

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

what, path = sys.argv[1], sys.argv[2]
data = Path(path).read_bytes()
fmt = path.rsplit(".", 1)[1]
if what == "library":
    import io, webvtt
else:
    from service.captions import track as captions
before = status("VmRSS")
started = time.process_time()
if what == "library":
    text = data.decode("utf-8-sig")
    if fmt == "vtt":
        cues = len(webvtt.from_string(text).captions)
    else:
        cues = len(webvtt.from_buffer(io.StringIO(text), format="srt").captions)
else:
    media = captions.Media(DURATION, "10:00:00:00" if what == "timecode" else None, "25")
    track = captions.read("en." + fmt, data, media)
    cues = len(track.cues)
cpu = time.process_time() - started
print(json.dumps({"cpu": cpu, "before": before, "peak": status("VmHWM"), "cues": cues}))
"""


def _measure(what: str, path: Path, duration_s: float) -> dict[str, float]:
    child = _CHILD.replace("DURATION", repr(duration_s))
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo}
    done = subprocess.run(
        [sys.executable, "-c", child, what, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} {path.name}: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


def _shifted(data: bytes, hours: int) -> bytes:
    """The SubRip file with every time `hours` later (two-digit hours)."""
    out = []
    for line in data.decode().split("\n"):
        if "-->" in line:
            start, end = (f"{int(t[:2]) + hours:02d}{t[2:]}" for t in line.split(" --> "))
            line = f"{start} --> {end}"
        out.append(line)
    return "\n".join(out).encode()


def captions_bench(workdir: Path, *, size: int = 20 * MIB) -> list[str]:
    duration_s = DAY_MS / 1000 - 10 * 3600 - 1  # room for the shifted file below 24 h
    files = {}
    for fmt in ("vtt", "srt"):
        path = files[fmt] = workdir / f"en.{fmt}"
        # (cue times spread over half the media: make_captions counts ~100 bytes a cue)
        path.write_bytes(make_captions(fmt, size, int(duration_s * 500)))
    shifted = workdir / "shifted" / "en.srt"
    shifted.parent.mkdir()
    shifted.write_bytes(_shifted(files["srt"].read_bytes(), 10))
    rows = [
        ("en.vtt", "webvtt-py alone (baseline)", _measure("library", files["vtt"], duration_s)),
        ("en.vtt", "captions.read", _measure("read", files["vtt"], duration_s)),
        ("en.srt", "webvtt-py alone (baseline)", _measure("library", files["srt"], duration_s)),
        ("en.srt", "captions.read", _measure("read", files["srt"], duration_s)),
        ("en.srt", "captions.read from 10:00:00:00", _measure("timecode", shifted, duration_s)),
    ]
    mib = files["vtt"].stat().st_size / MIB
    lines = [
        f"captions: a generated valid caption file of {mib:.1f} MiB "
        f"({rows[1][2]['cues']:,.0f} cues), checked and converted, beside webvtt-py parsing it "
        "alone; each row a fresh process",
        "  file    what                              CPU s   peak over before   x file"
        "   vs webvtt-py CPU",
    ]
    met = True
    baseline = {}
    for fmt, what, row in rows:
        size_mib = (files["vtt"] if fmt == "en.vtt" else files["srt"]).stat().st_size / MIB
        grown = row["peak"] - row["before"]
        ratio = grown / size_mib
        if what.startswith("webvtt-py"):
            baseline[fmt] = row["cpu"]
            versus = ""
        else:
            versus = f"{row['cpu'] / baseline[fmt]:6.2f}x"
            met = met and row["cpu"] <= 2 * size_mib / 20 and ratio <= 5
        lines.append(
            f"  {fmt}  {what:32}  {row['cpu']:6.2f}   {grown:8.0f} MiB       {ratio:5.2f}x"
            f"   {versus}"
        )
    lines.append(
        "  goal for captions.read: <= 2 s CPU for 20 MiB (pro rata) and <= 5x the file in "
        f"memory ({'met' if met else 'NOT met'})"
    )
    return lines

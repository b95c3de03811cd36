"""What the tests of deliver/ share: caption files a captioner drops, how
to read cues back, what reached Iconik, and the scan's two looks."""

import io
from datetime import UTC, datetime

import webvtt

EN_VTT = (
    "WEBVTT\n"
    "\n"
    "1\n"
    "00:00:00.000 --> 00:00:00.800\n"
    "Welcome aboard, captioned.\n"
    "\n"
    "2\n"
    "00:00:00.500 --> 00:00:01.900 line:0\n"  # overlaps the cue above: legal, stays
    "<i>The harbour</i> never sleeps.\n"
)
BROKEN_DE = (
    "WEBVTT\n"
    "\n"
    "00:00:00.000 --> 00:00:01.000\n"
    "Gut.\n"
    "\n"
    "2\n"
    "00:00:01.500 --> 00:00:01.200\n"  # line 7: ends before it starts
    "Rückwärts.\n"
)


def cues_of(text, fmt="vtt"):
    document = webvtt.from_buffer(io.StringIO(text), format=fmt)
    return [
        (c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), c.text)
        for c in document.captions
    ]


def track_writes(sim):
    return [(m, p) for m, p, _ in sim.bodies if "/subtitles/" in p or "/formats/" in p]


def delivered_job(sim, status):
    return [
        j
        for j in sim.jobs.values()
        if j["title"].startswith("Captions delivered") and j["status"] == status
    ]


def hms(s):
    """The stack's clock as ERRORS.txt says when a file was seen."""
    return datetime.fromtimestamp(s.clock.now, UTC).strftime("%H:%M:%S")


def take(s, times=2):
    """Scan `times` looks in a row: a file is taken on the second look that finds it unchanged."""
    return [s.scan().queued for _ in range(times)]

"""deliver/README.txt: how to deliver, in plain words for someone who has
only this folder. Pure.

Written by every build from the asset's facts, and again (service/deliver/task.py's
`readme` task) when the scan finds the one on record was written for another
scan interval or house style: the scan and the build render it from the same
facts (the manifest's `asset`) with `readme_of`, so comparing digests says
whether it is current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.bundle import due_dates
from service.bundle.outtray import HISTORY_PER_TRACK
from service.captions import house_style
from service.captions.track import MAX_PROBLEMS, TOLERANCE_SECONDS, timestamp


def short_text(value: Any, limit: int = 32) -> str | None:
    """A fact read back from project.json (a start timecode, a frame rate)
    when it is a short string; None otherwise."""
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def readme_of(
    asset: Mapping[str, Any],
    asset_id: str,
    scan_seconds: float,
    style: house_style.Style,
    request: Mapping[str, Any] | None = None,
) -> str:
    """README.txt from the manifest's `asset` and `request` facts: the build
    writes it from the facts it gathers, the scan checks it from the facts
    read back, and both get the same text from the same facts."""
    request = request if isinstance(request, Mapping) else {}
    title = asset.get("title")
    duration = asset.get("duration_seconds")
    return readme(
        title[:200] if isinstance(title, str) else "",
        asset_id,
        duration if isinstance(duration, int | float) and not isinstance(duration, bool) else None,
        scan_seconds,
        start_timecode=short_text(asset.get("start_timecode")),
        frame_rate=short_text(asset.get("frame_rate")),
        style=style,
        due=due_dates.describe(request.get("due_date"), request.get("due_date_note")),
    )


def readme(
    title: str,
    asset_id: str,
    duration_seconds: float | None,
    scan_seconds: float,
    *,
    start_timecode: str | None = None,
    frame_rate: str | None = None,
    style: house_style.Style | None = None,
    due: str | None = None,
) -> str:
    """deliver/README.txt: plain words for someone who has only this folder."""
    style = style or house_style.Style()
    if scan_seconds > 0:
        when = (
            f"The service looks at this folder {every(scan_seconds)}. A file is taken once\n"
            "it has stopped changing (so a file still being copied is never sent\n"
            "half-way), checked, and sent to Iconik, where it replaces the asset's\n"
            "track of that language and kind. Your file stays here exactly as it is."
        )
    else:
        when = (
            "Deliveries through this folder are turned off at the moment: files put\n"
            "here stay here and are not sent. Please tell your contact."
        )
    length = timestamp(round(duration_seconds * 1000)) if duration_seconds is not None else "?"
    rate = frame_rate or "not known"
    if start_timecode:
        timing = (
            f"The video starts at the timecode {start_timecode}. Time your cues either from\n"
            f"zero (00:00:00.000 is the first frame) or from the start timecode\n"
            f"({start_timecode} is the first frame): both work. A file whose cues all\n"
            "fall within the video counted from the start timecode, and not counted\n"
            "from zero, is read as timed from the start timecode, and RECEIPT.json\n"
            "says so."
        )
    else:
        timing = (
            "The video has no start timecode on record: time your cues from zero\n"
            "(00:00:00.000 is the first frame)."
        )
    mode = (
        "A file that breaks any of them is REFUSED (the findings are in ERRORS.txt)."
        if style.strict
        else "A file that breaks them is still delivered; REPORT.txt lists what to look at."
    )
    rules = "\n".join(f"  - {words}" for words in house_style.describe(style, frame_rate))
    return f"""DELIVERING FINISHED CAPTIONS
============================

Project: {title} ({asset_id})
Video length {length}, start timecode {start_timecode or "none"}, frame rate {rate}.
{f"Due: {due}.{chr(10)}" if due else ""}
1. Name each finished track after its language, one file per track:

     en.vtt        English subtitles, WebVTT
     en.srt        English subtitles, SubRip
     fr.cc.vtt     French closed captions (with sound descriptions), WebVTT
     pt-BR.cc.srt  Brazilian Portuguese closed captions, SubRip

   The language is a short code (en, fr, de, es, pt-BR, ...). Put ".cc"
   before the extension for closed captions. Use one file per language and
   kind: of en.vtt and en.srt side by side, only one is delivered.

2. Put the file in this folder (not in a subfolder).

TIMING

{timing}

WHAT HAPPENS NEXT

{when}

To correct a track, save the new version under the same name: it is sent
again and replaces the one in Iconik. The same content is never sent twice.

WHERE TO LOOK

  ERRORS.txt    while anything here is not delivered yet: one line per file
                with its state (waiting, checking, delivered, refused), then
                every problem of each file with its line (at most
                {MAX_PROBLEMS} a file). Fix the file and save it again; the list is
                rewritten at each look and disappears once every file is
                delivered.
  RECEIPT.json  every file that reached Iconik: its name, its language,
                whether it is closed captions, when it was delivered, what
                was noted on the way, and the house-style findings counted.
                The latest delivery of each track is kept, with the
                {HISTORY_PER_TRACK} before it.
  REPORT.txt    the house-style findings of each file here (line, cue,
                rule, value).

A file is refused when it is not UTF-8 text, when a cue's times cannot be
read (WebVTT 00:01:02.500 --> 00:01:04.000, SubRip 00:01:02,500 -->
00:01:04,000), when a cue ends before it starts, when a cue starts before
the cue above it (cues overlapping is fine), or when a cue starts after the
end of the video (with {TOLERANCE_SECONDS:g} second of leeway).

HOUSE STYLE

{rules}

Characters are counted without markup (<i>, {{\\an8}}). {mode}

README.txt, RECEIPT.json, ERRORS.txt and REPORT.txt are written by the
service; changes to them are overwritten. Nothing else in this folder is
ever changed or deleted by the service.
"""


def every(scan_seconds: float) -> str:
    return "every minute" if scan_seconds == 60 else f"every {scan_seconds:g} seconds"

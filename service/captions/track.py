"""Caption files a captioner delivers: which track a name means, what the
file says, whether it may go to Iconik, and the WebVTT that goes. Pure.

A delivered file reaches Iconik as the captioner wrote it, or not at all:
every cue's start, end and text, in valid WebVTT (by the W3C parser, the
one its validator and the browsers follow). The reading is
service/captions/reader.py (one bounded pass, its timing lines read as in
service/captions/lines.py, SubRip text made WebVTT in
service/captions/text.py); this module adds what a delivery needs on top:

- a line number for every problem, all of them at once (up to MAX_PROBLEMS);
- the rules a track must meet: every timing readable; every cue of some
  duration; start times in order (overlapping cues are legal and stay); no
  cue starting after the media ends (plus a tolerance);
- the media's start timecode: a file timed from it (10:00:00:00 is the
  broadcast norm) is read as such, its times made to count from zero, and
  the track's notes say so;
- a refusal, not a crash, for a file too large or too complex to read.

webvtt-py (the captions library) still turns Iconik's own WebVTT into
SubRip for the bundle (`webvtt_to_srt`); it no longer reads deliveries: it
takes ~9 s and ~16x the file on 20 MiB by itself (bench `captions`), and
reads times the W3C parser refuses.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from service.captions import lines as caption_lines
from service.captions import reader as caption_reader
from service.captions import srt as caption_srt
from service.captions import text as caption_text
from service.captions.timecode import start_offset

# A cue may start this long after the media's recorded end (rounding of
# durations and frame rates) before it is taken for a cue of another cut.
TOLERANCE_SECONDS = 1.0

# <language>[.cc].vtt|srt: a BCP 47-like tag (en, fr, pt-BR, zh-Hant, es_419).
_NAME = re.compile(
    r"^(?P<language>[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)(?P<cc>\.cc)?\.(?P<ext>vtt|srt)$",
    re.IGNORECASE,
)
TOO_COMPLEX = (
    "the file could not be checked: too large or too complex to read; split it into "
    "smaller files, or send it as plain cues of a few lines each"
)
NAMING_HINT = (
    "name it <language>.vtt or <language>.srt, with .cc before the extension for "
    "closed captions (en.vtt, fr.cc.srt)"
)


# At most this many problems of one file are listed; the rest are counted.
MAX_PROBLEMS = caption_reader.MAX_PROBLEMS


class Refused(ValueError):
    """The file cannot be delivered; `line` (1-based) is where, when one line is.

    `problems` lists every problem found, in line order, each (line, reason),
    at most MAX_PROBLEMS; `more` counts those past the first that are not
    shown by `str()` (the first problem is `reason`/`line`).
    """

    def __init__(
        self,
        reason: str,
        line: int | None = None,
        more: int = 0,
        problems: Sequence[tuple[int | None, str]] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason, self.line, self.more = reason, line, more
        self.problems: list[tuple[int | None, str]] = (
            list(problems) if problems is not None else [(line, reason)]
        )

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        also = f" (and {self.more} more problem{'s' if self.more > 1 else ''})" if self.more else ""
        return f"{where}{self.reason}{also}"


@dataclass(frozen=True)
class TrackName:
    """What a file name in deliver/ asks for."""

    language: str
    closed_captions: bool
    format: str  # "vtt" | "srt"

    @property
    def label(self) -> str:
        return f"{self.language} (closed captions)" if self.closed_captions else self.language


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str
    line: int  # the cue's timing line in the delivered file


@dataclass(frozen=True)
class Media:
    """What the bundle says of the asset's media, for the checks of a track."""

    duration_seconds: float | None = None
    start_timecode: str | None = None  # as Iconik gives it: "10:00:00:00" or ";00" for drop frame
    frame_rate: str | None = None  # as Iconik gives it: "25", "29.97", "30000/1001"

    @classmethod
    def of(cls, asset: Any) -> Media:
        """From project.json's "asset" (read back, so untrusted: wrong types are unknown)."""
        asset = asset if isinstance(asset, dict) else {}
        duration = asset.get("duration_seconds")
        if not isinstance(duration, int | float) or isinstance(duration, bool):
            duration = None
        texts = [asset.get(key) for key in ("start_timecode", "frame_rate")]
        start, rate = [str(t)[:40] if isinstance(t, str | int | float) else None for t in texts]
        return cls(duration, start, rate)


@dataclass(frozen=True)
class Track:
    """A delivered file that passed every check, as Iconik gets it."""

    name: TrackName
    cues: Sequence[Cue]  # made on access: a long track holds five numbers a cue
    webvtt: str
    # What was changed on the way, said in the receipt: e.g. "times counted
    # from the start timecode 10:00:00:00". Empty when the file went as written.
    notes: tuple[str, ...] = ()
    offset_ms: int = 0  # subtracted from every time in the file (start timecode)


def parse_name(filename: str) -> TrackName:
    match = _NAME.match(filename)
    if match is None:
        raise Refused(f"not a name the service delivers: {NAMING_HINT}")
    language = match["language"]
    primary, sep, rest = language.partition("-") if "-" in language else language.partition("_")
    return TrackName(
        language=primary.lower() + sep + rest,  # en, as Iconik's tracks are named; not EN
        closed_captions=match["cc"] is not None,
        format=match["ext"].lower(),
    )


def read(filename: str, data: bytes, media: Media | float | None) -> Track:
    """Check a delivered file and convert it to WebVTT; `Refused` says why not."""
    name = parse_name(filename)
    if not isinstance(media, Media):
        media = Media(duration_seconds=media)
    try:
        return _read(name, data, media)
    except caption_lines.NotUtf8 as exc:
        raise Refused(_NOT_UTF8, exc.line) from None
    except (MemoryError, RecursionError, OverflowError):
        raise Refused(TOO_COMPLEX) from None


def webvtt_to_srt(text: str) -> str:
    """Iconik's WebVTT as SubRip, for captioning tools that only take .srt:
    <b> <i> <u> kept, other tags left out, `&lt;` written as `<` (SubRip is
    read literally)."""
    try:
        document = webvtt.from_string(text)
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise Refused(f"WebVTT cannot be read: {exc}") from None
    blocks = []
    for number, caption in enumerate(document.captions, 1):
        start = caption.start.replace(".", ",")
        end = caption.end.replace(".", ",")
        text = caption_text.webvtt_to_srt_text(caption.raw_text)
        blocks.append(f"{number}\n{start} --> {end}\n{text}\n")
    return "\n".join(blocks)


def timestamp(ms: int) -> str:
    return caption_lines.timestamp(ms)


# -- the steps of `read` -------------------------------------------------------

_NOT_UTF8 = "this line is not UTF-8 text; save the file as UTF-8"
_SIGNATURE = re.compile(r"WEBVTT(?:[ \t].*)?", re.DOTALL)


def _read(name: TrackName, data: bytes, media: Media) -> Track:
    _check_start(name.format, data)
    duration = media.duration_seconds
    offset = start_offset(media.start_timecode, media.frame_rate)
    try:  # (read once: the first cue says whether the file counts from the timecode)
        reading = _pass(name.format, data, duration, offset[0] if offset else 0)
        if reading.offset and not reading.past_the_end:
            raise caption_reader.FromZero  # within the media from zero too: as written
    except caption_reader.FromZero:
        reading = _pass(name.format, data, duration, 0)
    notes: tuple[str, ...] = ()
    if offset is not None and reading.offset:
        notes = (f"times counted from the start timecode {offset[1]}",)
    problems = _problems(reading, duration, offset)
    if not problems and not len(reading.cues):
        problems = [(1, "the file has no cues")]
    if problems:
        count = len(problems) - len(reading.problems) - len(reading.late)
        count += reading.problem_count + reading.late_count
        line, reason = problems[0]
        raise Refused(reason, line, more=count - 1, problems=problems)
    reading.cues.make = Cue
    return Track(
        name,
        reading.cues,
        reading.webvtt,
        notes=notes + reading.notes_text(),
        offset_ms=reading.offset,
    )


def _pass(
    fmt: str, data: bytes, duration: float | None, timecode_ms: int
) -> caption_reader.Reading:
    limit = None if duration is None else round((duration + TOLERANCE_SECONDS) * 1000)
    reading = caption_reader.Reading(_rules(duration), timecode_ms, limit)
    for line in _nul_lines(data):
        reading.problem(line, "a NUL character (byte 0) in this line: is the file text?")
    windows = caption_lines.iter_windows(data)
    if fmt == "vtt":
        caption_reader.read_vtt(reading, windows)
    else:
        caption_srt.read_srt(reading, windows)
    reading.finish()
    return reading


def _nul_lines(data: bytes) -> Iterator[int]:
    at = data.find(b"\0")
    found = 0
    while at >= 0 and found < MAX_PROBLEMS:
        found += 1
        yield data.count(b"\n", 0, at) + 1
        at = data.find(b"\0", data.find(b"\n", at) + 1 or len(data))


def _check_start(fmt: str, data: bytes) -> None:
    """The file is of the format its name says (a word for each, at line 1)."""
    first = list(itertools.islice(caption_lines.iter_lines(data[:4096]), 40))
    if fmt == "vtt":
        if not first or not _SIGNATURE.fullmatch(first[0]):
            _check_utf8(data)
            raise Refused("a WebVTT file must start with the line WEBVTT", 1)
        return
    content = [line.strip() for line in first if line.strip()][:2]
    if content and content[0].isdigit():
        content = content[1:]
    if not content or "-->" not in content[0]:
        _check_utf8(data)
        raise Refused(
            "not a SubRip file: it must start with a cue number, then a timing line "
            "such as 00:00:01,000 --> 00:00:02,500",
            1,
        )


def _check_utf8(data: bytes) -> None:
    for _ in caption_lines.iter_windows(data):
        pass


def _problems(
    reading: caption_reader.Reading, duration: float | None, offset: tuple[int, str] | None
) -> list[tuple[int | None, str]]:
    """Every problem in line order, cues past the media's end told with a
    hint when the media has a start timecode."""
    late: list[tuple[int | None, str]] = []
    if reading.late:
        end_ms = round((duration or 0) * 1000)
        hint = ""
        if offset is not None:
            offset_ms, written = offset
            hint = (
                f"; the video's start timecode is {written}: a file timed from it must "
                f"have every cue start between {timestamp(offset_ms)} and "
                f"{timestamp(offset_ms + end_ms)}"
            )
        late = [
            (
                line,
                f"the cue starts ({timestamp(start)}) after the end of the video "
                f"({timestamp(end_ms)}){hint}",
            )
            for line, start in reading.late
        ]
    found: list[tuple[int | None, str]] = [*reading.problems, *late]
    found.sort(key=lambda problem: problem[0] or 0)
    return found[:MAX_PROBLEMS]


def _rules(duration_seconds: float | None) -> caption_reader.Rules:
    """The problems of a cue (start, end, its line); it remembers the cue above."""
    limit_ms = None
    if duration_seconds is not None:
        limit_ms = round((duration_seconds + TOLERANCE_SECONDS) * 1000)
    previous = [-1, 0]  # start, line

    def problems(start_ms: int, end_ms: int, line: int) -> list[tuple[int, str | None]]:
        found: list[tuple[int, str | None]] = []
        if end_ms <= start_ms:
            starts, ends = timestamp(start_ms), timestamp(end_ms)
            found.append(
                (line, f"the cue ends ({ends}) before it starts ({starts})")
                if end_ms < start_ms
                else (
                    line,
                    f"the cue ends when it starts ({starts}): it would never be shown; "
                    "give it a duration, or remove it",
                )
            )
        if start_ms < previous[0]:
            found.append(
                (
                    line,
                    f"the cue starts ({timestamp(start_ms)}) before the cue above it "
                    f"(line {previous[1]}, {timestamp(previous[0])}); "
                    "cues must be in order of their start times",
                )
            )
        if limit_ms is not None and start_ms > limit_ms:
            found.append((line, None))
        previous[0], previous[1] = start_ms, line
        return found

    return problems

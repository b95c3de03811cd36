"""Caption files a captioner delivers: which track a name means, what the
file says, whether it may go to Iconik, and the WebVTT that goes. Pure.

Reading and writing WebVTT and SubRip is webvtt-py's work (maintained, no
dependencies of its own, keeps cue identifiers, settings and markup as
written), one block at a time (service/caption_reader.py): the files are
untrusted and up to 20 MiB, and the library's whole-file reading kept ~16x
that. What this module adds is what a delivery needs on top of it:

- a line number for every problem, so a captioner can find it. The library
  says which cues it read, not where they were, and it quietly skips a
  SubRip cue it cannot read; so each timing line (a line with `-->`) is
  also read on its own, as the library reads it, and matched in order with
  the library's cues. A timing line that gave no cue is a refusal at its line.
- the rules a track must meet: every timing readable; no cue ending before
  it starts; start times in order (WebVTT requires it; overlapping cues are
  legal and stay); no cue starting after the media ends (plus a tolerance).
- a refusal, not a crash, for a file too large or too complex to read.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from service import caption_lines, caption_reader

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
MAX_PROBLEMS = 50


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
    duration_seconds = media.duration_seconds if isinstance(media, Media) else media
    try:
        return _read(name, data, duration_seconds)
    except (MemoryError, RecursionError, OverflowError):
        raise Refused(TOO_COMPLEX) from None
    except caption_reader.TooComplex as exc:
        _check_utf8(data)  # as before: a file that is not UTF-8 is told so first
        raise Refused(TOO_COMPLEX, exc.line or None) from None


def webvtt_to_srt(text: str) -> str:
    """Iconik's WebVTT as SubRip, for captioning tools that only take .srt."""
    try:
        document = webvtt.from_string(text)
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise Refused(f"WebVTT cannot be read: {exc}") from None
    out = io.StringIO()
    document.write(out, format="srt", keep_formatting=True)
    return out.getvalue() + "\n"


def timestamp(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


# -- the steps of `read` -------------------------------------------------------


def _read(name: TrackName, data: bytes, duration_seconds: float | None) -> Track:
    rules = _rules(duration_seconds)
    reading = caption_reader.Reading(name.format, rules, Cue)
    lines = reading.lines(data)
    try:
        first = [line for _, line in zip(range(3), lines, strict=False)]
        if not _looks_like(name.format, first):
            _check_utf8(data)
            raise Refused(*_NOT_THE_FORMAT[name.format])
        each = itertools.chain(first, lines)
        if name.format == "vtt":
            caption_reader.read_vtt(reading, each)
        else:
            caption_reader.read_srt(reading, each)
    except caption_lines.NotUtf8 as exc:
        raise Refused("this line is not UTF-8 text; save the file as UTF-8", exc.line) from None
    reading.end()
    reading.finish()
    problems = [p for p in (reading.unread, reading.found) if p is not None]
    if problems:
        line, reason = min(problems)
        raise Refused(reason, line, more=reading.unread_count + reading.found_count - 1)
    if not reading.cues:
        raise Refused("the file has no cues", 1)
    if reading.write_error is not None:  # the library could not write what it read back
        raise Refused(f"cannot be written as WebVTT: {reading.write_error}") from None
    return Track(name, reading.cues, reading.webvtt)


def _check_utf8(data: bytes) -> None:
    try:
        for _ in caption_lines.iter_lines(data):
            pass
    except caption_lines.NotUtf8 as exc:
        raise Refused("this line is not UTF-8 text; save the file as UTF-8", exc.line) from None


def _looks_like(fmt: str, first: list[str]) -> bool:
    """webvtt-py's is_valid_content, on the first three lines it reads."""
    if fmt == "vtt":
        return bool(first and first[0].startswith("WEBVTT"))
    return len(first) >= 3 and first[0].isdigit() and "-->" in first[1]


_NOT_THE_FORMAT = {
    "vtt": ("a WebVTT file must start with the line WEBVTT", 1),
    "srt": (
        "not a SubRip file: it must start with a cue number, then a timing line "
        "such as 00:00:01,000 --> 00:00:02,500",
        1,
    ),
}


Rules = Callable[[int, int, int, "tuple[int, int] | None"], list[tuple[int, str]]]


def _rules(duration_seconds: float | None) -> Rules:
    """The problems of a cue (start, end, its line), given (start, line) of the one above."""
    limit_ms, end_of_media = None, ""
    if duration_seconds is not None:
        limit_ms = round((duration_seconds + TOLERANCE_SECONDS) * 1000)
        end_of_media = timestamp(round(duration_seconds * 1000))

    def problems(
        start_ms: int, end_ms: int, line: int, previous: tuple[int, int] | None
    ) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        if end_ms < start_ms:
            ends, starts = timestamp(end_ms), timestamp(start_ms)
            found.append((line, f"the cue ends ({ends}) before it starts ({starts})"))
        if previous is not None and start_ms < previous[0]:
            found.append(
                (
                    line,
                    f"the cue starts ({timestamp(start_ms)}) before the cue above it "
                    f"(line {previous[1]}, {timestamp(previous[0])}); "
                    "cues must be in order of their start times",
                )
            )
        if limit_ms is not None and start_ms > limit_ms:
            found.append(
                (
                    line,
                    f"the cue starts ({timestamp(start_ms)}) after the end of the video "
                    f"({end_of_media})",
                )
            )
        return found

    return problems

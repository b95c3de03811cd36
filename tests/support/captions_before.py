"""The check of delivered caption files as it was before service/captions/reader.py
(whole-file webvtt-py), kept as the reference the bounded reader must agree with.

Caption files a captioner delivers: which track a name means, what the
file says, whether it may go to Iconik, and the WebVTT that goes. Pure.

Reading and writing WebVTT and SubRip is webvtt-py's work (maintained, no
dependencies of its own, keeps cue identifiers, settings and markup as
written). What this module adds is what a delivery needs on top of it:

- a line number for every problem, so a captioner can find it. The library
  says which cues it read, not where they were, and it quietly skips a
  SubRip cue it cannot read; so each timing line (a line with `-->`) is
  also read on its own, by the library, and matched in order with the cues
  of the whole file. A timing line that gave no cue is a refusal at its line.
- the rules a track must meet: every timing readable; no cue ending before
  it starts; start times in order (WebVTT requires it; overlapping cues are
  legal and stay); no cue starting after the media ends (plus a tolerance).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

# A cue may start this long after the media's recorded end (rounding of
# durations and frame rates) before it is taken for a cue of another cut.
TOLERANCE_SECONDS = 1.0

# <language>[.cc].vtt|srt: a BCP 47-like tag (en, fr, pt-BR, zh-Hant, es_419).
_NAME = re.compile(
    r"^(?P<language>[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)(?P<cc>\.cc)?\.(?P<ext>vtt|srt)$",
    re.IGNORECASE,
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
NAMING_HINT = (
    "name it <language>.vtt or <language>.srt, with .cc before the extension for "
    "closed captions (en.vtt, fr.cc.srt)"
)


class Refused(ValueError):
    """The file cannot be delivered; `line` (1-based) is where, when one line is."""

    def __init__(self, reason: str, line: int | None = None, more: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.line, self.more = reason, line, more

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
class Track:
    """A delivered file that passed every check, as Iconik gets it."""

    name: TrackName
    cues: list[Cue]
    webvtt: str


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


def read(filename: str, data: bytes, duration_seconds: float | None) -> Track:
    """Check a delivered file and convert it to WebVTT; `Refused` says why not."""
    name = parse_name(filename)
    text = _decode(data)
    document = _parse(text, name.format)
    cues, unread = _cues(text, name.format, document)
    problems = sorted(unread + _problems(cues, duration_seconds))
    if problems:
        line, reason = problems[0]
        raise Refused(reason, line, more=len(problems) - 1)
    if not cues:
        raise Refused("the file has no cues", 1)
    if isinstance(document, MalformedCaptionError):  # a problem was found then
        raise Refused(str(document))
    try:
        converted = document.content
    except ValueError as exc:  # the library could not write what it read back
        raise Refused(f"cannot be written as WebVTT: {exc}") from None
    return Track(name, cues, converted)


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


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Refused("this line is not UTF-8 text; save the file as UTF-8", line) from None


def _parse(text: str, fmt: str) -> webvtt.WebVTT | MalformedCaptionError:
    """The whole file as the library reads it, or the error of a cue it refused
    (located afterwards, line by line)."""
    try:
        return webvtt.from_buffer(io.StringIO(text), format=fmt)
    except MalformedFileError:
        if fmt == "vtt":
            raise Refused("a WebVTT file must start with the line WEBVTT", 1) from None
        raise Refused(
            "not a SubRip file: it must start with a cue number, then a timing line "
            "such as 00:00:01,000 --> 00:00:02,500",
            1,
        ) from None
    except MalformedCaptionError as exc:
        return exc


def _read_timing(line: str, fmt: str) -> tuple[int, int] | None:
    """The (start, end) the library reads from one timing line, or None."""
    try:
        if fmt == "vtt":
            one = webvtt.from_string(f"WEBVTT\n\n{line}\nx\n")
        else:
            one = webvtt.from_buffer(io.StringIO(f"1\n{line}\nx\n"), format="srt")
    except (MalformedFileError, MalformedCaptionError):
        return None
    if len(one.captions) != 1:
        return None
    cue = one.captions[0]
    return cue.start_time.in_milliseconds(), cue.end_time.in_milliseconds()


def _cues(
    text: str, fmt: str, document: webvtt.WebVTT | MalformedCaptionError
) -> tuple[list[Cue], list[tuple[int, str]]]:
    """The file's cues, each with its timing line, and the timing lines that gave none."""
    lines = _LINE_BREAK.split(text)
    failed = isinstance(document, MalformedCaptionError)
    captions = [] if failed else list(document.captions)
    cues: list[Cue] = []
    problems: list[tuple[int, str]] = []
    separator = "." if fmt == "vtt" else ","
    for index, line in enumerate(lines):
        if "-->" not in line or (fmt == "vtt" and index == 0):
            continue
        number = index + 1
        timing = _read_timing(line, fmt)
        if timing is None:
            problems.append(
                (
                    number,
                    f"cannot read the cue timing {line.strip()!r}; write it as "
                    f"00:00:01{separator}000 --> 00:00:02{separator}500",
                )
            )
            continue
        if failed:
            continue  # only a line the library cannot read explains its refusal
        caption = captions[len(cues)] if len(cues) < len(captions) else None
        if caption is not None and timing == (
            caption.start_time.in_milliseconds(),
            caption.end_time.in_milliseconds(),
        ):
            cues.append(Cue(*timing, caption.text, number))
        elif fmt == "srt" and not (lines[index + 1 : index + 2] or [""])[0].strip():
            continue  # a SubRip cue without text shows nothing; the library drops it
        else:
            problems.append((number, "this cue cannot be read; check the lines around it"))
    if failed and not problems:
        problems.append((1, f"a cue cannot be read ({document})"))
    if not problems and len(cues) != len(captions):
        problems.append((1, "the file's cues cannot be told apart; check its blank lines"))
    return cues, problems


def _problems(cues: list[Cue], duration_seconds: float | None) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    limit_ms, end_of_media = None, ""
    if duration_seconds is not None:
        limit_ms = round((duration_seconds + TOLERANCE_SECONDS) * 1000)
        end_of_media = timestamp(round(duration_seconds * 1000))
    previous: Cue | None = None
    for cue in cues:
        start, end = timestamp(cue.start_ms), timestamp(cue.end_ms)
        if cue.end_ms < cue.start_ms:
            problems.append((cue.line, f"the cue ends ({end}) before it starts ({start})"))
        if previous is not None and cue.start_ms < previous.start_ms:
            problems.append(
                (
                    cue.line,
                    f"the cue starts ({start}) before the cue above it "
                    f"(line {previous.line}, {timestamp(previous.start_ms)}); "
                    "cues must be in order of their start times",
                )
            )
        if limit_ms is not None and cue.start_ms > limit_ms:
            problems.append(
                (
                    cue.line,
                    f"the cue starts ({start}) after the end of the video ({end_of_media})",
                )
            )
        previous = cue
    return problems

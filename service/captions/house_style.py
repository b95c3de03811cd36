"""House style: how readable a delivered track is, reported, not imposed. Pure.

The rules are those of the common streaming style guides, each a setting
(service/settings.py, HOUSE_STYLE_*), 0 turning a rule off:

    max_line_chars        characters on one line of a cue          42
    max_lines             lines in one cue                          2
    max_chars_per_second  a cue's characters over its duration      20
    min_cue_seconds       a cue's duration, at least                5/6 s
    max_cue_seconds       a cue's duration, at most                 7 s
    min_gap_frames        frames between a cue's end and the next   2
                          cue's start (the media's frame rate; 25
                          when it is not known)

Characters are those a viewer reads: the text without its markup (<i>,
<c.yellow>, <v Anna>, {\\an8}), entities read as the character they stand
for, line breaks not counted in the characters per second.

The work is bounded whatever the track: one pass over the cues, a few
numbers of state, at most `MAX_LISTED` findings kept (the rest are counted),
so a 200,000-cue file is one walk and a short list.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from service.captions.track import MAX_PROBLEMS, Refused

# At most this many findings of one file are listed (REPORT.txt, ERRORS.txt
# under strict); every finding is counted.
MAX_LISTED = 100
DEFAULT_FRAME_RATE = 25.0

RULES = ("line_chars", "lines", "chars_per_second", "short_cue", "long_cue", "gap")

_MARKUP = re.compile(r"<[^>\n]*>|\{\\[^}\n]*\}")


class CueLike(Protocol):
    # Read-only, so that a frozen dataclass (service.captions.track.Cue) is one.
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def line(self) -> int: ...


@dataclass(frozen=True)
class Style:
    max_line_chars: int = 42
    max_lines: int = 2
    max_chars_per_second: float = 20
    min_cue_seconds: float = 5 / 6
    max_cue_seconds: float = 7
    min_gap_frames: float = 2
    strict: bool = False  # HOUSE_STYLE=strict: a file with findings is refused


@dataclass(frozen=True)
class Finding:
    """One cue that breaks one rule: where, and by how much."""

    line: int  # the cue's timing line
    cue: int  # 1-based, in file order
    rule: str
    value: str  # what was found, against the limit, in words

    def __str__(self) -> str:
        return f"cue {self.cue}: {self.value}"


@dataclass
class Report:
    listed: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # per rule, every finding

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def more(self) -> int:
        return self.total - len(self.listed)


def visible_text(text: str) -> str:
    """What a viewer reads of a cue's text: markup dropped, entities read."""
    if "<" not in text and "{" not in text and "&" not in text:
        return text  # most cues: nothing to drop
    return html.unescape(_MARKUP.sub("", text))


def frames_per_second(frame_rate: str | float | None) -> float:
    """Iconik's frame rate ("25", "29.97", "30000/1001") as a number; 25 when
    it is missing or not a sensible rate."""
    try:
        if isinstance(frame_rate, str):
            rate = float(Fraction(frame_rate.strip()[:32]))
        elif isinstance(frame_rate, int | float) and not isinstance(frame_rate, bool):
            rate = float(frame_rate)
        else:
            return DEFAULT_FRAME_RATE
    except (ValueError, ZeroDivisionError, OverflowError):
        return DEFAULT_FRAME_RATE
    return rate if 1 <= rate <= 1000 else DEFAULT_FRAME_RATE


def check(
    cues: Iterable[CueLike],
    style: Style,
    frame_rate: str | float | None = None,
    *,
    max_listed: int = MAX_LISTED,
) -> Report:
    """Every cue against every rule of `style`, in one pass; only the findings
    listed are put in words."""
    report = Report()
    counts = report.counts
    fps = frames_per_second(frame_rate)
    min_gap_ms = style.min_gap_frames * 1000 / fps - 0.5
    min_ms = style.min_cue_seconds * 1000 - 0.5
    max_ms = style.max_cue_seconds * 1000
    max_lines, max_chars, max_cps = (
        style.max_lines,
        style.max_line_chars,
        style.max_chars_per_second,
    )
    previous_end: int | None = None
    for number, cue in enumerate(cues, 1):
        found: list[tuple[str, float]] = []
        lines = visible_text(cue.text).split("\n")
        if max_lines and len(lines) > max_lines:
            found.append(("lines", len(lines)))
        if max_chars:
            longest = max(map(len, lines))
            if longest > max_chars:
                found.append(("line_chars", longest))
        duration_ms = cue.end_ms - cue.start_ms
        if max_cps and duration_ms > 0:
            rate = sum(map(len, lines)) * 1000 / duration_ms
            if rate > max_cps:
                found.append(("chars_per_second", rate))
        if style.min_cue_seconds and duration_ms < min_ms:
            found.append(("short_cue", duration_ms / 1000))
        if style.max_cue_seconds and duration_ms > max_ms:
            found.append(("long_cue", duration_ms / 1000))
        if style.min_gap_frames and previous_end is not None:
            gap_ms = cue.start_ms - previous_end
            if gap_ms < min_gap_ms:
                found.append(("gap", gap_ms * fps / 1000))
        previous_end = cue.end_ms
        for rule, value in found:
            counts[rule] = counts.get(rule, 0) + 1
            if len(report.listed) < max_listed:
                words = _words(rule, value, style, fps)
                report.listed.append(Finding(cue.line, number, rule, words))
    return report


def _words(rule: str, value: float, style: Style, fps: float) -> str:
    """A finding's value against its limit, in words."""
    if rule == "lines":
        return f"{value:g} lines (at most {style.max_lines:g})"
    if rule == "line_chars":
        return f"a line of {value:g} characters (at most {style.max_line_chars:g})"
    if rule == "chars_per_second":
        return f"{value:.1f} characters per second (at most {style.max_chars_per_second:g})"
    if rule == "short_cue":
        return f"on screen {value:.3f} s (at least {style.min_cue_seconds:.3f} s)"
    if rule == "long_cue":
        return f"on screen {value:.3f} s (at most {style.max_cue_seconds:g} s)"
    limit = f"(at least {style.min_gap_frames:g} at {fps:g} frames per second)"
    if value < 0:
        return f"starts {-value:.1f} frames before the cue above ends {limit}"
    return f"starts {value:.1f} frames after the cue above ends {limit}"


RULE_NAMES = {
    "line_chars": "characters per line",
    "lines": "lines per cue",
    "chars_per_second": "characters per second",
    "short_cue": "shortest duration",
    "long_cue": "longest duration",
    "gap": "gap between cues",
}


def describe(style: Style, frame_rate: str | float | None = None) -> list[str]:
    """The style in words, one rule a line (REPORT.txt, README.txt)."""
    fps = frames_per_second(frame_rate)
    rules = [
        (style.max_line_chars, f"at most {style.max_line_chars:g} characters on a line"),
        (style.max_lines, f"at most {style.max_lines:g} lines in a cue"),
        (
            style.max_chars_per_second,
            f"at most {style.max_chars_per_second:g} characters per second",
        ),
        (style.min_cue_seconds, f"each cue on screen at least {style.min_cue_seconds:.3f} s"),
        (style.max_cue_seconds, f"each cue on screen at most {style.max_cue_seconds:g} s"),
        (
            style.min_gap_frames,
            f"at least {style.min_gap_frames:g} frames between cues ({fps:g} frames per second)",
        ),
    ]
    return [words for limit, words in rules if limit]


def refusal(report: Report, style: Style) -> Refused | None:
    """Under HOUSE_STYLE=strict, a file with findings is refused with them as its problems."""
    if not style.strict or not report.total:
        return None
    problems = [(f.line, f"house style, {RULE_NAMES[f.rule]}: {f}") for f in report.listed]
    problems = problems[:MAX_PROBLEMS]
    first_line, first = problems[0]
    # `more` counts the problems past the first (service/captions/track.py's Refused).
    return Refused(first, first_line, more=report.total - 1, problems=problems)

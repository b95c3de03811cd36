"""One pass over a delivered caption file: its cues, every problem with its
line, what was changed on the way, and the WebVTT that goes to Iconik. Pure.

WebVTT is read as the W3C parser reads it (the specification's parsing
algorithm, as webvtt-parser and the browsers implement it), and only what
that parser reads as valid is written: what a player ignores (header lines,
unknown or invalid cue settings, a STYLE block after the cues) is left out
and noted, what it would show differently from the file, or not at all, is
refused at its line (an unreadable timing, a cue of no duration, an
identifier without a cue, a REGION block). Cue text is kept as written.

SubRip is read the same way, into the same Reading, by
service/captions/srt.py.

The pass is written for speed: a 20 MiB file is ~230,000 cues and a
million lines, and the goal is under two seconds (webvtt-py alone takes
nine). A line costs a few comparisons; a cue a regular expression and five
array appends; the WebVTT text is written a few thousand lines at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from service.captions import lines as caption_lines
from service.captions import text as caption_text
from service.captions.store import Cues

MAX_PROBLEMS = 50
CHUNK_LINES = 4096

# (start, end, line) -> the problems of one cue, in file order; a reason of
# None: the cue starts past the media's end (told later, with or without a
# hint of the start timecode)
Rules = Callable[[int, int, int], list[tuple[int, str | None]]]

_NOTES = {
    "header": "the lines after WEBVTT up to the first blank line were left out "
    "(players ignore them)",
    "blank": "a blank line was added before the cue (players read it as a new cue)",
    "setting": "cue settings players ignore were left out",
    "style": "a STYLE block after the first cue was left out (players ignore it)",
    "font": "<font> tags were left out (WebVTT has no font colours without a style sheet)",
    "override": "{\\...} style overrides other than {\\anN} were left out",
    "position": "{\\anN} positions became WebVTT cue settings (line:, align:)",
    "empty": "cues without text were left out (they show nothing)",
    "joined": "text after a blank line inside a cue was joined to the cue "
    "(a WebVTT cue cannot hold a blank line)",
}


class FromZero(Exception):
    """A file read as counted from the start timecode has a cue outside it."""


class Reading:
    """What one pass found; `read_vtt` / `read_srt` fill it."""

    def __init__(self, rules: Rules, timecode_ms: int = 0, limit_ms: int | None = None) -> None:
        """`timecode_ms`: the media's start timecode, which the file's times
        may count from; `limit_ms`: the latest start of a cue from zero."""
        self.rules = rules
        self.timecode = timecode_ms if limit_ms is not None else 0
        self.limit = limit_ms or 0
        self.offset = 0  # subtracted from every time: the timecode, once the file says so
        self.past_the_end = False  # a cue starts after the media's end, counted from zero
        self._hours: dict[str, str] | None = None
        self.cues = Cues()
        self.problems: list[tuple[int, str]] = []
        self.problem_count = 0
        self.late: list[tuple[int, int]] = []  # (line, start) of cues past the media's end
        self.late_count = 0
        self.notes: dict[str, list[Any]] = {}  # kind -> [first line, count, example]
        self.webvtt = ""
        self._chunks: list[str] = []
        self._lines: list[str] = []
        self._length = 0  # characters of "\n".join(every line so far)

    # -- what was found

    def problem(self, line: int, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((line, reason))

    def note(self, kind: str, line: int, example: str = "") -> None:
        found = self.notes.get(kind)
        if found is None:
            self.notes[kind] = [line, 1, example]
        else:
            found[1] += 1

    def notes_text(self) -> tuple[str, ...]:
        out = []
        for kind, (line, count, example) in sorted(self.notes.items(), key=lambda n: n[1][0]):
            what = _NOTES[kind]
            if example:
                what += f", e.g. {example!r}"
            also = f"; {count} times" if count > 1 else ""
            out.append(f"line {line}: {what}{also}")
        return tuple(out)

    # -- the WebVTT text

    def write(self, line: str) -> None:
        self._length += len(line) + 1
        self._lines.append(line)
        if len(self._lines) >= CHUNK_LINES:
            self._chunks.append("\n".join(self._lines))
            self._lines = []

    def cue(
        self, start: int, end: int, line: int, ident: str, settings: str, written: str = ""
    ) -> None:
        """A cue's timing (its text follows with `write`, then `cue_end`);
        `written`: the timing line as the file has it, when it is WebVTT's own form."""
        if self.timecode:
            self._from_timecode(start)
        offset = self.offset
        if offset:
            start, end = start - offset, end - offset
        for found_line, reason in self.rules(start, end, line):
            if reason is not None:
                self.problem(found_line, reason)
            else:
                self.late_count += 1
                if len(self.late) < MAX_PROBLEMS:
                    self.late.append((line, start))
        self.write("")
        if ident:
            self.write(ident)
        if written and not offset:
            self.write(written)
        elif written and len(written) == 29 and self._hours is not None:
            # whole hours from the timecode (10:00:00:00): the hours change, as written
            hours = self._hours
            self.write(
                hours.get(written[:2], "--")
                + written[2:17]
                + hours.get(written[17:19], "--")
                + written[19:]
            )
        else:
            timing = f"{caption_lines.timestamp(start)} --> {caption_lines.timestamp(end)}"
            self.write(f"{timing} {settings}" if settings else timing)
        cues = self.cues
        cues.start.append(start)
        cues.end.append(end)
        cues.line.append(line)
        cues.text_from.append(self._length)

    def _from_timecode(self, start: int) -> None:
        """Whether the file counts from the start timecode, as its first cue
        says; `FromZero` at the first cue that says otherwise."""
        timecode = self.timecode
        if not len(self.cues):
            self.offset = timecode if start >= timecode else 0
            whole, rest = divmod(self.offset, 3_600_000)
            if self.offset and not rest and whole < 100:  # "10" -> "00", as written
                self._hours = {f"{h:02d}": f"{h - whole:02d}" for h in range(whole, 100)}
        elif self.offset and not timecode <= start <= timecode + self.limit:
            raise FromZero
        if start > self.limit:
            self.past_the_end = True

    def cue_end(self) -> None:
        cues = self.cues
        cues.text_to.append(max(cues.text_from[-1], self._length - 1))

    def finish(self) -> None:
        self.write("")
        if self._lines:
            self._chunks.append("\n".join(self._lines))
        self._lines = []
        self.webvtt = "".join(_joined(self._chunks))
        self._chunks = []
        self.cues.webvtt = self.webvtt


def _joined(chunks: list[str]) -> Iterable[str]:
    for index, chunk in enumerate(chunks):
        if index:
            yield "\n"
        yield chunk


def unreadable(reading: Reading, number: int, line: str, separator: str) -> None:
    shown = line.strip()
    if len(shown) > 60:
        shown = shown[:57] + "..."
    reading.problem(
        number,
        f"cannot read the cue timing {shown!r}; write it as "
        f"00:00:01{separator}000 --> 00:00:02{separator}500",
    )


# -- WebVTT ------------------------------------------------------------------------

BLANK, HEADER, ID, TEXT, NOTE, STYLE, DROP, SKIP = range(8)


def _starts(line: str, word: str) -> bool:
    return line.startswith(word) and (len(line) == len(word) or line[len(word)] in " \t")


def read_vtt(reading: Reading, windows: Iterable[list[str]]) -> None:
    """The file's lines (the first one is its signature, checked already)."""
    write, vtt_timing = reading.write, caption_lines.vtt_timing
    plain = caption_lines.VTT_PLAIN.fullmatch
    settings_cache: dict[str, tuple[str, list[str]]] = {}
    state, number, ident, ident_line, seen_cue = HEADER, 0, "", 0, False

    def timing(line: str, number: int, ident: str) -> bool:
        """A cue begins at this timing line; False if it cannot be read."""
        found = vtt_timing(line)
        if found is None:
            unreadable(reading, number, line, ".")
            return False
        start, end, settings = found
        if settings:
            cached = settings_cache.get(settings)
            if cached is None:
                if len(settings_cache) >= 256:  # (a file of ever new settings: no cache)
                    settings_cache.clear()
                cached = settings_cache[settings] = caption_text.vtt_settings(settings)
            settings, ignored = cached
            if ignored:
                reading.note("setting", number, ignored[0])
        written = line if not settings and plain(line) else ""
        reading.cue(start, end, number, ident, settings, written)
        return True

    for window in windows:
        for line in window:
            number += 1
            if number == 1:
                write(line)  # the signature, checked by the caller
                continue
            if state == TEXT:
                if not line:
                    reading.cue_end()
                    state = BLANK
                elif "-->" in line:
                    reading.cue_end()
                    if timing(line, number, ""):
                        reading.note("blank", number)
                    else:
                        state = SKIP
                else:
                    write(line)
                continue
            if not line:
                if state == ID:
                    reading.problem(
                        ident_line,
                        f"{ident!r} stands alone: a cue identifier must be followed by "
                        "its timing line",
                    )
                state = BLANK
                continue
            if "-->" in line:
                if state in (NOTE, STYLE, DROP):
                    reading.problem(
                        number,
                        "a timing line inside a NOTE or STYLE block; put a blank line "
                        "before the cue",
                    )
                    state = SKIP
                    continue
                if state == HEADER:
                    reading.note("blank", number)
                seen_cue = True
                state = TEXT if timing(line, number, ident if state == ID else "") else SKIP
                continue
            if state == BLANK:
                if line[0] not in "NSR":
                    state, ident, ident_line = ID, line, number
                elif _starts(line, "NOTE"):
                    state = NOTE
                    write("")
                    write(line)
                elif _starts(line, "STYLE"):
                    if seen_cue:
                        reading.note("style", number)
                        state = DROP
                    else:
                        state = STYLE
                        write("")
                        write(line)
                elif _starts(line, "REGION"):
                    reading.problem(
                        number,
                        "REGION blocks are not taken (the W3C validator does not read "
                        "them); remove it and the cues' region: settings, and place cues "
                        "with line: and position: instead",
                    )
                    state = SKIP
                else:
                    state, ident, ident_line = ID, line, number
            elif state in (NOTE, STYLE):
                write(line)
            elif state == ID:
                reading.problem(
                    ident_line,
                    f"{ident!r} is not a cue: a cue identifier must be followed by its "
                    "timing line, and a comment must start with NOTE",
                )
                state = SKIP
            elif state == HEADER:
                reading.note("header", number, line[:40])
    if state == TEXT:
        reading.cue_end()
    elif state == ID:
        reading.problem(
            ident_line,
            f"{ident!r} stands alone: a cue identifier must be followed by its timing line",
        )

"""One pass over a delivered SubRip file, into a caption_reader.Reading. Pure.

SubRip has no specification: it is read as its tools write it (and as the
corpus' parsers read it). Cue numbers are optional; a cue starts at a timing
line (after its number, if it has one) and ends where the next one starts,
so text after a blank line is still its own (joined: a WebVTT cue cannot
hold a blank line; a note says so); a cue without text shows nothing and is
left out. Its text becomes WebVTT's in caption_text.SrtText.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.captions import lines as caption_lines
from service.captions import text as caption_text
from service.captions.reader import Reading, unreadable

# A SubRip cue is held until the next one starts: past this many lines it is
# not a caption but a file missing its blank lines (or built to exhaust us).
MAX_CUE_LINES = 1000


class _SrtCue:
    __slots__ = ("end", "line", "settings", "start", "text", "written")

    def __init__(self, start: int, end: int, line: int, settings: str, written: str) -> None:
        self.start, self.end, self.line, self.settings = start, end, line, settings
        self.written = written  # the timing line in WebVTT's form, if it is SubRip's own
        self.text: list[str] = []


def read_srt(reading: Reading, windows: Iterable[list[str]]) -> None:
    """srt: [number] timing text... blank; a cue ends where the next begins."""
    write, srt_timing, special = reading.write, caption_lines.srt_timing, caption_text.SPECIAL
    plain = caption_lines.SRT_PLAIN.fullmatch
    write("WEBVTT")
    cue: _SrtCue | None = None
    held = ""  # a number line that may be the next cue's
    after_blank = True
    skipping = False
    number = 0

    def flush() -> None:
        nonlocal cue
        if cue is None:
            return
        text, settings = cue.text, cue.settings
        if special.search(text[0] if len(text) == 1 else "\n".join(text)):
            converted = caption_text.SrtText()
            for line in text:
                converted.add(line)
            text = converted.finish()
            if converted.settings:
                reading.note("position", cue.line)
                settings = caption_text.vtt_settings(f"{settings} {converted.settings}")[0]
            for kind in converted.dropped:
                reading.note(kind, cue.line)
        if not text:
            reading.note("empty", cue.line)
        else:
            reading.cue(cue.start, cue.end, cue.line, "", settings, "" if settings else cue.written)
            for line in text:
                write(line)
            reading.cue_end()
        cue = None

    def begin(line: str, number: int) -> bool:
        nonlocal cue
        found = srt_timing(line)
        if found is None:
            return False
        flush()
        start, end, rest = found
        settings = written = ""
        if rest:
            settings, ignored = caption_text.vtt_settings(rest)
            if ignored:
                reading.note("setting", number, ignored[0])
        elif plain(line):
            written = line.replace(",", ".")
        cue = _SrtCue(start, end, number, settings, written)
        return True

    for window in windows:
        for line in window:
            number += 1
            if not line.strip():
                if held:  # a number alone: the text of the cue above
                    if cue is not None:
                        cue.text.append(held)
                    held = ""
                after_blank, skipping = True, False
                continue
            if held:
                if "-->" in line:
                    if not begin(line, number):
                        unreadable(reading, number, line, ",")
                        flush()
                        skipping = True
                    held, after_blank = "", False
                    continue
                if cue is not None:
                    cue.text.append(held)
                held = ""
            if skipping:
                continue
            if "-->" in line and (after_blank or cue is None or line.lstrip()[:1].isdigit()):
                if not begin(line, number):
                    unreadable(reading, number, line, ",")
                    flush()
                    skipping = True
                after_blank = False
                continue
            if line.strip().isdigit() and (after_blank or cue is not None):
                held = line
                after_blank = False
                continue
            if cue is None:
                reading.problem(
                    number,
                    "text outside a cue: a cue is a number, a timing line such as "
                    "00:00:01,000 --> 00:00:02,500, then its text",
                )
                skipping = True
                continue
            if after_blank and cue.text:
                reading.note("joined", number)
            cue.text.append(line)
            after_blank = False
            if len(cue.text) > MAX_CUE_LINES:
                reading.problem(
                    cue.line,
                    f"this cue has more than {MAX_CUE_LINES} lines of text: are the blank "
                    "lines between cues missing?",
                )
                cue = None
                skipping = True
    if held and cue is not None:
        cue.text.append(held)
    flush()

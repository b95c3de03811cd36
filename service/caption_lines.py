"""A delivered caption file as lines, and the times in one timing line. Pure.

The lines are decoded a window at a time, so a 20 MiB file is never one
string nor one list of every line; they are the lines webvtt-py splits the
whole decoded text into. A timing line (a line with `-->`) is read on its
own as webvtt-py reads it, so a cue the library skips or refuses can be
named by its line. service/caption_reader.py reads the file's blocks from
these lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from webvtt import srt, vtt
from webvtt.errors import MalformedCaptionError
from webvtt.models import _MAX_MILLISECONDS, Timestamp, _timing_in_milliseconds

# Bytes decoded at a time (cut after a line break, so no character is split).
WINDOW_BYTES = 1 << 20

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class NotUtf8(Exception):
    """Bytes that are not UTF-8, at `line` (as the whole-file decode names it)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


# -- lines -------------------------------------------------------------------


def iter_lines(data: bytes) -> Iterator[str]:
    """`_LINE_BREAK.split(data.decode("utf-8-sig"))`, decoded a window at a time.

    Raises NotUtf8 with the line the whole-file decode names
    (`data[:error].count(b"\n") + 1`).
    """
    start = len(_BOM) if data.startswith(_BOM) else 0
    size = len(data)
    if start == size:
        yield ""
        return
    while start < size:
        end = min(start + WINDOW_BYTES, size)
        if end < size:
            cut = max(data.rfind(b"\n", start, end), data.rfind(b"\r", start, end))
            if cut < 0:  # a line longer than a window: take it whole
                found = _LINE_BREAK_BYTES.search(data, end)
                cut = found.start() if found else size - 1
            end = cut + 1
            if data[cut : cut + 1] == b"\r" and data[end : end + 1] == b"\n":
                end += 1  # keep \r\n together
        try:
            text = data[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotUtf8(data[: start + exc.start].count(b"\n") + 1) from None
        lines = _LINE_BREAK.split(text)
        del text
        if end < size:
            lines.pop()  # the "" after the window's last break: the next window goes on
        yield from lines
        start = end


# -- timing lines ------------------------------------------------------------


def vtt_timing(line: str) -> tuple[int, int] | None:
    """The (start, end) webvtt-py reads from one WebVTT timing line, or None
    (what reading `WEBVTT\\n\\n{line}\\nx\\n` gives, without the document)."""
    match = vtt.WebVTTCueBlock.CUE_TIMINGS_PATTERN.match(line)
    if match is None:
        return None
    try:
        start = Timestamp.from_string(match.group(1))
        end = Timestamp.from_string(match.group(2))
    except MalformedCaptionError:
        return None
    return start.in_milliseconds(), end.in_milliseconds()


def srt_timing(line: str) -> tuple[int, int] | None:
    """The same for a SubRip timing line (`1\n{line}\nx\n`): the library's
    _caption_from_timings, without the Caption it makes of the times."""
    match = srt.SRTCueBlock.CUE_TIMINGS_PATTERN.match(line)
    if match is None:
        return None
    try:
        start = _timing_in_milliseconds(match.group(1))
        end = _timing_in_milliseconds(match.group(2))
    except ValueError:
        return None
    if start > _MAX_MILLISECONDS or end > _MAX_MILLISECONDS:
        return None
    return start, end

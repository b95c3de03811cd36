"""Where one pass over a caption file keeps what it read, in bounded memory:
the WebVTT text as strings of a few thousand lines, rows of integers in
arrays, and a track's cues as five numbers each, made into cues on access.
Pure. service/caption_reader.py fills them.

They are here, not as lists of objects, because an object costs tens of
bytes before its content (a row of four numbers: ~100 bytes as a tuple in a
deque, ~30 in arrays), and a 20 MiB file can hold hundreds of thousands of cues.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from webvtt.models import _strip_cue_text_tags

# Lines joined into one string at a time while the WebVTT text is written.
CHUNK_LINES = 4096


# -- the WebVTT text, written as it is read ----------------------------------


class Text:
    """Lines to be joined with "\\n", joined a few thousand at a time."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.lines: list[str] = []
        self.empty = True
        self.length = 0  # characters of "\n".join(every line so far)

    def add(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.length += len(line) + (0 if self.empty else 1)
            self.empty = False
            self.lines.append(line)
        if len(self.lines) >= CHUNK_LINES:
            self.chunks.append("\n".join(self.lines))
            self.lines = []

    def parts(self) -> list[str]:
        if self.lines:
            self.chunks.append("\n".join(self.lines))
            self.lines = []
        return self.chunks

    def move_to(self, other: Text) -> None:
        parts = self.parts()
        if not parts:
            return
        other.parts()
        for chunk in parts:
            other.length += len(chunk) + (0 if other.empty else 1)
            other.empty = False
            other.chunks.append(chunk)
        self.chunks = []


# -- the cues ---------------------------------------------------------------


class Cues(Sequence[Any]):
    """A track's cues as five numbers each; `make(start, end, text, line)` on access."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self.start = array("q")
        self.end = array("q")
        self.line = array("I")  # 4 bytes: a 20 MiB file has fewer lines, its
        self.text_from = array("I")  # WebVTT fewer characters (else OverflowError:
        self.text_to = array("I")  # too large)
        self.webvtt = ""
        self.base = 0  # where the cues' section starts in `webvtt`

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError("cue index out of range")
        at = self.base
        raw = self.webvtt[at + self.text_from[index] : at + self.text_to[index]]
        text = "\n".join(_strip_cue_text_tags(line) for line in raw.split("\n"))
        return self._make(self.start[index], self.end[index], text, self.line[index])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} cues>"


# -- rows waiting to be matched -----------------------------------------------


class Fifo:
    """Rows of integers in arrays, first in first out (a deque of tuples
    costs ~100 bytes a row; this ~30)."""

    def __init__(self, codes: str) -> None:
        self.columns = [array(code) for code in codes]
        self.head = 0

    def __len__(self) -> int:
        return len(self.columns[0]) - self.head

    def push(self, *row: int) -> None:
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)

    def first(self) -> tuple[int, ...]:
        return tuple(column[self.head] for column in self.columns)

    def pop(self) -> None:
        self.head += 1
        if self.head >= 4096 and self.head * 2 >= len(self.columns[0]):
            for column in self.columns:
                del column[: self.head]
            self.head = 0

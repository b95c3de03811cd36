"""A track's cues as five numbers each, made into cues on access. Pure.
service/captions/reader.py fills them.

They are kept in arrays, not as a list of objects, because an object costs
tens of bytes before its content, and a 20 MiB file can hold hundreds of
thousands of cues: a cue here is 28 bytes, its text a slice of the WebVTT
that goes to Iconik.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from service.captions.text import shown


class Cues(Sequence[Any]):
    """A track's cues; `make(start, end, text, line)` on access, text as shown."""

    def __init__(self, make: Any = tuple) -> None:
        self.make = make
        self.start = array("q")
        self.end = array("q")
        self.line = array("I")  # 4 bytes: a 20 MiB file has fewer lines, its
        self.text_from = array("Q")  # WebVTT fewer characters
        self.text_to = array("Q")
        self.webvtt = ""

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError("cue index out of range")
        text = shown(self.webvtt[self.text_from[index] : self.text_to[index]])
        return self.make(self.start[index], self.end[index], text, self.line[index])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    # Unhashable, as a list is (it compares by value); typeshed declares a method here.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} cues>"

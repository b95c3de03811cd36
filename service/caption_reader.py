"""One bounded pass over a delivered caption file: the cues webvtt-py reads
from it a block at a time, each matched with the timing line it came from,
and the WebVTT the library writes of them. Pure.

`captions.read` used to give webvtt-py the whole text and keep everything
it built: a list of every line, a Caption (with its Timestamps, settings and
list of lines) per cue, the list of output lines, and one small WebVTT
document per timing line to read that line on its own. That cost ~16x the
file in memory. Here the same library functions read one block at a time
from lines decoded a window at a time; what is kept is the WebVTT text
(joined every few thousand lines), the cues as five numbers each in arrays,
and for a refusal only its first problem and a count. The lines and timing
lines come from service/caption_lines.py, what is kept is held as in
service/caption_store.py; this module is the pass itself.

The result is the library's, block by block: the blocks come from its own
block generators (`vtt._iter_blocks_of_lines`, `srt._iter_cue_blocks`), each
block is read by its own `parse_item` / `SRTCueBlock` / `Caption`, and
written with its own validators and `format_lines`. What this module redoes
is only the order of `parse_items` and `to_str` (comments before an item,
regions and styles written before the cues) and SubRip's `parse_captions`,
which keeps a cue until the next one starts. tests/test_captions.py checks
it against whole-file webvtt-py on generated files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from webvtt import srt, vtt
from webvtt.errors import MalformedCaptionError
from webvtt.models import Caption, Region, Style, _caption_from_timings

from service import caption_lines
from service.caption_store import Cues, Fifo, Text

# A block (a cue, a comment, a style...) longer than this many lines is not
# a caption but a file built to exhaust the reader: webvtt-py holds a block
# as a list of its lines (~60 bytes a line whatever its length).
MAX_BLOCK_LINES = 10_000


class TooComplex(Exception):
    """A structure past what the reader holds in memory; at `line`."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


# The sections of the WebVTT text, in the order vtt.to_str writes them.
HEADER, HEADER_COMMENTS, REGIONS, STYLES, CUES, FOOTER = range(6)


class Reading:
    """One pass over a file: the lines given to the library, each timing line
    read on its own and matched in order with the library's cues, the cues'
    problems, and the WebVTT text."""

    def __init__(self, fmt: str, rules: Any, make_cue: Any) -> None:
        self.fmt = fmt
        self.rules = rules  # rules(start, end, line, previous) -> problems of a cue
        self.cues = Cues(make_cue)
        self.captions = 0  # the cues the library read
        self.unread: tuple[int, str] | None = None  # first unreadable timing line
        self.unread_count = 0
        self.found: tuple[int, str] | None = None  # first other problem
        self.found_count = 0
        self.mismatches = 0
        self.failed: Exception | None = None  # a cue the library refused
        self.write_error: ValueError | None = None
        self.webvtt = ""
        # timing lines waiting for the library's cue: line, start, end, next line blank
        self._timings = Fifo("QqqB")
        self._waits_next_line = False
        self._captions = Fifo("qqQQ")  # the library's cues: start, end, text from, to
        self._previous: tuple[int, int] | None = None  # start, line of the cue above
        self._ended = False
        self._sections = [Text() for _ in range(6)]
        self._errors: list[ValueError | None] = [None] * 6

    # -- problems

    def problem(self, line: int, reason: str) -> None:
        if self.found is None or (line, reason) < self.found:
            self.found = (line, reason)
        self.found_count += 1

    def _unreadable(self, line: int, text: str) -> None:
        separator = "." if self.fmt == "vtt" else ","
        reason = (
            f"cannot read the cue timing {text.strip()!r}; write it as "
            f"00:00:01{separator}000 --> 00:00:02{separator}500"
        )
        if self.unread is None or (line, reason) < self.unread:
            self.unread = (line, reason)
        self.unread_count += 1

    # -- lines

    def lines(self, data: bytes) -> Iterator[str]:
        """The lines as the library reads them (no "" after a final line
        break, a second byte-order mark dropped), each `-->` line's timing
        read on the way; TooComplex for a WebVTT block past MAX_BLOCK_LINES."""
        vtt_blocks = self.fmt == "vtt"
        timing = caption_lines.vtt_timing if vtt_blocks else caption_lines.srt_timing
        timings = self._timings
        blank = timings.columns[3]
        held: str | None = None
        block_lines = 0
        for number, line in enumerate(caption_lines.iter_lines(data), 1):
            if self._waits_next_line:
                blank[-1] = 0 if line.strip() else 1
                self._waits_next_line = False
            if "-->" in line and (number > 1 or not vtt_blocks):
                read = timing(line)
                if read is None:
                    self._unreadable(number, line)
                else:
                    timings.push(number, read[0], read[1], 1)
                    self._waits_next_line = True
            if vtt_blocks:  # (srt_blocks bounds SubRip's)
                # a bound on the block's length: a `-->` line may still be its second
                if not line:
                    block_lines = 0
                elif "-->" in line:
                    block_lines = 1
                else:
                    block_lines += 1
                if block_lines > MAX_BLOCK_LINES:
                    raise TooComplex(number - MAX_BLOCK_LINES)
            if held is not None:
                yield held
            held = line[1:] if number == 1 and line.startswith("\ufeff") else line
            if len(timings) > 1:
                self._match()
        self._waits_next_line = False
        if held:  # a last "" only ends the line before it
            yield held

    # -- the library's cues, matched in order with the timing lines

    def caption(self, caption: Caption) -> None:
        """A cue the library read, written in the cues' section."""
        self.captions += 1
        if self.failed is not None:
            return
        section = self._sections[CUES]
        if self.write_error is None:
            section.add(vtt.WebVTTCueBlock.format_lines(caption))
        text_to = section.length
        text_from = text_to - len(caption.raw_text) if caption.lines else text_to
        self._captions.push(
            caption.start_time.in_milliseconds(),
            caption.end_time.in_milliseconds(),
            max(text_from, 0),
            text_to,
        )
        self._match()

    def _match(self) -> None:
        timings, captions = self._timings, self._captions
        while len(timings):
            if self._waits_next_line and len(timings) == 1:
                return  # its next line is not read yet
            line, start, end, blank = timings.first()
            if self.failed is None:
                if len(captions):
                    c_start, c_end, text_from, text_to = captions.first()
                    if start == c_start and end == c_end:
                        timings.pop()
                        captions.pop()
                        self._cue(start, end, line, text_from, text_to)
                        continue
                elif not self._ended:
                    return  # its cue is still being read
                if not (self.fmt == "srt" and blank):
                    self.mismatches += 1
                    self.problem(line, "this cue cannot be read; check the lines around it")
            timings.pop()

    def _cue(self, start: int, end: int, line: int, text_from: int, text_to: int) -> None:
        cues = self.cues
        cues.start.append(start)
        cues.end.append(end)
        cues.line.append(line)
        cues.text_from.append(text_from)
        cues.text_to.append(text_to)
        for problem in self.rules(start, end, line, self._previous):
            self.problem(*problem)
        self._previous = (start, line)

    def end(self) -> None:
        self._ended = True
        self._match()
        if self.failed is not None:
            self.cues = Cues(self.cues._make)
            self.found, self.found_count = None, 0
            if self.unread is None:
                self.problem(1, f"a cue cannot be read ({self.failed})")
        elif not self.unread_count and not self.mismatches and len(self.cues) != self.captions:
            self.problem(1, "the file's cues cannot be told apart; check its blank lines")

    # -- the WebVTT text

    def write(self, section: int, lines: Sequence[str], error: ValueError | None = None) -> None:
        """Lines of a section, and the first thing that section could not write."""
        if error is not None:
            if self._errors[section] is None:
                self._errors[section] = error
            self.write_error = self.write_error or error
        if self.write_error is None and lines:
            self._sections[section].add(lines)

    def finish(self) -> None:
        """The WebVTT text, unless something cannot be written (`write_error`,
        the first in to_str's order) or there are problems (no text)."""
        self.write_error = next((e for e in self._errors if e is not None), None)
        if self.write_error is not None or self.found or self.unread:
            return
        parts: list[str] = []
        base = 0
        for index, section in enumerate(self._sections):
            if index == CUES:
                base = sum(len(part) + 1 for part in parts)
            parts.extend(section.parts())
            section.chunks = []
        self.webvtt = "\n".join(parts)
        parts.clear()
        self.cues.webvtt, self.cues.base = self.webvtt, base


def _validated(check: Any, item: Any) -> ValueError | None:
    try:
        check(item)
    except ValueError as exc:
        return exc
    return None


def read_vtt(reading: Reading, lines: Iterator[str]) -> None:
    """vtt.parse_items, then vtt.to_str, a block at a time."""
    blocks = vtt._iter_blocks_of_lines(lines)
    header_block = next(blocks)
    header_text, metadata = vtt._parse_header(header_block)
    reading.write(
        HEADER,
        [f"WEBVTT {header_text}" if header_text else "WEBVTT", *metadata],
        _validated(lambda _: vtt._validate_header(header_text, metadata), None),
    )
    comments = Text()  # the comment blocks since the last item, written
    comments_error: ValueError | None = None
    has_comments = False
    first_item = True
    seen_cue = False

    def attach(section: int, item_error: ValueError | None) -> None:
        """The comments above an item are its own; the first item's are the header's."""
        nonlocal comments, comments_error, has_comments, first_item
        if first_item:
            reading.write(HEADER_COMMENTS, [], comments_error)
            reading.write(section, [], item_error)
            target = HEADER_COMMENTS
        else:
            reading.write(section, [], item_error or comments_error)
            target = section
        if reading.write_error is None:
            comments.move_to(reading._sections[target])
        comments, comments_error, has_comments, first_item = Text(), None, False, False

    block: list[str] | None = header_block
    while block is not None:
        try:
            item = vtt.parse_item(block, False, seen_cue)
        except MalformedCaptionError as exc:
            reading.failed = reading.failed or exc
            item = None
        if not seen_cue:
            seen_cue = vtt._has_arrow(block)
        if isinstance(item, Caption):
            attach(CUES, _validated(vtt._validate_caption, item))
            reading.caption(item)
        elif isinstance(item, Region) and item:  # one without settings is false: no item
            attach(REGIONS, None)
            reading.write(REGIONS, ["", *vtt.WebVTTRegionBlock.format_lines(item)])
        elif isinstance(item, Style):
            attach(STYLES, _validated(vtt._validate_style, item))
            reading.write(STYLES, ["", *vtt.WebVTTStyleBlock.format_lines(item.lines)])
        elif vtt.WebVTTCommentBlock.is_valid(block):
            text = vtt.WebVTTCommentBlock.from_lines(block).text
            comments_error = comments_error or _validated(vtt._validate_comment, text)
            if reading.write_error is None and comments_error is None:
                comments.add(["", *vtt.WebVTTCommentBlock.format_lines(text)])
            has_comments = True
        block = next(blocks, None)
    # the comments after the last item end the file
    if has_comments:
        reading.write(FOOTER, [], comments_error)
        if reading.write_error is None:
            comments.move_to(reading._sections[FOOTER])
    else:
        reading.write(FOOTER, [""])


def read_srt(reading: Reading, lines: Iterator[str]) -> None:
    """srt.parse_captions (a cue is kept once the next one starts: text
    blocks after it are its own), then vtt.to_str."""
    reading.write(HEADER, ["WEBVTT"])

    def done(caption: Caption | None) -> None:
        if caption is not None and caption.lines:  # a cue without text is left out
            reading.write(CUES, [], _validated(vtt._validate_caption, caption))
            reading.caption(caption)

    caption: Caption | None = None
    for block in srt_blocks(lines):
        if srt._is_cue_start(block):
            done(caption)
            caption = None
            if srt.SRTCueBlock.is_valid(block):
                cue_block = srt.SRTCueBlock.from_lines(block)
                caption = _caption_from_timings(cue_block.start, cue_block.end, cue_block.payload)
        elif caption is not None:
            caption.lines.extend(block)
            if len(caption.lines) > MAX_BLOCK_LINES:
                raise TooComplex(0)
    done(caption)
    reading.write(FOOTER, [""])


def srt_blocks(lines: Iterator[str]) -> Iterator[list[str]]:
    """What srt._iter_cue_blocks yields, a block at a time: the library's
    gathers every line up to the next blank one (a file without blank lines
    whole) before it splits them where a cue starts; this splits on the way,
    and a block past MAX_BLOCK_LINES is TooComplex."""
    index_block: list[str] | None = None
    for block in _srt_split_blocks(lines):
        if index_block is not None:
            if "-->" in block[0]:
                block = index_block + block
            else:
                yield index_block
            index_block = None
        if len(block) == 1 and srt._is_index(block[0]):
            index_block = block
        else:
            yield block
    if index_block is not None:
        yield index_block


def _srt_split_blocks(lines: Iterator[str]) -> Iterator[list[str]]:
    """srt._iter_split_blocks: blocks of non-blank lines, also split before a
    cue index (not a block's first line) followed by a timing line."""
    block: list[str] = []
    for line in lines:
        if not line.strip():
            if block:
                yield block
                block = []
            continue
        if len(block) >= 2 and "-->" in line and srt._is_index(block[-1]):
            yield block[:-1]
            block = [block[-1]]
        block.append(line)
        if len(block) > MAX_BLOCK_LINES:
            raise TooComplex(0)
    if block:
        yield block

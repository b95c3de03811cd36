"""Delivered caption files: named, checked with a line number, converted. No network."""

import pytest
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from service.captions import lines as caption_lines
from service.captions import reader as caption_reader
from service.captions import srt as caption_srt
from service.captions import track as captions
from service.captions.track import Refused

VTT = (
    "WEBVTT\n"
    "\n"
    "NOTE a comment the captioner left\n"
    "\n"
    "intro\n"
    "00:00:00.500 --> 00:00:01.500 align:start\n"
    "<v Anna>Welcome aboard.</v>\n"
    "\n"
    "00:00:01.000 --> 00:00:02.000\n"  # overlaps the cue above: legal
    "[waves]\n"
)
SRT = (
    "1\r\n"
    "00:00:00,250 --> 00:00:01,000\r\n"
    "Bonjour,\r\n"
    "à tous.\r\n"
    "\r\n"
    "2\r\n"
    "00:00:01,200 --> 00:00:01,999\r\n"
    "<i>Fin</i>\r\n"
)


def refusal(name, text, duration=10.0):
    with pytest.raises(Refused) as caught:
        captions.read(name, text.encode() if isinstance(text, str) else text, duration)
    return caught.value


@pytest.mark.parametrize(
    ("name", "language", "cc", "fmt"),
    [
        ("en.vtt", "en", False, "vtt"),
        ("fr.cc.srt", "fr", True, "srt"),
        ("pt-BR.vtt", "pt-BR", False, "vtt"),
        ("EN.CC.VTT", "en", True, "vtt"),
        ("es_419.srt", "es_419", False, "srt"),
    ],
)
def test_names_say_language_kind_and_format(name, language, cc, fmt):
    assert captions.parse_name(name) == captions.TrackName(language, cc, fmt)


@pytest.mark.parametrize("name", ["en.txt", "English.vtt", "en.cc", "final en.vtt", "en.sdh.vtt"])
def test_other_names_are_refused_with_the_naming_rule(name):
    with pytest.raises(Refused, match=r"<language>\.vtt"):
        captions.parse_name(name)


def test_webvtt_keeps_its_cues_overlaps_and_markup():
    track = captions.read("en.vtt", VTT.encode(), 2.0)
    assert [(c.start_ms, c.end_ms, c.line) for c in track.cues] == [(500, 1500, 6), (1000, 2000, 9)]
    sent = webvtt.from_string(track.webvtt, strict=True)
    assert [(c.start, c.end, c.raw_text) for c in sent.captions] == [
        ("00:00:00.500", "00:00:01.500", "<v Anna>Welcome aboard.</v>"),
        ("00:00:01.000", "00:00:02.000", "[waves]"),
    ]
    assert sent.captions[0].identifier == "intro"


def test_srt_becomes_webvtt_with_the_same_cues_to_the_millisecond():
    track = captions.read("fr.cc.srt", SRT.encode(), 2.0)
    assert track.name == captions.TrackName("fr", True, "srt")
    sent = webvtt.from_string(track.webvtt, strict=True)
    assert track.webvtt.startswith("WEBVTT")
    assert [
        (c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), c.raw_text)
        for c in sent.captions
    ] == [(250, 1000, "Bonjour,\nà tous."), (1200, 1999, "<i>Fin</i>")]


def test_a_byte_order_mark_is_fine():
    assert len(captions.read("en.vtt", b"\xef\xbb\xbf" + VTT.encode(), 2.0).cues) == 2


def test_an_unreadable_timing_is_refused_at_its_line():
    text = VTT.replace("00:00:01.000 --> 00:00:02.000", "00:00:01.000 --> 00:00:0x.000")
    problem = refusal("en.vtt", text)
    assert problem.line == 9 and "cannot read the cue timing" in problem.reason
    assert "00:00:01.000 --> 00:00:02.500" in problem.reason  # how to write it


def test_an_srt_cue_the_library_would_skip_is_refused_not_dropped():
    text = SRT.replace("00:00:01,200 --> 00:00:01,999", "00:00:01,200 -> 00:00:01,999 -->")
    problem = refusal("fr.srt", text)
    assert problem.line == 7


def test_webvtt_commas_are_refused_with_the_right_separator():
    problem = refusal("en.vtt", "WEBVTT\n\n00:00:01,000 --> 00:00:02,000\nHi\n")
    assert problem.line == 3 and "00:00:01.000" in problem.reason


def test_a_cue_ending_before_it_starts():
    problem = refusal("en.vtt", "WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nBack\n")
    assert problem.line == 3
    assert problem.reason == "the cue ends (00:00:01.000) before it starts (00:00:02.000)"


def test_start_times_out_of_order_name_both_cues():
    text = "WEBVTT\n\n00:00:05.000 --> 00:00:06.000\nA\n\n00:00:01.000 --> 00:00:02.000\nB\n"
    problem = refusal("en.vtt", text)
    assert problem.line == 6 and "line 3" in problem.reason and "order" in problem.reason


def test_a_cue_after_the_end_of_the_media_but_not_within_the_tolerance():
    late = "WEBVTT\n\n00:00:02.900 --> 00:00:03.500\nlate\n"
    assert captions.read("en.vtt", late.encode(), 2.0).cues  # within the tolerance
    problem = refusal("en.vtt", late.replace("02.900", "03.100"), duration=2.0)
    assert problem.line == 3 and "after the end of the video (00:00:02.000)" in problem.reason
    assert captions.read("en.vtt", late.encode(), None).cues  # duration unknown: no check


def test_every_problem_is_counted_the_first_is_told():
    text = "WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nA\n\n00:00:00.000 --> 00:00:0x.000\nB\n"
    problem = refusal("en.vtt", text)
    assert problem.line == 3 and problem.more == 1 and str(problem).endswith("(and 1 more problem)")


@pytest.mark.parametrize(
    ("name", "content", "line", "words"),
    [
        ("en.vtt", "Hello\n\n00:00:01.000 --> 00:00:02.000\nx\n", 1, "must start with the line"),
        ("en.srt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nx\n", 1, "not a SubRip file"),
        ("en.vtt", "WEBVTT\n\nNOTE nothing yet\n", 1, "no cues"),
        ("en.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\xff\xfe\n", 4, "UTF-8"),
    ],
)
def test_files_that_are_not_caption_files(name, content, line, words):
    problem = refusal(name, content)
    assert problem.line == line and words in problem.reason


def test_an_empty_srt_cue_shows_nothing_and_is_left_out():
    text = "1\n00:00:00,000 --> 00:00:01,000\n\n2\n00:00:01,000 --> 00:00:02,000\nB\n"
    track = captions.read("en.srt", text.encode(), 5.0)
    assert [(c.start_ms, c.text) for c in track.cues] == [(1000, "B")]


def test_webvtt_to_srt_keeps_cues_and_basic_markup():
    srt = captions.webvtt_to_srt(VTT)
    assert srt.startswith("1\n00:00:00,500 --> 00:00:01,500\nWelcome aboard.\n")
    back = webvtt.from_buffer(__import__("io").StringIO(srt), format="srt")
    assert [(c.start, c.end) for c in back.captions] == [
        ("00:00:00.500", "00:00:01.500"),
        ("00:00:01.000", "00:00:02.000"),
    ]
    with pytest.raises(Refused):
        captions.webvtt_to_srt("not webvtt")


# -- the bounded reader agrees with whole-file webvtt-py -----------------------
# tests/support/captions_before.py is the check as it was (the whole file given to
# webvtt-py); every file below must be accepted, refused and written the same.

_LINES = [
    "",
    " ",
    "\t",
    "WEBVTT",
    "WEBVTT - a title",
    "WEBVTT -->",
    "X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0",
    "1",
    "2",
    " 12 ",
    "intro",
    "NOTE",
    "NOTE a comment",
    "NOTE 00:00:01.000 --> 00:00:02.000",
    "STYLE",
    "::cue(.loud) { color: red }",
    "REGION",
    "id:fred width:40% lines:3",
    "00:00:01.000 --> 00:00:02.000",
    "00:00:01.000 --> 00:00:02.000 align:start  line:0",
    "00:00:03.500 --> 00:00:03.000",
    "0:0:1.5-->0:0:2",
    "00:01.000 --> 00:02.000",
    "00:00:61.000 --> 00:00:62.000",
    "00:00:01,000 --> 00:00:02,000",
    "00:00:02,500 --> 00:00:04,000",
    "0:0:1,5 --> 0:0:2,5000",
    "99999999999999999:00:00,000 --> 00:00:01,000",
    "00:00:09,000 --> 00:00:12,000",
    "00:00:01.000 --> 00:00:0x.000",
    "-->",
    "a --> b",
    "<v Anna>Welcome aboard.</v>",
    "<i>Fin</i> <b>bold",
    "à tous ♪ 🎵",
    "plain text",
    "\ufeffBOM",
]

# Lines a file can be built of without a refusal at every turn.
_STRUCTURE = [
    "",
    " ",
    "1",
    "intro",
    "NOTE",
    "NOTE a comment",
    "STYLE",
    "::cue(.loud) { color: red }",
    "REGION",
    "id:fred width:40%",
    "00:00:01.000 --> 00:00:02.000",
    "00:00:01.000 --> 00:00:02.000 align:start  line:0",
    "00:00:01,000 --> 00:00:02,000",
    "<v Anna>Hi</v>",
    "à ♪",
]


def _outcome(module, name, data, duration):
    try:
        track = module.read(name, data, duration)
    except module.Refused as refused:
        return ("refused", refused.reason, refused.line, refused.more)
    cues = [(c.start_ms, c.end_ms, c.text, c.line) for c in track.cues]
    return ("track", track.name.format, cues, track.webvtt)


def _same_as_before(name, data, duration=10.0):
    from tests.support import captions_before

    assert _outcome(captions, name, data, duration) == _outcome(
        captions_before, name, data, duration
    )


def _same_cues_as_before(name, data, duration=10.0):
    """Delivered by both with the same cues, or refused by both."""
    from tests.support import captions_before

    mine = _outcome(captions, name, data, duration)
    before = _outcome(captions_before, name, data, duration)
    assert mine[0] == before[0]
    if mine[0] == "track":
        assert mine[:3] == before[:3]


def _check_outcome(name, data, duration=10.0):
    """What any file gives: a refusal listing its problems in line order, or
    a track whose WebVTT reads back (as a delivered en.vtt) as the same cues
    and the same text, unchanged."""
    try:
        track = captions.read(name, data, duration)
    except Refused as refused:
        assert refused.problems and len(refused.problems) <= captions.MAX_PROBLEMS
        assert refused.problems[0] == (refused.line, refused.reason)
        lines = [line or 0 for line, _ in refused.problems]
        assert lines == sorted(lines)
        assert refused.more >= len(refused.problems) - 1
        return None
    again = captions.read("en.vtt", track.webvtt.encode(), None)
    assert again.webvtt == track.webvtt
    assert [(c.start_ms, c.end_ms, c.text) for c in again.cues] == [
        (c.start_ms, c.end_ms, c.text) for c in track.cues
    ]
    assert all(c.end_ms > c.start_ms for c in track.cues)
    return track


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(["vtt", "srt"]),
    lines=st.lists(
        st.sampled_from(_STRUCTURE) | st.sampled_from(_LINES) | st.text(max_size=8), max_size=30
    ),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    start=st.sampled_from(["", "WEBVTT\n\n", "1\n00:00:00,000 --> 00:00:01,000\n"]),
    end=st.sampled_from(["", "\n", "\n\n"]),
    bom=st.booleans(),
    duration=st.sampled_from([None, 3.0, 10.0]),
)
def test_any_file_is_refused_line_by_line_or_delivered_as_it_reads_back(
    fmt, lines, newline, start, end, bom, duration
):
    text = start + newline.join(lines) + end
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")
    track = _check_outcome(f"en.{fmt}", data, duration)
    if track is not None and fmt == "vtt":
        # a WebVTT file whole-file webvtt-py also took: the same cues, where it read them
        from tests.support import captions_before

        try:
            before = captions_before.read(f"en.{fmt}", data, duration)
        except captions_before.Refused:
            return
        assert [(c.start_ms, c.end_ms, c.line) for c in track.cues] == [
            (c.start_ms, c.end_ms, c.line) for c in before.cues
        ]


def _cue_text():
    return st.lists(
        st.sampled_from(["Hello", "<i>there</i>", "♪ la la", "1999", " ", "a<b>c", "é"]),
        min_size=1,
        max_size=3,
    ).map(" ".join)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    fmt=st.sampled_from(["vtt", "srt"]),
    cues=st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.integers(1, 3000),  # (a cue of no duration is refused: never shown)
            st.lists(_cue_text(), min_size=0, max_size=3),
            st.booleans(),
        ),
        max_size=20,
    ),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_valid_files_are_written_as_webvtt_py_wrote_them(fmt, cues, newline):
    """Files a captioning tool writes: numbered cues in order, text of a few lines."""
    separator = "." if fmt == "vtt" else ","
    blocks, at = (["WEBVTT", ""] if fmt == "vtt" else []), 0
    for number, (gap, length, text, named) in enumerate(cues, 1):
        at += gap
        start, stop = captions.timestamp(at), captions.timestamp(at + length)
        head = [str(number)] if fmt == "srt" or named else []
        timing = f"{start} --> {stop}".replace(".", separator)
        blocks += [*head, timing, *text, ""]
    data = newline.join(blocks).encode()
    if fmt == "vtt":
        _same_as_before(f"en.{fmt}", data, 10_000.0)
    elif all(text for _, _, text, _ in cues):  # (no text: see the test below)
        # the same cues; the WebVTT differs where SubRip text needed escaping
        _same_cues_as_before("en.srt", data, 10_000.0)
    if fmt == "vtt" and cues:  # (a SubRip cue of blank text is left out)
        assert len(captions.read(f"en.{fmt}", data, 10_000.0).cues) == len(cues)


def test_a_subrip_cue_of_no_text_is_left_out_and_the_next_one_read():
    """webvtt-py lost its place after a SubRip cue with no text and refused the
    next cue; a cue of no text shows nothing, so it is left out."""
    data = b"1\n00:00:00,000 --> 00:00:00,001\n\n2\n00:00:00,000 --> 00:00:00,001\nHello\n"
    track = captions.read("en.srt", data, 10_000.0)
    assert [(c.start_ms, c.end_ms, c.text, c.line) for c in track.cues] == [(0, 1, "Hello", 5)]


@pytest.mark.parametrize("window", [1, 7, 64])
@pytest.mark.parametrize("name", ["en.vtt", "fr.srt"])
def test_small_windows_read_the_same_lines(monkeypatch, window, name):
    text = VTT if name.endswith("vtt") else SRT
    files = [text.encode(), (text + "\r\n\r\nNOTE tail\r\n").encode()]
    whole = [_outcome(captions, name, data, 2.0) for data in files]
    monkeypatch.setattr(caption_lines, "WINDOW_BYTES", window)
    monkeypatch.setattr(caption_reader, "CHUNK_LINES", 3)
    assert [_outcome(captions, name, data, 2.0) for data in files] == whole


@pytest.mark.parametrize("error", [MemoryError, RecursionError])
def test_running_out_of_memory_or_stack_is_a_refusal_not_a_crash(monkeypatch, error):
    def exhausted(*args):
        raise error()

    monkeypatch.setattr(caption_lines, "vtt_timing", exhausted)
    problem = refusal("en.vtt", VTT)
    assert problem.reason == captions.TOO_COMPLEX and problem.line is None
    assert "too large or too complex" in str(problem)


def test_a_subrip_cue_of_endless_lines_is_refused_at_its_start():
    lines = "\n".join("x" for _ in range(caption_srt.MAX_CUE_LINES + 1))
    problem = refusal("en.srt", f"1\n00:00:01,000 --> 00:00:02,000\n{lines}\n")
    assert problem.line == 2 and "more than 1000 lines" in problem.reason
    # text blocks a SubRip cue gathers after it count as its lines
    srt = "1\n00:00:01,000 --> 00:00:02,000\n" + "\n\nx" * (caption_srt.MAX_CUE_LINES + 1)
    assert refusal("en.srt", srt).line == 2
    # a WebVTT cue is written as it is read: long, but not held
    track = captions.read(
        "en.vtt", f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{lines}\n".encode(), 9
    )
    assert track.cues[0].text == lines
    # not UTF-8 is still said, at its line
    problem = refusal(
        "en.vtt", f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{lines}\n\xff".encode("latin-1")
    )
    assert "UTF-8" in problem.reason and problem.line == caption_srt.MAX_CUE_LINES + 5


def test_deep_markup_and_long_lines_are_read_and_kept():
    deep = "<i>" * 50_000 + "x" + "</i>" * 50_000
    text = f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{deep}\n<b\n"
    track = captions.read("en.vtt", text.encode(), 10.0)
    assert track.cues[0].text == "x\n<b" and deep in track.webvtt
    _same_as_before("en.vtt", text.encode())
    many = "NOTE\n\n" * 20_000 + "00:00:01.000 --> 00:00:02.000\nx\n"
    _same_cues_as_before("en.vtt", ("WEBVTT\n\n" + many).encode())


def test_many_problems_are_counted_not_kept():
    bad = "WEBVTT\n\n" + "00:00:0x.000 --> 00:00:01.000\nx\n\n" * 5000
    problem = refusal("en.vtt", bad)
    assert problem.line == 3 and problem.more == 4999
    assert len(problem.problems) == captions.MAX_PROBLEMS
    assert [line for line, _ in problem.problems] == list(range(3, 3 + 3 * 50, 3))


def test_the_cues_are_a_sequence_made_on_access():
    track = captions.read("en.vtt", VTT.encode(), 2.0)
    assert len(track.cues) == 2 and track.cues[-1].line == 9
    assert track.cues[0] == captions.Cue(500, 1500, "Welcome aboard.", 6)
    assert track.cues[:1] == [track.cues[0]] and list(track.cues) == track.cues
    with pytest.raises(IndexError):
        track.cues[2]


_TIMING_PARTS = ["0", "00", "1", "59", "60", "999", "1234", "9999999999", "99999999999999999"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*_TIMING_PARTS, ":", ",", ".", " ", "-->", "x", "\t", "\v"]), max_size=14
    ).map("".join)
)
def test_a_webvtt_timing_line_is_read_with_the_times_webvtt_py_reads_or_not_at_all(line):
    """Stricter than the library (it reads 00:01.5, \v as a space), never other times.
    (tests/system/captions/test_captions_corpus.py holds timing lines against the W3C parser.)"""
    from tests.support import captions_before

    mine = caption_lines.vtt_timing(line)
    if mine is not None:
        assert mine[:2] == captions_before._read_timing(line, "vtt")


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_cues_without_blank_lines_between_them_are_each_read(fmt):
    """A cue starts at its timing line (SubRip: its number and timing line)
    even without a blank line above; WebVTT's gets the blank line it lacks."""
    separator = "." if fmt == "vtt" else ","
    cues = [
        f"{n}\n00:00:{n:02d}{separator}000 --> 00:00:{n:02d}{separator}500\nline {n}"
        for n in range(1, 30)
    ]
    text = ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues) + "\n"
    track = captions.read(f"en.{fmt}", text.encode(), 60.0)
    if fmt == "srt":
        assert [c.text for c in track.cues] == [f"line {n}" for n in range(1, 30)]
    else:  # as the W3C parser and browsers read it: "2" is the text of cue 1
        assert [c.text for c in track.cues] == [f"line {n}\n{n + 1}" for n in range(1, 29)] + [
            "line 29"
        ]
        assert any("blank line was added" in note for note in track.notes)

"""Delivered caption files: named, checked with a line number, converted. No network."""

import pytest
import webvtt

from service import captions
from service.captions import Refused

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

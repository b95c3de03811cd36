"""A delivered file reaches Iconik as the captioner wrote it, or is refused
with every problem at its line. One test per defect of issue 17 (each fails
on the code before it: webvtt-py reading the whole file); tests/support/caption_samples.py
holds the files, tests/system/captions/test_captions_corpus.py checks what is delivered of
them with the W3C validator's parser."""

from __future__ import annotations

import pytest

from service.captions import track as captions
from service.captions.timecode import start_offset
from service.captions.track import Media, Refused
from tests.support.caption_samples import DELIVERED, REFUSED


def read(name: str, text: str, media: Media | float | None = 100.0) -> captions.Track:
    return captions.read(name, text.encode(), media)


def refusal(name: str, text: str, media: Media | float | None = 100.0) -> Refused:
    with pytest.raises(Refused) as caught:
        read(name, text, media)
    return caught.value


def times(track: captions.Track) -> list[tuple[int, int]]:
    return [(c.start_ms, c.end_ms) for c in track.cues]


# 1. silent retiming


def test_subrip_fractions_of_one_or_two_digits_are_tenths_and_hundredths():
    track = read(*DELIVERED["subrip fractions"])
    assert times(track) == [(1500, 2250), (3125, 4000)]
    assert "00:00:01.500 --> 00:00:02.250\nTenths and hundredths" in track.webvtt


def test_a_webvtt_fraction_of_fewer_than_three_digits_is_refused_not_guessed():
    problem = refusal(*REFUSED["webvtt fraction of two digits"][:2])
    assert problem.line == 3 and "00:00:01.000 --> 00:00:02.500" in problem.reason


# 2. words lost


def test_subrip_literal_characters_are_escaped_for_webvtt_and_back():
    track = read(*DELIVERED["subrip literal characters"])
    assert "\n2&lt;3,5&gt;1\nx &lt; y &amp;&amp; y &gt; z --&gt; done\n" in track.webvtt
    assert track.cues[0].text == "2<3,5>1\nx < y && y > z --> done"
    # a reference is one: shown as what it means; &nosuch; is not one: shown as written
    assert track.cues[1].text == "Fish & chips, café, ♪ &nosuch;"
    assert "Fish &amp; chips, café, ♪ &amp;nosuch;" in track.webvtt
    # the .srt the bundle exports of Iconik's WebVTT says the same words
    srt = captions.webvtt_to_srt(track.webvtt)
    assert "2<3,5>1\nx < y && y > z --> done\n" in srt
    assert "Fish & chips, café, ♪ &nosuch;" in srt
    assert times(read("en.srt", srt)) == times(track)


def test_iconik_webvtt_exported_as_subrip_is_unescaped_with_basic_markup_only():
    vtt = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000 line:0\n"
        "<v Anna>Tom &amp; Jerry &lt;3</v> <i.loud>yes</i> <c.red>no</c>&nbsp;&gt;\n"
    )
    assert captions.webvtt_to_srt(vtt) == (
        "1\n00:00:01,000 --> 00:00:02,000\nTom & Jerry <3 <i>yes</i> no\xa0>\n"
    )


# 3. tool markup shown as text


def test_an_positions_become_cue_settings_and_markup_maps_or_goes():
    track = read(*DELIVERED["subrip markup"])
    assert "00:00:01.000 --> 00:00:02.000 line:0\nTop of the screen\n" in track.webvtt
    assert (
        "00:00:03.000 --> 00:00:04.000 align:left\n<b>Red</b> <i>left open\non two lines</i>\n"
    ) in track.webvtt
    # </b> inside <b><i>: <i> closed and opened again; an unknown tag is text
    assert "<b><i>crossed</i></b><i> over</i> &lt;laughs&gt;" in track.webvtt
    assert [c.text for c in track.cues] == [
        "Top of the screen",
        "Red left open\non two lines",
        "crossed over <laughs>",
    ]
    assert "{" not in track.webvtt and "font" not in track.webvtt
    said = " ".join(track.notes)
    assert "<font> tags were left out" in said and "{\\anN} positions became" in said
    assert "overrides other than {\\anN} were left out" in said


@pytest.mark.parametrize(
    ("position", "settings"),
    [("1", " align:left"), ("2", ""), ("5", " line:50%,center"), ("9", " line:0 align:right")],
)
def test_each_an_position(position, settings):
    track = read("en.srt", f"1\n00:00:01,000 --> 00:00:02,000\n{{\\an{position}}}x\n")
    assert f"00:00:01.000 --> 00:00:02.000{settings}\nx\n" in track.webvtt


# 4. invalid WebVTT sent


def test_a_zero_length_cue_is_refused_at_its_line():
    problem = refusal(*REFUSED["zero-length cue"][:2])
    assert problem.line == 2 and "never be shown" in problem.reason


def test_a_timing_line_with_vertical_tabs_is_refused_not_read_as_settings():
    name, text, line = REFUSED["vertical tabs in a timing line"]
    problem = refusal(name, text)
    assert problem.line == line and "cannot read the cue timing" in problem.reason
    # without it, the file is read with the cue browsers show
    track = read(name, text.split("\n\nvertical tab")[0] + "\n")
    assert times(track) == [(0, 1000)]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_browsers_would_not_show_is_refused_at_its_line(case):
    name, text, line = REFUSED[case]
    assert refusal(name, text).line == line


def test_settings_players_ignore_are_left_out_and_said():
    track = read(*DELIVERED["webvtt settings players ignore"])
    assert track.webvtt.startswith(
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000 line:0 vertical:rl\n"
    )
    assert "\n\n00:00:02.000 --> 00:00:03.000 line:20%\nno blank line above\n" in track.webvtt
    assert "Kind:" not in track.webvtt and "STYLE" not in track.webvtt
    said = "\n".join(track.notes)
    for words in ("lines after WEBVTT", "align:middle", "blank line was added", "STYLE block"):
        assert words in said


def test_subrip_without_cue_numbers_is_read():
    track = read(*DELIVERED["subrip without numbers"])
    assert [c.text for c in track.cues] == ["No number", "None here"]


# 5. broadcast timecodes

HOUR_AND_A_HALF = 5400.0
FROM_TEN = "1\n10:00:05,000 --> 10:00:07,500\nFirst\n\n2\n11:29:58,000 --> 11:29:59,000\nLast\n"


def test_a_file_timed_from_the_start_timecode_is_shifted_and_said():
    media = Media(HOUR_AND_A_HALF, "10:00:00:00", "25")
    track = read("en.srt", FROM_TEN, media)
    assert track.offset_ms == 36_000_000
    assert times(track) == [(5000, 7500), (5_398_000, 5_399_000)]
    assert track.notes[0] == "times counted from the start timecode 10:00:00:00"
    assert "\n00:00:05.000 --> 00:00:07.500\nFirst\n" in track.webvtt
    assert "10:00" not in track.webvtt
    # the same file timed from zero goes as it is
    zero = read("en.srt", FROM_TEN.replace("10:00:0", "00:00:0").replace("11:29", "01:29"), media)
    assert zero.offset_ms == 0 and zero.notes == ()


def test_a_file_that_is_neither_is_refused_with_a_hint_of_the_timecode():
    mixed = "1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n10:00:05,000 --> 10:00:06,000\nB\n"
    problem = refusal("en.srt", mixed, Media(HOUR_AND_A_HALF, "10:00:00:00", "25"))
    assert problem.line == 6
    assert "after the end of the video (01:30:00.000)" in problem.reason
    assert "start timecode is 10:00:00:00" in problem.reason
    assert "between 10:00:00.000 and 11:30:00.000" in problem.reason
    # no start timecode: no hint
    plain = refusal("en.srt", mixed, Media(HOUR_AND_A_HALF, None, "25"))
    assert "timecode" not in plain.reason


@pytest.mark.parametrize(
    ("timecode", "rate", "ms"),
    [
        ("10:00:00:00", "25", 36_000_000),
        ("01:00:00;00", "29.97", 3_600_000),  # drop frame
        ("00:59:59;15", "30000/1001", 3_599_500),
        ("10:00:00:12", "24000/1001", 36_000_500),
        ("00:00:00:00", "25", None),  # from zero: nothing to count from
        ("10:00:00:30", "30", None),  # no such frame
        ("10:00:00:12", None, None),  # frames of an unknown rate
        ("10:00:00:00", None, 36_000_000),
        ("ten o'clock", "25", None),
    ],
)
def test_start_timecodes(timecode, rate, ms):
    found = start_offset(timecode, rate)
    assert (found[0] if found else None) == ms


def test_a_drop_frame_start_timecode_shifts_a_file():
    text = "WEBVTT\n\n01:00:10.000 --> 01:00:11.000\nx\n"
    track = read("en.vtt", text, Media(60.0, "01:00:00;00", "29.97"))
    assert times(track) == [(10_000, 11_000)]
    assert "\n00:00:10.000 --> 00:00:11.000\nx\n" in track.webvtt
    track = read("en.vtt", text, Media(60.0, "00:59:59;15", "30000/1001"))  # not whole hours
    assert times(track) == [(10_500, 11_500)]
    assert "\n00:00:10.500 --> 00:00:11.500\nx\n" in track.webvtt


def test_the_manifest_asset_gives_the_media():
    asset = {"duration_seconds": 5400, "start_timecode": "10:00:00:00", "frame_rate": "25"}
    assert Media.of(asset) == Media(5400, "10:00:00:00", "25")
    assert Media.of({"duration_seconds": "long", "start_timecode": ["x"]}) == Media()
    assert Media.of(None) == Media()


# 6. every problem at once


def test_every_problem_is_listed_with_its_line():
    text = (
        "WEBVTT\n\n"
        "00:00:02.000 --> 00:00:01.000\nends before it starts\n\n"
        "00:00:03.000 --> 00:00:03.000\nno duration\n\n"
        "00:00:0x.000 --> 00:00:04.000\nunreadable\n\n"
        "00:00:01.000 --> 00:00:02.000\nout of order\n\n"
        "00:00:30.000 --> 00:00:31.000\nafter the end\n"
    )
    problem = refusal("en.vtt", text, 10.0)
    assert [line for line, _ in problem.problems] == [3, 6, 9, 12, 15]
    assert problem.more == 4 and (problem.line, problem.reason) == problem.problems[0]
    reasons = [reason for _, reason in problem.problems]
    assert "before it starts" in reasons[0] and "never be shown" in reasons[1]
    assert "cannot read" in reasons[2] and "in order" in reasons[3]
    assert "after the end of the video" in reasons[4]


def test_problems_past_the_limit_are_counted():
    text = "1\n" + "".join(
        f"00:00:{n:02d},000 --> 00:00:{n:02d},000\nx\n\n" for n in range(60)
    ).replace("\n\n", "\n\n1\n", 59)
    problem = refusal("en.srt", text)
    assert len(problem.problems) == captions.MAX_PROBLEMS and problem.more == 59
    lines = [line for line, _ in problem.problems]
    assert lines == sorted(lines) and lines[0] == 2


def test_a_long_subrip_line_is_converted_as_a_short_one(monkeypatch):
    from service.captions import text as caption_text

    text = "1\n00:00:01,000 --> 00:00:02,000\n" + "a<b>&{\\an8}<i>x</b>y " * 50 + "\n"
    short = read("en.srt", text)
    monkeypatch.setattr(caption_text, "LONG_LINE", 10)
    assert read("en.srt", text).webvtt == short.webvtt

"""House style: every rule, counted once per cue, in bounded work. Pure."""

import tracemalloc

import pytest

from service.captions import house_style
from service.captions.house_style import Style
from service.captions.track import Cue


def cue(start_ms, end_ms, text, line=1):
    return Cue(start_ms, end_ms, text, line)


def rules_of(report):
    return [(f.cue, f.rule) for f in report.listed]


def test_a_track_in_style_has_no_findings():
    cues = [cue(0, 2000, "Short and sweet."), cue(2080, 4000, "Two lines,\nboth short.")]
    report = house_style.check(cues, Style())
    assert report.total == 0 and report.listed == [] and report.counts == {}


def test_each_rule_at_its_default_limit():
    line55 = "x" * 55
    cues = [
        cue(0, 3000, line55, 3),  # a 55-character line (and 18.3 cps: fine)
        cue(4000, 5000, "y" * 30, 7),  # 30 characters in one second
        cue(6000, 6500, "ok", 11),  # half a second
        cue(7000, 15000, "long", 15),  # eight seconds
        cue(15040, 17000, "one frame after", 19),  # 40 ms = 1 frame at 25 fps
        cue(18000, 20000, "a\nb\nc", 23),  # three lines
    ]
    report = house_style.check(cues, Style())
    assert rules_of(report) == [
        (1, "line_chars"),
        (2, "chars_per_second"),
        (3, "short_cue"),
        (4, "long_cue"),
        (5, "gap"),
        (6, "lines"),
    ]
    first, second = report.listed[:2]
    assert (first.line, first.value) == (3, "a line of 55 characters (at most 42)")
    assert (second.line, second.value) == (7, "30.0 characters per second (at most 20)")
    assert report.listed[4].value.startswith("starts 1.0 frames after the cue above ends")


def test_markup_is_not_counted_and_entities_are_one_character():
    text = "<i>{\\an8}</i><c.yellow>" + "a" * 40 + "</c> &amp; b"  # 44 visible characters
    assert house_style.visible_text(text) == "a" * 40 + " & b"
    report = house_style.check([cue(0, 5000, text)], Style())
    assert report.listed[0].value == "a line of 44 characters (at most 42)"
    assert house_style.check([cue(0, 5000, "<b>" * 30 + "fine")], Style()).total == 0


def test_the_gap_uses_the_media_frame_rate_and_25_when_unknown():
    cues = [cue(0, 1000, "one"), cue(1050, 2000, "two")]  # 50 ms apart
    # 2 frames at 25 fps are 80 ms: 50 ms is too short.
    assert rules_of(house_style.check(cues, Style(min_cue_seconds=0), "25")) == [(2, "gap")]
    assert rules_of(house_style.check(cues, Style(min_cue_seconds=0), None)) == [(2, "gap")]
    # At 60 fps two frames are 33 ms: 50 ms is enough.
    assert house_style.check(cues, Style(min_cue_seconds=0), "60").total == 0
    assert house_style.frames_per_second("30000/1001") == pytest.approx(29.97, abs=0.01)
    for nonsense in ("", "fast", "1/0", "0", "1e400", None, True, "9" * 5000):
        assert house_style.frames_per_second(nonsense) == 25.0


def test_overlapping_cues_are_a_gap_finding_and_a_rule_at_zero_is_off():
    cues = [cue(0, 2000, "first"), cue(1500, 3000, "second")]
    [found] = house_style.check(cues, Style()).listed
    assert found.rule == "gap" and found.value.startswith("starts 12.5 frames before")
    assert house_style.check(cues, Style(min_gap_frames=0)).total == 0
    off = Style(0, 0, 0, 0, 0, 0)
    assert house_style.check([cue(0, 10, "x" * 500 + "\n" * 9)], off).total == 0
    assert house_style.describe(off) == []


def test_findings_past_the_cap_are_counted_not_listed():
    cues = (cue(i * 10_000, i * 10_000 + 100, "x", i) for i in range(1000))  # all too short
    report = house_style.check(cues, Style(), max_listed=5)
    assert len(report.listed) == 5 and report.total == 1000 and report.more == 995
    assert report.counts == {"short_cue": 1000}


def test_strict_refuses_with_the_findings_as_problems():
    cues = [cue(0, 3000, "x" * 55, 3), cue(4000, 5000, "y" * 30, 7)]
    report = house_style.check(cues, Style(strict=True))
    refused = house_style.refusal(report, Style(strict=True))
    assert refused is not None and refused.line == 3
    assert refused.problems == [
        (3, "house style, characters per line: cue 1: a line of 55 characters (at most 42)"),
        (7, "house style, characters per second: cue 2: 30.0 characters per second (at most 20)"),
    ]
    assert refused.more == 1  # past the first, as captions.Refused counts
    assert house_style.refusal(report, Style()) is None  # reported, not imposed
    assert house_style.refusal(house_style.Report(), Style(strict=True)) is None


@pytest.mark.slow
def test_200000_cues_are_one_pass_in_bounded_memory():
    """Bounded work, not a timing: the memory kept does not grow with the track."""

    def cues(n):
        for i in range(n):
            yield cue(i * 1000, i * 1000 + 400, "x" * 60, i)  # three findings each

    tracemalloc.start()
    try:
        report = house_style.check(cues(200_000), Style())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.total == 600_000 and len(report.listed) == house_style.MAX_LISTED
    assert peak < 2 * 1024 * 1024, peak  # the listed findings, not the track

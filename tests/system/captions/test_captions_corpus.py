"""The conformance corpus (../shared/captions-corpus: files from the W3C
parser tests, mozilla/vtt.js, go-astisub, node-webvtt, the srt package and
real projects, with what each must give) read by `captions.read`, and what
it delivers read again by the W3C validator's parser (tests/support/webvtt_check.py).

- valid: delivered, with the expected cues (times to the millisecond, text);
- invalid: refused at a line;
- browsers recover: either, but never more cues than the browser shows;
- every delivered WebVTT: no error from the W3C parser, the same cues as
  `Track.cues`.

The corpus is not in the repository (CI has it beside the checkout); the
tests skip, saying so, where it is absent. Its path may be given in
CAPTIONS_CORPUS.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from service.captions import track as captions
from tests.support import webvtt_check
from tests.support.paths import REPOSITORY

_REPO = REPOSITORY


def _corpus() -> Path | None:
    given = os.environ.get("CAPTIONS_CORPUS")
    places = [Path(given)] if given else []
    places += [_REPO.parent / "shared" / "captions-corpus", Path("/work/shared/captions-corpus")]
    return next((p for p in places if (p / "manifest.json").is_file()), None)


CORPUS = _corpus()
CASES: list[dict[str, Any]] = (
    json.loads((CORPUS / "manifest.json").read_text())["cases"] if CORPUS else []
)
needs_corpus = pytest.mark.skipif(
    CORPUS is None,
    reason="the captions corpus (../shared/captions-corpus beside the checkout, or "
    "CAPTIONS_CORPUS) is absent: conformance not checked",
)


def _expected(case: dict[str, Any], spec: dict[str, Any]) -> list[tuple[int, int, str]]:
    if spec.get("kind") == "none" or not spec.get("file"):
        return []
    cues = json.loads((CORPUS / spec["file"]).read_text())["cues"]
    out = []
    for cue in cues:
        if "start_ms" in cue:
            start, end = cue["start_ms"], cue["end_ms"]
        else:
            start, end = round(cue["startTime"] * 1000), round(cue["endTime"] * 1000)
        out.append((start, end, _text(cue["text"], spec.get("text", "exact"), case["format"])))
    return out


_TAG = re.compile(r"<[^>]*>")


def _text(text: str, mode: str, fmt: str) -> str:
    """exact: the cue text as written; normalized: as a viewer reads it
    (references resolved, white space collapsed); stripped: also no markup."""
    if mode == "exact":
        return text
    if mode == "stripped" or fmt == "srt":
        text = _TAG.sub("", text)
    return " ".join(html.unescape(text).replace("\xa0", " ").split())


def _delivered(track: captions.Track, mode: str) -> list[tuple[int, int, str]]:
    if mode == "exact":  # the text sent, as written
        raws = _raw_texts(track.webvtt)
        return [(c.start_ms, c.end_ms, raw) for c, raw in zip(track.cues, raws, strict=True)]
    return [
        (c.start_ms, c.end_ms, " ".join(c.text.replace("\xa0", " ").split())) for c in track.cues
    ]


def _raw_texts(webvtt: str) -> list[str]:
    """Each cue's text in the WebVTT sent (the blocks after a timing line)."""
    texts = []
    for block in webvtt.split("\n\n")[1:]:
        lines = block.split("\n")
        for index, line in enumerate(lines[:2]):
            if "-->" in line:
                texts.append("\n".join(lines[index + 1 :]).rstrip("\n"))
                break
    return texts


def _read(case: dict[str, Any]) -> captions.Track | captions.Refused:
    data = (CORPUS / case["file"]).read_bytes()
    try:
        return captions.read(f"en.{case['format']}", data, None)
    except captions.Refused as refused:
        return refused


@pytest.fixture(scope="module")
def outcomes() -> dict[str, captions.Track | captions.Refused]:
    return {case["id"]: _read(case) for case in CASES}


@pytest.fixture(scope="module")
def w3c(tmp_path_factory: pytest.TempPathFactory) -> webvtt_check.Parser:
    return webvtt_check.install(tmp_path_factory.mktemp("webvtt-parser"))


@needs_corpus
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_each_corpus_case_is_read_as_the_corpus_says(case, outcomes):
    got = outcomes[case["id"]]
    spec = case["expect"]
    if case["outcome"] == "refuse":
        assert isinstance(got, captions.Refused), f"delivered, but the corpus says {case['why']}"
        assert got.line is not None and got.problems
        return
    if isinstance(got, captions.Refused):
        assert case["outcome"] == "either", f"refused ({got}), but the corpus says {case['why']}"
        assert all(line is not None for line, _ in got.problems), got.problems
        return
    specs = [spec, *spec.get("alternatives", [])]
    if case["outcome"] == "accept":
        tried = [(_delivered(got, s.get("text", "exact")), _expected(case, s)) for s in specs]
        assert any(mine == theirs for mine, theirs in tried), tried[0]
    else:  # browsers recover: never more cues than they show
        assert len(got.cues) <= max(len(_expected(case, s)) for s in specs)


@needs_corpus
def test_what_is_delivered_is_valid_webvtt_with_the_same_cues(outcomes, w3c):
    delivered = {k: v for k, v in outcomes.items() if isinstance(v, captions.Track)}
    assert len(delivered) > 60
    parsed = dict(zip(delivered, w3c.parse([t.webvtt for t in delivered.values()]), strict=True))
    for case_id, track in delivered.items():
        result = parsed[case_id]
        assert result["errors"] == [], (case_id, result["errors"], track.webvtt[:500])
        theirs = [(c["start_ms"], c["end_ms"], c["text"]) for c in result["cues"]]
        mine = list(
            zip(
                [c.start_ms for c in track.cues],
                [c.end_ms for c in track.cues],
                _raw_texts(track.webvtt),
                strict=True,
            )
        )
        assert sorted(theirs) == sorted(mine), case_id
        if track.name.format == "srt":  # text the service wrote: its markup is valid too
            assert result["text_errors"] == [], (case_id, result["text_errors"])


# -- the repository's own files, and random ones: no corpus needed -------------


def _random_files(count: int) -> list[tuple[str, bytes]]:
    """Files of lines a captioning tool or a mistake writes, in random order."""
    import random

    rnd = random.Random(17)
    pieces = [
        "",
        "",
        "",
        "1",
        "intro",
        "NOTE a note",
        "STYLE",
        "::cue { color: red }",
        "00:00:01.000 --> 00:00:02.000",
        "00:00:02.500 --> 00:00:04.000 align:start line:0",
        "00:00:03,000 --> 00:00:05,000",
        "0:0:4,5 --> 0:0:6,25",
        "00:05.000 --> 00:06.000",
        "00:00:07.000 --> 00:00:08.000 size:50% bogus",
        "{\\an8}top",
        "<i>it</i>",
        "a < b & c",
        "<font color=red>red</font>",
        "&amp; &lt;",
        "Hello",
        "two\tlines",
        "-->",
        "x --> y",
    ]
    files = []
    for number in range(count):
        fmt = "vtt" if number % 2 else "srt"
        lines = [rnd.choice(pieces) for _ in range(rnd.randint(1, 25))]
        head = "WEBVTT\n\n" if fmt == "vtt" else "1\n00:00:00,500 --> 00:00:01,000\nfirst\n\n"
        files.append((f"en.{fmt}", (head + "\n".join(lines) + "\n").encode()))
    return files


def test_own_and_random_files_delivered_are_valid_webvtt_with_the_same_cues(w3c):
    from tests.support.caption_samples import DELIVERED

    tracks = [captions.read(name, text.encode(), 100.0) for name, text in DELIVERED.values()]
    for name, data in _random_files(400):
        with contextlib.suppress(captions.Refused):
            tracks.append(captions.read(name, data, 100.0))
    assert len(tracks) > 50  # (most random files are refused: they are random)
    for track, result in zip(tracks, w3c.parse([t.webvtt for t in tracks]), strict=True):
        assert result["errors"] == [], (result["errors"], track.webvtt)
        if track.name.format == "srt":
            assert result["text_errors"] == [], (result["text_errors"], track.webvtt)
        theirs = [(c["start_ms"], c["end_ms"], c["text"]) for c in result["cues"]]
        mine = [(c.start_ms, c.end_ms) for c in track.cues]
        assert sorted(theirs) == sorted(
            (*time, raw) for time, raw in zip(mine, _raw_texts(track.webvtt), strict=True)
        )


def test_a_timing_line_is_read_as_the_w3c_parser_reads_it(w3c):
    """Random timing lines, each in a file of one cue: the W3C parser reads a
    cue from it exactly when vtt_timing reads the line, with the same times."""
    import random

    from service.captions import lines as caption_lines

    rnd = random.Random(5)
    stamps = [
        "00:00:01.000",
        "00:01.000",
        "1:00:00.000",
        "00:00.5",
        "00:60.000",
        "60:00.000",
        "000:00.000",
        "00:00:00.0000",
        "0:00:01.000",
        "123:59:59.999",
        "00:00:01,000",
        "00:00:61.000",
        "00:1.000",
        "-00:00:01.000",
        "99999:00:00.000",
        "00:00:01.000x",
    ]
    spaces = ["", " ", "\t", "\f", "\v", "  ", "\xa0"]
    rests = ["", " line:0", "x", " \v", "\talign:start", " -->"]
    lines = [
        rnd.choice(spaces)
        + rnd.choice(stamps)
        + rnd.choice(spaces)
        + "-->"
        + rnd.choice(spaces)
        + rnd.choice(stamps)
        + rnd.choice(rests)
        for _ in range(3000)
    ]
    files = [f"WEBVTT\n\n{line}\nx\n" for line in lines]
    read = 0
    for line, result in zip(lines, w3c.parse(files), strict=True):
        mine = caption_lines.vtt_timing(line)
        theirs = [(c["start_ms"], c["end_ms"]) for c in result["cues"]]
        assert theirs == ([mine[:2]] if mine else []), repr(line)
        read += mine is not None
    assert read > 50

"""Small caption files of this repository's own, one for each class of case
the conformance corpus holds (tests/unit/captions/test_captions_faithful.py reads them;
tests/system/captions/test_captions_corpus.py checks what is delivered of each with the W3C
validator's parser). Written here, not copied from the corpus."""

from __future__ import annotations

# name -> (file name, content) delivered, each with something to change on the way
DELIVERED = {
    "subrip fractions": (
        "en.srt",
        "1\n00:00:01,5 --> 00:00:02,25\nTenths and hundredths\n\n"
        "2\n0:0:3.125 --> 0:0:4\nA dot, one-digit hours, no fraction\n",
    ),
    "subrip literal characters": (
        "en.srt",
        "1\n00:00:01,000 --> 00:00:02,000\n2<3,5>1\nx < y && y > z --> done\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\nFish &amp; chips, caf&eacute;, &#9834; &nosuch;\n",
    ),
    "subrip markup": (
        "en.srt",
        "1\n00:00:01,000 --> 00:00:02,000\n{\\an8}Top of the screen\n\n"
        '2\n00:00:03,000 --> 00:00:04,000\n{\\an1}<font color="#ff0000"><B>Red</B></font> '
        "<i>left open\non two lines\n\n"
        "3\n00:00:05,000 --> 00:00:06,000\n<b><i>crossed</b> over</i> {\\i1}<laughs>\n",
    ),
    "subrip without numbers": (
        "en.srt",
        "00:00:01,000 --> 00:00:02,000\nNo number\n\n00:00:03,000 --> 00:00:04,000\nNone here\n",
    ),
    "webvtt settings players ignore": (
        "en.vtt",
        "WEBVTT\nKind: captions\n\n"
        "1\n00:00:01.000 --> 00:00:02.000 align:middle line:0 size:120% region:r vertical:rl\n"
        "Kept: line:0 and vertical:rl\n"
        "00:00:02.000 --> 00:00:03.000 line:10% line:20%\nno blank line above\n\n"
        "STYLE\n::cue { color: red }\n",
    ),
    "webvtt settings without a space": (
        "en.vtt",
        "WEBVTT\n\n00:00.000 --> 00:01.000line:40% size:40%\nText\n",
    ),
}

# name -> (file name, content, the line refused)
REFUSED = {
    "zero-length cue": ("en.srt", "1\n00:00:05,000 --> 00:00:05,000\nNever shown\n", 2),
    "webvtt fraction of two digits": (
        "en.vtt",
        "WEBVTT\n\n00:00.00 --> 00:02.000\nBrowsers drop this cue\n",
        3,
    ),
    "vertical tabs in a timing line": (
        "en.vtt",
        "WEBVTT\n\nspaces\n 00:00:00.000  -->  00:00:01.000 \nshown\n\n"
        "vertical tab\n\v00:00:01.000\v-->\v00:00:02.000\nnot shown\n",
        8,
    ),
    "region block": (
        "en.vtt",
        "WEBVTT\n\nREGION\nid:r width:40%\n\n00:00:01.000 --> 00:00:02.000 region:r\nx\n",
        3,
    ),
    "identifier alone": ("en.vtt", "WEBVTT\n\nintro\n\n00:00:01.000 --> 00:00:02.000\nx\n", 3),
}

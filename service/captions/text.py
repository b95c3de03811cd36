"""Cue text and cue settings between SubRip and WebVTT. Pure.

SubRip has no specification: its tools write literal `<`, `>` and `&`, the
HTML-like tags `<b> <i> <u> <font>` and the ASS override `{\\anN}` (where on
the screen: Subtitle Edit, Aegisub). WebVTT reads `<` as a tag and `&` as a
character reference, so a SubRip `x < y` sent as it is shows `x ` and
`2<3,5>1` shows `21`. Here:

- `<b> <i> <u>` become WebVTT's own tags (closed at the end of the cue, as
  players close them; a closing tag nothing opened is left out);
- `<font ...>` and other `{\\...}` overrides are left out (a note says so:
  WebVTT colours need a style sheet);
- `{\\anN}` becomes `line:`/`align:` cue settings;
- every other `<`, `>` and `&` is escaped (`&lt;` `&gt;` `&amp;`), and a
  character reference is kept when it is one of WebVTT's six, written as the
  character it means otherwise (`&eacute;`: `é`), so every player shows it.

WebVTT cue settings are checked as the W3C parser checks them: one a
player ignores is left out, a repeated one keeps its last value (as players
read it).
"""

from __future__ import annotations

import html
import math
import re
from html.entities import html5 as _HTML5

# The references every WebVTT reader knows (the W3C parser's own short list).
_WEBVTT_REFS = {"amp", "lt", "gt", "nbsp", "lrm", "rlm"}
_TAGS = {"b", "i", "u"}

SPECIAL = re.compile(r"[<>&{]")
_SRT_TOKEN = re.compile(
    r"<(?P<close>/?)(?P<tag>[A-Za-z]+)(?P<attrs>\s[^<>]*)?>"
    r"|\{\\(?P<ass>[^{}]*)\}"
    r"|&(?P<ref>#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});"
    r"|(?P<lit>[<>&])"
)
_AN = re.compile(r"\\an([1-9])")
_LITERAL = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}

# {\anN}: the numeric keypad, 1-3 bottom, 4-6 middle, 7-9 top.
_AN_SETTINGS = {
    1: "align:left",
    2: "",
    3: "align:right",
    4: "line:50%,center align:left",
    5: "line:50%,center",
    6: "line:50%,center align:right",
    7: "line:0 align:left",
    8: "line:0",
    9: "line:0 align:right",
}

# A line this long is converted a few thousand pieces at a time.
LONG_LINE = 1 << 16

FONT = "font"  # what a SubRip cue lost on the way, for the notes
OVERRIDE = "override"


class SrtText:
    """One SubRip cue's text lines as WebVTT cue text, with what it asked of
    the cue's position (`settings`) and what was left out (`dropped`)."""

    __slots__ = ("_open", "dropped", "lines", "settings")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.settings = ""
        self.dropped: set[str] = set()
        self._open: list[str] = []

    def add(self, line: str) -> None:
        if SPECIAL.search(line) is None:
            self.lines.append(line)
        elif len(line) < LONG_LINE:
            self.lines.append(_SRT_TOKEN.sub(self._token, line))
        else:  # re.sub would hold a string object for each of its pieces at once
            self.lines.append(self._long(line))

    def _long(self, line: str) -> str:
        chunks: list[str] = []
        pieces: list[str] = []
        at = 0
        for match in _SRT_TOKEN.finditer(line):
            pieces.append(line[at : match.start()])
            pieces.append(self._token(match))
            at = match.end()
            if len(pieces) >= 8192:
                chunks.append("".join(pieces))
                pieces = []
        pieces.append(line[at:])
        chunks.append("".join(pieces))
        return "".join(chunks)

    def finish(self) -> list[str]:
        if self._open:
            closing = "".join(f"</{tag}>" for tag in reversed(self._open))
            if self.lines:
                self.lines[-1] += closing
            self._open = []
        # a line left empty by what was taken out ({\an8} alone) is not a blank line
        return [line for line in self.lines if line] if "" in self.lines else self.lines

    def _token(self, match: re.Match[str]) -> str:
        lit = match["lit"]
        if lit is not None:
            return _LITERAL[lit]
        ref = match["ref"]
        if ref is not None:
            return _reference(ref, match[0])
        ass = match["ass"]
        if ass is not None:
            ass = "\\" + ass
            position = _AN.findall(ass)
            if position:
                self.settings = _AN_SETTINGS[int(position[-1])]
            if _AN.sub("", ass).strip("\\ "):
                self.dropped.add(OVERRIDE)
            return ""
        tag = match["tag"].lower()
        if tag == "font":
            self.dropped.add(FONT)
            return ""
        if tag not in _TAGS:  # <laughs>, <3: text, shown as written
            return html.escape(match[0], quote=False)
        if not match["close"]:
            self._open.append(tag)
            return f"<{tag}>"
        if tag not in self._open:
            return ""  # closes nothing: players show nothing for it
        out = []
        while self._open:  # </b> in <b><i>: close <i>, close <b>, open <i> again
            last = self._open.pop()
            out.append(f"</{last}>")
            if last == tag:
                break
        reopened = []
        for other in reversed(out[:-1]):
            name = other[2:-1]
            self._open.append(name)
            reopened.append(f"<{name}>")
        return "".join(out) + "".join(reopened)


def _reference(ref: str, written: str) -> str:
    if ref in _WEBVTT_REFS:
        return written
    if ref.startswith("#"):
        try:
            char = chr(int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:]))
        except (ValueError, OverflowError):
            return "&amp;" + written[1:]
        if not char.isprintable() or 0xD800 <= ord(char) <= 0xDFFF:
            return "&amp;" + written[1:]
        return _LITERAL.get(char, char)
    named = _HTML5.get(ref + ";")
    if named is None:
        return "&amp;" + written[1:]  # not a reference: the characters as written
    return "".join(_LITERAL.get(c, c) for c in named)


# -- what a cue shows -----------------------------------------------------------

_VTT_TAG = re.compile(r"<[^>]*>")


def shown(webvtt_text: str) -> str:
    """WebVTT cue text as a viewer reads it: no tags, references resolved."""
    if "<" in webvtt_text:
        webvtt_text = _VTT_TAG.sub("", webvtt_text)
    return html.unescape(webvtt_text) if "&" in webvtt_text else webvtt_text


_KEPT_FOR_SRT = re.compile(r"<(/?)([biu])(?:\.[^\s>]*)?>|<[^>]*>")


def webvtt_to_srt_text(webvtt_text: str) -> str:
    """WebVTT cue text as SubRip: <b> <i> <u> kept, other tags left out,
    references written as the characters they mean (SubRip is literal)."""

    def tag(match: re.Match[str]) -> str:
        return f"<{match[1]}{match[2]}>" if match[2] else ""

    text = _KEPT_FOR_SRT.sub(tag, webvtt_text) if "<" in webvtt_text else webvtt_text
    return html.unescape(text) if "&" in text else text


# -- cue settings ----------------------------------------------------------------

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_PERCENT = re.compile(rf"({_NUMBER})%")
_SETTINGS = {
    "vertical": re.compile(r"rl|lr"),
    "line": re.compile(rf"(?:-?{_NUMBER}|(?P<p>{_NUMBER})%)(?:,(?:start|center|end))?"),
    "position": re.compile(rf"(?P<p>{_NUMBER})%(?:,(?:line-left|center|line-right))?"),
    "size": re.compile(rf"(?P<p>{_NUMBER})%"),
    "align": re.compile(r"start|center|end|left|right"),
}
_SETTING_SPLIT = re.compile(r"[ \t\f]+")


def _in_range(name: str, value: str, match: re.Match[str]) -> bool:
    percent = match.groupdict().get("p")
    if percent is not None:
        return float(percent) <= 100
    if name == "line":  # a line number a player can hold
        return math.isfinite(float(value.partition(",")[0]))
    return True


def vtt_settings(text: str) -> tuple[str, list[str]]:
    """Cue settings a player honours, in order, and those it ignores."""
    kept: dict[str, str] = {}
    ignored: list[str] = []
    for setting in _SETTING_SPLIT.split(text):
        if not setting:
            continue
        name, colon, value = setting.partition(":")
        check = _SETTINGS.get(name)
        match = check.fullmatch(value) if check is not None and colon else None
        if match is None or not _in_range(name, value, match):
            ignored.append(setting)
            continue
        if name in kept:
            ignored.append(f"{name}:{kept.pop(name)}")
        kept[name] = value
    return " ".join(f"{name}:{value}" for name, value in kept.items()), ignored

"""index.html survives any text: parsed as a browser would (html5lib, the WHATWG tokenizer).

Python's html.parser knows nothing of the script-data escaped states, where
`<!--<script>` in a script element makes its `</script>` no longer end it;
html5lib implements them, so a page that would break in a browser breaks
here too. Whatever a title, a metadata value or a cue holds, the page must
keep exactly its own elements, and its captions-data script must hold the
captions as they were.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element

import html5lib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.bundle import manifest as bundle
from service.bundle import preview, readback

ASSET = "0a1b2c3d-0000-4000-8000-00000000a001"
HOSTILE = [
    "</script>",
    "</SCRIPT >",
    "<!--<script>",
    "<!--",
    "-->",
    "<script>alert(1)</script>",
    "</style><b>x</b>",
    "</title><b>x</b>",
    "\u2028\u2029",
    "\"'`",
    "\x00",
    "\r\n\r",
    "&amp;&lt;&#0;",
    "]]>",
    "\\",
    "\\u003c",
]
# Text that leans on what can go wrong, mixed with anything at all.
texts = st.lists(st.sampled_from(HOSTILE) | st.text(max_size=12), max_size=6).map("".join)
# Every element the page itself has (html5lib adds tbody to its tables).
PAGE_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "p",
    "code",
    "video",
    "label",
    "select",
    "option",
    "ul",
    "li",
    "a",
    "table",
    "tbody",
    "tr",
    "th",
    "td",
    "script",
    "div",
    "span",
    "button",
    "h3",
    "pre",
}


def as_parsed(text: str) -> str:
    """`text` as HTML can carry it at all: a NUL is always U+FFFD once parsed."""
    return text.replace("\0", "\ufffd")


def manifest(
    title: str,
    form: dict[str, str],
    languages: list[str],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    files = [bundle.BundleFile("media/m.mp4", 10, "ab" * 32, "media", source="proxy")]
    for n, language in enumerate(languages):
        for extension in ("vtt", "srt"):
            files.append(
                bundle.BundleFile(
                    f"captions/{n}.{extension}", 5, "cd" * 32, "caption", language, n % 2 == 1
                )
            )
    return bundle.build_manifest(
        asset=bundle.AssetFacts(
            id=ASSET, title=title, metadata={"Genre": title}, web_url="https://iconik/asset"
        ),
        request=bundle.RequestFacts(
            request_id="r1", requested_by=title, form_values=form, form_labels=labels or {}
        ),
        files=files,
        revision=1,
        generated_at="now",
    )


def parse(page: str) -> Element:
    return html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)


def text_of(element: Element) -> str:
    return "".join(element.itertext())


def page_script() -> str:
    """The page's own script, from a page of harmless data."""
    [_, script] = parse(preview.render_preview(manifest("t", {}, ["en"]), {})).iter("script")
    return script.text or ""


PAGE_SCRIPT = page_script()


def table(doc: Element, table_id: str) -> list[tuple[str, ...]]:
    [found] = [t for t in doc.iter("table") if t.get("id") == table_id]
    return [tuple(text_of(cell) for cell in row) for row in found.iter("tr")]


def check(
    title: str,
    form: dict[str, str],
    cues: list[tuple[str, str]],
    labels: dict[str, str] | None = None,
    errors: str | None = None,
) -> None:
    languages = [language for language, _ in cues]
    texts_by_path = {f"captions/{n}.vtt": text for n, (_, text) in enumerate(cues)}
    m = manifest(title, form, languages, labels)
    doc = parse(preview.render_preview(m, texts_by_path, errors_text=errors))

    assert {e.tag for e in doc.iter()} <= PAGE_TAGS
    scripts = list(doc.iter("script"))
    assert [s.attrib for s in scripts] == [{"id": "page-data", "type": "application/json"}, {}]
    assert scripts[1].text == PAGE_SCRIPT
    expected = [
        {
            "language": language or "und",
            "closed_captions": n % 2 == 1,
            "label": bundle.caption_label(language or "und", n % 2 == 1),
            "path": f"captions/{n}.vtt",
            "text": text,
        }
        for n, (language, text) in enumerate(cues)
    ]
    assert json.loads(scripts[0].text or "") == {"captions": expected, "timing": None}

    shown = as_parsed(title or "untitled")
    head_title = doc.find("head/title")
    assert head_title is not None and head_title.text == f"{shown}: captioning project"
    h1 = doc.find("body/h1")
    assert h1 is not None and text_of(h1) == shown
    assert (
        table(doc, "request")
        == [("Requested by", as_parsed(title)), ("Request id", "r1")][not title :]
    )
    named = labels or {}
    shown_form = [
        (as_parsed(named.get(k, k)), as_parsed(v)) for k, v in form.items() if v and k != "due_date"
    ]
    assert table(doc, "brief") == (shown_form or [("No notes with this request.",)])
    if title:
        assert table(doc, "metadata") == [("Genre", as_parsed(title))]
    if errors and errors.strip():
        [pre] = doc.iter("pre")
        assert pre.text == as_parsed(errors)  # the parser drops the one LF after <pre>
    links = [a.get("href") for a in doc.iter("a")]
    assert links == [f"captions/{n}.{ext}" for n in range(len(cues)) for ext in ("vtt", "srt")]
    video = doc.find(".//video")
    assert video is not None and video.get("src") == "media/m.mp4"


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    title=texts,
    form=st.dictionaries(texts, texts),
    cues=st.lists(st.tuples(texts, texts), max_size=3),
    labels=st.dictionaries(texts, texts),
    errors=st.none() | texts,
)
def test_no_title_metadata_label_error_or_cue_changes_how_the_page_parses(
    title, form, cues, labels, errors
):
    check(title, form, cues, labels, errors)


def test_a_cue_that_opens_a_comment_and_a_script_does_not_swallow_the_page_script():
    # The old escaping (only "</") let this put the parser in the script-data
    # double-escaped state: the page's own <script> became JSON text.
    check("t", {}, [("en", "WEBVTT\n\n00:00.000 --> 00:01.000\n<!--<script>\n")])


def test_json_escapes_every_character_that_means_something_to_html_or_old_javascript():
    page = preview.render_preview(
        manifest("t", {}, ["en"]), {"captions/0.vtt": "<>&\u2028\u2029</script><!--"}
    )
    data = page.split('<script id="page-data" type="application/json">')[1].split("</script>")[0]
    assert not set(data) & set("<>&\u2028\u2029")
    assert json.loads(data)["captions"][0]["text"] == "<>&\u2028\u2029</script><!--"


def test_a_path_that_reads_as_a_url_scheme_stays_a_relative_link():
    m = manifest("t", {}, [])
    m["files"] += [
        {"path": "javascript:alert(1)//.vtt", "kind": "caption", "sha256": "", "size": 0}
    ]
    [link] = parse(preview.render_preview(m, {})).iter("a")
    assert link.get("href") == "./javascript:alert(1)//.vtt"


@settings(max_examples=100, deadline=None)
@given(language=texts, reason=texts)
def test_a_track_left_out_is_named_with_its_reason_as_text(language, reason):
    m = manifest("t", {}, ["en"])
    m["tracks_skipped"] = [{"language": language, "closed_captions": True, "reason": reason}]
    doc = parse(preview.render_preview(m, {"captions/0.vtt": "WEBVTT\n"}))
    assert {e.tag for e in doc.iter()} <= PAGE_TAGS
    assert len(list(doc.iter("script"))) == 2
    [item] = [li for li in doc.iter("li") if li.get("class") == "skipped"]
    label = bundle.caption_label(language or "und", True)
    assert text_of(item) == as_parsed(f"{label}: not in this bundle. {reason}")
    [shown] = json.loads(next(doc.iter("script")).text or "")["captions"]
    assert shown["path"] == "captions/0.vtt"  # the track left out is not among the page's


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    edits=st.dictionaries(
        st.sampled_from(["asset", "request", "files", "deliveries", "tracks_skipped", "revision"]),
        json_values,
    ),
    asset=st.dictionaries(
        st.sampled_from(["title", "frame_rate", "start_timecode", "metadata", "metadata_labels"]),
        json_values,
    ),
    request=st.dictionaries(st.sampled_from(["form_values", "form_labels"]), json_values),
    errors=st.none() | texts,
)
def test_a_manifest_read_back_after_any_edit_still_renders(edits, asset, request, errors):
    # A delivery rewrites the page from project.json as read back, after the
    # track is in Iconik: no value a captioner could write there may stop it.
    m = manifest("t", {}, ["en"])
    m["asset"].update(asset)
    m["request"].update(request)
    m.update(edits)
    read = readback.manifest(json.loads(json.dumps(m)))
    assert read is not None
    doc = parse(preview.render_preview(read, {}, errors_text=errors))
    assert {e.tag for e in doc.iter()} <= PAGE_TAGS

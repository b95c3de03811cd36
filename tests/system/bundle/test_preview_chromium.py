"""The preview page, opened from the bundle folder (file://) in real headless Chromium.

One browser (tests/support/chromium_cdp.py) opens two pages, to keep launches few:
a bundle the whole product built (25 fps from 10:00:00:00, a delivery and a
refusal since), and a page at 29.97 fps drop-frame. Screenshots go to the
test's tmp_path, and to $PREVIEW_SCREENSHOT_DIR when set.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from service.bundle import manifest as bundle
from service.bundle import preview, preview_data
from simulator import sample_video
from tests.support.chromium_cdp import chromium as launch
from tests.support.service import custom_action_body
from tests.support.stack import stack


def _chromium() -> str:
    """Debian's Chromium, as the machine (and CI) has it installed. The test
    never installs it: a test that ran apt-get changed the machine it ran on."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = (
        "Chromium is not installed (`apt-get install chromium` on Debian): "
        "the preview page was not checked in a browser"
    )
    if os.environ.get("CI"):
        pytest.fail(reason + "; under CI it must be")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    return _chromium()


EN_VTT = (
    "WEBVTT\n\n00:00:00.000 --> 00:00:00.800\nWelcome aboard, captioned.\n\n"
    "00:00:01.000 --> 00:00:01.900\nThe harbour never sleeps.\n"
)
BROKEN_DE = "WEBVTT\n\n00:00:01.500 --> 00:00:01.200\nRückwärts.\n"
FORM = {
    "target_languages": {"field_values": [{"value": "en"}, {"value": "fr"}]},
    "due_date": {"field_values": [{"value": "2026-12-01"}]},
    "notes": {"field_values": [{"value": "Speaker names in CAPS, please."}]},
}
# Cue starts (s) at 29.97 fps from 10:00:00;00, and the timecode each shows.
DROP_FRAME = {
    0.0: "10:00:00;00",
    1.0: "10:00:01;00",
    59.9: "10:00:59;25",
    60.06: "10:01:00;02",  # 10:01:00;00 and ;01 do not exist
    600.0: "10:10:00;00",  # every tenth minute keeps them
}

CUES = """[...document.querySelectorAll('#cue-list li[data-index]')].map(li => [
  li.querySelector('.start').textContent, li.querySelector('.end').textContent,
  li.querySelector('.text').textContent, li.tabIndex, li.classList.contains('current')])"""
ROWS = """(id) => [...document.querySelectorAll('#' + id + ' tr')].map(
  tr => [...tr.children].map(c => c.textContent))"""


def _shots(tmp_path: Path) -> list[Path]:
    extra = os.environ.get("PREVIEW_SCREENSHOT_DIR")
    return [tmp_path] + ([Path(extra)] if extra else [])


def _screenshot(browser, tmp_path: Path, name: str) -> None:
    for where in _shots(tmp_path):
        where.mkdir(parents=True, exist_ok=True)
        browser.screenshot(where / name)


def _rows(browser, table_id: str) -> list[list[str]]:
    return browser.evaluate(f"({ROWS})({json.dumps(table_id)})")


def _select_track(browser, index: int) -> None:
    browser.evaluate(
        "(() => { const s = document.getElementById('track-select');"
        f"s.value = '{index}'; s.dispatchEvent(new Event('change')); }})()"
    )


def _tc25(seconds: float) -> str:
    rate = preview_data.parse_frame_rate("25")
    assert rate is not None
    start = preview_data.timecode_frames("10:00:00:00", rate) or 0
    return preview_data.format_frames(start + preview_data.media_frame(seconds, rate), rate)


def _vtt_time(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds // 60) % 60:02d}:{seconds % 60:06.3f}"


def _drop_frame_page(folder: Path) -> Path:
    """A bundle page at 29.97 fps from 10:00:00;00, with the demo's video."""
    (folder / "media").mkdir(parents=True)
    (folder / "media" / "clip.mp4").write_bytes(sample_video())
    cues = "".join(f"{_vtt_time(t)} --> {_vtt_time(t + 0.5)}\nCue at {t}\n\n" for t in DROP_FRAME)
    manifest = bundle.build_manifest(
        asset=bundle.AssetFacts(
            id="0a1b2c3d-0000-4000-8000-00000000d297",
            title="Drop-frame reel",
            frame_rate="29.97",
            start_timecode="10:00:00;00",
        ),
        request=bundle.RequestFacts(request_id="r-df"),
        files=[
            bundle.BundleFile("media/clip.mp4", 1, "ab", "media"),
            bundle.BundleFile("captions/en.vtt", 1, "cd", "caption", "en", False),
        ],
        revision=1,
        generated_at="2027-01-15T08:00:00+00:00",
    )
    page = folder / "index.html"
    page.write_text(preview.render_preview(manifest, {"captions/en.vtt": "WEBVTT\n\n" + cues}))
    return page


@pytest.mark.slow
@pytest.mark.timeout(600)  # a cold Chromium start on a loaded 2-core machine
def test_the_page_is_a_captioners_workspace_in_chromium(tmp_path, chromium):
    with stack(tmp_path) as s:
        asset = s.seeded.normal
        s.send(
            custom_action_body(
                asset_ids=[asset], metadata_view_id=s.seeded.form_view_id, metadata_values=FORM
            )
        )
        s.drain()
        folder = s.bundle_dir(asset)
        (folder / "deliver" / "en.vtt").write_text(EN_VTT)
        (folder / "deliver" / "de.vtt").write_text(BROKEN_DE)
        for _ in range(2):  # a file is taken on the second look that finds it unchanged
            s.scan()
        s.drain()  # en goes to Iconik and the page is written anew; de is refused
        page = folder / "index.html"
        source = page.read_text()
        manifest = s.manifest(asset)
        sim_url = s.sim_url
    assert sim_url not in source  # no Iconik link: a captioner cannot open it
    [listed] = [f for f in manifest["files"] if f["path"] == "index.html"]
    assert listed["sha256"] == hashlib.sha256(source.encode()).hexdigest()  # the service's

    with launch(chromium, tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        browser.wait_for("document.getElementById('video-status').dataset.state === 'loaded'")
        assert browser.evaluate("document.getElementById('player').duration") == pytest.approx(2.0)
        assert browser.evaluate("document.body.dataset.tracks") == "2"
        assert browser.evaluate("document.body.dataset.cues") == "4"
        assert browser.evaluate(
            "[...document.querySelectorAll('#track-select option')].map(o => o.textContent)"
        ) == ["(none)", "en", "fr (closed captions)"]

        # The cue list of each track, in timecode from 10:00:00:00 at 25 fps.
        assert "starts at 10:00:00:00 · 25 fps" in browser.evaluate("document.body.textContent")
        en = browser.evaluate(CUES)
        assert [c[:3] for c in en] == [
            ["10:00:00:00", _tc25(0.9), "Welcome aboard."],
            ["10:00:01:00", _tc25(1.9), "The harbour never sleeps."],
        ]
        assert _tc25(0.9) == "10:00:00:23" and all(c[3] == 0 for c in en)  # focusable
        _screenshot(browser, tmp_path, "preview-en-1280x800.png")
        _select_track(browser, 1)
        fr = browser.evaluate(CUES)
        assert [c[2] for c in fr] == ["[Musique]", "Bienvenue à bord."]
        _screenshot(browser, tmp_path, "preview-fr-cc-1280x800.png")

        # A click on a cue plays from there, and marks it current.
        browser.click("#cue-list li[data-index='1']")
        browser.wait_for("document.getElementById('player').currentTime === 1")
        assert [c[4] for c in browser.evaluate(CUES)] == [False, True]
        # The keyboard does as much: Enter on a focused cue.
        browser.evaluate("document.querySelector(\"#cue-list li[data-index='0']\").focus()")
        browser.press("Enter", 13)
        browser.wait_for("document.getElementById('player').currentTime === 0")
        assert browser.evaluate("document.activeElement.dataset.index") == "0"
        browser.press("ArrowDown", 40)
        assert browser.evaluate("document.activeElement.dataset.index") == "1"

        # The switch to media time, and back.
        browser.click("#time-mode")
        assert [c[:2] for c in browser.evaluate(CUES)] == [
            ["00:00:00.000", "00:00:00.900"],
            ["00:00:01.000", "00:00:01.900"],
        ]
        browser.click("#time-mode")
        assert browser.evaluate(CUES)[1][0] == "10:00:01:00"

        # While it plays, the cue being spoken is the one marked.
        _select_track(browser, 0)
        browser.evaluate(
            "(() => { const v = document.getElementById('player'); v.muted = true;"
            "v.currentTime = 0; return v.play().then(() => true); })()"
        )
        browser.wait_for(
            "!document.getElementById('player').paused && document.querySelector("
            "\"#cue-list li.current\")?.dataset.index === '1'",
            timeout=15,
        )
        browser.evaluate("document.getElementById('player').pause()")

        # The brief by its labels, the due date, the delivery state of each language.
        assert _rows(browser, "brief") == [
            ["Languages wanted", "en, fr"],
            ["Notes for the captioner", "Speaker names in CAPS, please."],
        ]
        assert browser.evaluate("document.getElementById('due-date').textContent") == (
            "Due: 1 December 2026, 23:59 UTC (a date without a time: the end of that day in UTC)"
        )
        assert ["Episode description", "Pilot episode, final cut"] in _rows(browser, "metadata")
        text = browser.evaluate("document.body.innerText")
        assert "target_languages" not in text and "due_date" not in text
        states = {row[0]: row[1:] for row in _rows(browser, "delivery")}
        assert states["en"][0] == "Delivered" and "deliver/en.vtt" in states["en"][1]
        assert states["de"][0] == "Refused" and "de.vtt, line 3" in states["de"][1]
        assert states["fr (closed captions)"] == ["Waiting", "Nothing delivered yet"]
        assert browser.evaluate(
            "[...document.querySelectorAll('a')].every(a => a.protocol === 'file:')"
        )
        browser.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        _screenshot(browser, tmp_path, "preview-brief-delivery-1280x800.png")

        # A phone's width: one column, nothing wider than the screen.
        browser.viewport(390, 844, mobile=True)
        browser.evaluate("window.scrollTo(0, 0)")
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        assert browser.evaluate(
            "document.getElementById('cue-list').getBoundingClientRect().top >="
            "document.getElementById('player').getBoundingClientRect().bottom"
        )
        _screenshot(browser, tmp_path, "preview-phone-390.png")

        # 29.97 fps: drop-frame timecode, `;` before the frames.
        browser.open(_drop_frame_page(tmp_path / "drop-frame").as_uri())
        assert "starts at 10:00:00;00 · 29.97 fps drop-frame" in browser.evaluate(
            "document.body.textContent"
        )
        assert [c[0] for c in browser.evaluate(CUES)] == list(DROP_FRAME.values())
        _screenshot(browser, tmp_path, "preview-29.97-drop-frame.png")
        browser.pump(0.2)
        assert browser.errors == []

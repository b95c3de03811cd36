"""What the simulator holds for the demo and the end-to-end tests: seeded assets.

A normal episode with English subtitles (and their SRT original) and French
closed captions, one whose proxy is still transcoding, one with only an
original file, one with a hostile title, and a large generated proxy; or
many tiny assets for load.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from simulator.blob import Blob
from simulator.state import IconikState, stable_uuid

SAMPLE_MP4 = "sample.mp4"


def sample_video() -> bytes:
    """A real 2-second H.264 MP4, so browsers can play the demo bundle."""
    return resources.files("simulator").joinpath("media", SAMPLE_MP4).read_bytes()


# The custom action's form in the simulator (what `register --metadata-view` would name).
FORM_VIEW_ID = stable_uuid("view/caption-request")


@dataclass(frozen=True)
class Seeded:
    normal: str
    transcoding: str
    original_only: str
    traversal_title: str
    large: str
    view_id: str
    # The custom action's form (target_languages, due_date, notes).
    form_view_id: str = ""

    @property
    def all(self) -> list[str]:
        return [self.normal, self.transcoding, self.original_only, self.traversal_title, self.large]


def add_tiny_assets(sim: IconikState, count: int, proxy_bytes: int = 4) -> list[str]:
    """`count` assets with a proxy of a few bytes each: many bundles, little I/O."""
    ids = []
    for index in range(count):
        asset = sim.add_asset(f"tiny-{index}", f"Tiny clip {index}")
        data = bytes(index % 256 for _ in range(proxy_bytes))
        sim.add_proxy(asset, name=f"tiny_{index}.mp4", blob=Blob(len(data), data))
        ids.append(asset.asset["id"])
    return ids


def seed(sim: IconikState, *, large_proxy_bytes: int = 8 * 1024 * 1024) -> Seeded:
    """The assets the demo and the end-to-end tests work on."""
    view_id = stable_uuid("view/captioning")
    video = sample_video()

    normal = sim.add_asset("normal", "Harbour Lights: Episode 1")
    sim.add_proxy(
        normal,
        name="harbour_lights_ep1_720p.mp4",
        blob=Blob(len(video), video, content_type="video/mp4"),
    )
    # A smaller, worse proxy the picker must pass over.
    small = b"\x00" * 2048
    sim.add_proxy(
        normal,
        name="harbour_lights_ep1_240p.webm",
        blob=Blob(len(small), small),
        width=426,
        height=240,
        codec="vp9",
        fmt="WEBM",
    )
    sim.add_subtitle(
        normal,
        "en",
        make_vtt("Welcome aboard.", "The harbour never sleeps."),
        srt=make_srt("Welcome aboard.", "The harbour never sleeps."),
    )
    sim.add_subtitle(normal, "fr", make_vtt("[Musique]", "Bienvenue à bord."), closed_captions=True)
    sim.add_view(
        view_id,
        "Captioning",
        [("Description", "Episode description", "text"), ("Genre", "Genre", "drop_down")],
    )
    form_view_id = FORM_VIEW_ID
    sim.add_view(
        form_view_id,
        "Caption request",
        [
            ("target_languages", "Languages wanted", "drop_down"),
            ("due_date", "Due date", "date"),
            ("notes", "Notes for the captioner", "text"),
        ],
    )
    normal.metadata[view_id] = {
        "Description": {"field_values": [{"value": "Pilot episode, final cut"}]},
        "Genre": {"field_values": [{"value": "Drama"}, {"value": "Coastal"}]},
    }

    transcoding = sim.add_asset("transcoding", "Harbour Lights: Episode 2")
    sim.add_proxy(
        transcoding,
        name="harbour_lights_ep2_720p.mp4",
        blob=Blob(len(video), video, content_type="video/mp4"),
        status="OPEN",
    )
    transcoding.transcode_polls_left = 2

    original_only = sim.add_asset("original-only", "Interview B-roll (no proxy)")
    original = b"ORIGINAL-MOV" * 1000
    sim.add_file(
        original_only,
        name="interview_broll.mov",
        blob=Blob(len(original), original, content_type="video/quicktime"),
        format_id=stable_uuid("original-only/format/ORIGINAL"),
    )

    traversal = sim.add_asset(
        "traversal",
        "../../etc/passwd \\ Ölüm/Смерть: 死亡\x07 ..\\..",
    )
    sim.add_proxy(
        traversal,
        name="../../../escape.mp4",
        blob=Blob(len(video), video, content_type="video/mp4"),
    )
    sim.add_subtitle(traversal, "de", make_vtt("Achtung.", "Ende."))

    large = sim.add_asset("large", "Feature Cut (large proxy)", duration_ms=5_400_000)
    sim.add_proxy(
        large,
        name="feature_1080p.mp4",
        blob=Blob(large_proxy_bytes, seed="large-proxy", content_type="video/mp4"),
        width=1920,
        height=1080,
    )
    sim.add_proxy(
        large,
        name="feature_2160p.mp4",
        blob=Blob(4096, seed="uhd", content_type="video/mp4"),
        width=3840,
        height=2160,
    )

    return Seeded(
        normal=normal.asset["id"],
        transcoding=transcoding.asset["id"],
        original_only=original_only.asset["id"],
        traversal_title=traversal.asset["id"],
        large=large.asset["id"],
        view_id=view_id,
        form_view_id=form_view_id,
    )


def _cue_time(seconds: float, separator: str) -> str:
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    return f"00:00:{whole:02d}{separator}{millis:03d}"


def make_vtt(*lines: str) -> str:
    """A WebVTT track of these lines, one cue a second (for tests and the seed)."""
    cues = [
        f"{_cue_time(i * 1.0, '.')} --> {_cue_time(i * 1.0 + 0.9, '.')}\n{text}"
        for i, text in enumerate(lines)
    ]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def make_srt(*lines: str) -> str:
    """A SubRip file of these lines, timed as `make_vtt` times them."""
    cues = [
        f"{i + 1}\n{_cue_time(i * 1.0, ',')} --> {_cue_time(i * 1.0 + 0.9, ',')}\n{text}"
        for i, text in enumerate(lines)
    ]
    return "\n\n".join(cues) + "\n"

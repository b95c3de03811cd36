"""The Iconik simulator: a local stand-in for Iconik over real HTTP.

For the demo (`caption-bridge demo`), `caption-bridge simulator` and the
tests; it is not part of the service's image. It depends on nothing of the
service's. What tests and the demo use is exported here; the rest is the
simulator's own (core.py says how it is put together).
"""

from simulator.blob import Blob, DownloadGate
from simulator.core import Simulator
from simulator.seed import FORM_VIEW_ID, Seeded, make_srt, make_vtt, sample_video
from simulator.state import ICONIK_LIMITS, SentWebhook, SimAsset, SimUser, track_key
from simulator.users import APPLICATION

__all__ = [
    "APPLICATION",
    "FORM_VIEW_ID",
    "ICONIK_LIMITS",
    "Blob",
    "DownloadGate",
    "Seeded",
    "SentWebhook",
    "SimAsset",
    "SimUser",
    "Simulator",
    "make_srt",
    "make_vtt",
    "sample_video",
    "track_key",
]

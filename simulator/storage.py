"""The simulator's signed-URL storage: the bytes behind Iconik's download links.

Served at `/storage/<key>` on the simulator's own origin, or on a server of
its own (`storage_app()`, as real storage is another origin), wanting no
credentials. Tests make it refuse a link (an expired signature), cut a
download short, or hold one half-way until released (state.py's
`fail_storage_next`, `cut_next_download`, `hold_download`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from simulator.blob import served
from simulator.state import IconikState


def url_expired(sim: IconikState, request: Request) -> bool:
    """Storage's check of a signed URL's `Expires` (counted in `expired_refusals`)."""
    if sim.url_clock is None:
        return False
    try:
        expired = float(request.query_params.get("Expires", "inf")) < sim.url_clock()
    except ValueError:
        expired = True
    sim.expired_refusals += expired
    return expired


async def download(sim: IconikState, request: Request) -> Response:
    """`GET /storage/{key}`: the blob, as cloud storage sends it (or refuses)."""
    key = request.path_params["key"]
    with sim.lock:
        sim.downloads.append(key)
    blob = sim.blobs.get(key)
    if blob is None:
        return Response(b"NoSuchKey", status_code=404)
    with sim.lock:
        statuses = sim.storage_faults.get(key)
        status = statuses.pop(0) if statuses else None
    if status is None and url_expired(sim, request):
        status = 403
    if status is not None:  # an injected refusal, S3-shaped (expired signature: 403)
        return Response(b"<Error><Code>AccessDenied</Code></Error>", status_code=status)
    gate = sim.gates.pop(key, None)
    with sim.lock:
        cut = sim.cuts.pop(key, None)

    return StreamingResponse(
        served(blob, gate, cut), media_type=blob.content_type, headers=blob.headers
    )

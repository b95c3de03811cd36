"""The simulator's metadata view definitions: `GET /API/metadata/v1/views/{view_id}/`.

What the build reads to show a form's fields by their labels on the preview
page (service/work/gather.py `field_labels`). A view is its name and its fields
(`name`, `label`, `field_type`), in the shape of Iconik's
MetadataViewSchema; the responses are checked against it by
tests/system/simulator/test_simulator.py. Tests and the seed add views with state.py's
`add_view`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.state import IconikState, errors


async def get_view(sim: IconikState, request: Request) -> Response:
    view = sim.views.get(request.path_params["view_id"])
    if view is None:
        return errors(404, "Metadata view doesn't exist")
    return JSONResponse(view)


ENDPOINTS = [("/API/metadata/v1/views/{view_id}/", get_view, ["GET"])]

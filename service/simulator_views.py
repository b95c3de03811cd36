"""The simulator's metadata view definitions: `GET /API/metadata/v1/views/{view_id}/`.

What the build reads to show a form's fields by their labels on the preview
page (service/gather.py `field_labels`). A view is its name and its fields
(`name`, `label`, `field_type`), in the shape of Iconik's
MetadataViewSchema; the responses are checked against it by
tests/test_simulator.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import Iterable


class MetadataViews:
    """Mixed into `Simulator`: the metadata views it knows, by id."""

    views: dict[str, dict[str, Any]]
    if TYPE_CHECKING:  # Simulator's: credentials, faults and recording

        def _api(self, handler: Any) -> Any: ...

    def add_view(
        self, view_id: str, name: str, fields: Iterable[tuple[str, str, str]]
    ) -> dict[str, Any]:
        """A view of `fields`, each (name, label, field_type)."""
        view = {
            "id": view_id,
            "name": name,
            "description": None,
            "date_created": "2026-01-05T09:00:00+00:00",
            "date_modified": "2026-01-05T09:00:00+00:00",
            "view_fields": [
                {"name": field, "label": label, "field_type": field_type}
                for field, label, field_type in fields
            ],
        }
        self.views[view_id] = view
        return view

    def view_routes(self) -> list[Route]:
        return [
            Route(
                "/API/metadata/v1/views/{view_id}/",
                self._api(self._get_view),
                methods=["GET"],
            )
        ]

    async def _get_view(self, request: Request) -> Response:
        view = self.views.get(request.path_params["view_id"])
        if view is None:
            return JSONResponse({"errors": ["Metadata view doesn't exist"]}, status_code=404)
        return JSONResponse(view)

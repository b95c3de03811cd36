"""Refresh tests/support/iconik_api.json from Iconik's published OpenAPI specs.

    python -m tests.support.extract_openapi [../shared/iconik-openapi]

The extract holds every (method, path) of the services we call, with the
`/API/<service>` prefix their `servers` entry gives, and, for the operations
the client and the simulator use, the success response schema and request
body schema with every `$ref` inlined. Tests read only the extract, so they
also run where `../shared/` is absent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
EXTRACT = HERE / "iconik_api.json"
DEFAULT_SPECS = HERE.parents[2] / "shared" / "iconik-openapi"

# (method, full path template) of every operation the service or its
# simulator speaks. A test fails if the client uses one not listed here.
USED = [
    ("GET", "/API/assets/v1/assets/{asset_id}/"),
    ("GET", "/API/assets/v1/collections/{collection_id}/contents/"),
    ("GET", "/API/files/v1/assets/{asset_id}/proxies/"),
    ("GET", "/API/files/v1/assets/{asset_id}/proxies/{proxy_id}/download_url/"),
    ("GET", "/API/files/v1/assets/{asset_id}/files/"),
    ("GET", "/API/files/v1/assets/{asset_id}/files/{file_id}/download_url/"),
    ("GET", "/API/files/v1/assets/{asset_id}/subtitles/"),
    ("GET", "/API/files/v1/assets/{asset_id}/subtitles/{language}/webvtt/"),
    ("GET", "/API/files/v1/assets/{asset_id}/subtitles/{language}/cc/webvtt/"),
    ("POST", "/API/files/v1/assets/{asset_id}/formats/"),
    ("POST", "/API/files/v1/assets/{asset_id}/subtitles/"),
    ("PUT", "/API/files/v1/assets/{asset_id}/subtitles/{subtitle_id}/"),
    ("GET", "/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/"),
    ("GET", "/API/metadata/v1/views/{view_id}/"),
    ("PUT", "/API/metadata/v1/{object_type}/{object_id}/views/{view_id}/"),
    ("GET", "/API/metadata/v1/fields/"),
    ("POST", "/API/metadata/v1/fields/"),
    ("GET", "/API/metadata/v1/fields/{field_name}/"),
    ("GET", "/API/metadata/v1/views/"),
    ("POST", "/API/metadata/v1/views/"),
    ("POST", "/API/jobs/v1/jobs/"),
    ("PATCH", "/API/jobs/v1/jobs/{job_id}/"),
    ("GET", "/API/search/v1/search/saved/{search_id}/"),
    ("POST", "/API/search/v1/search/"),
    ("GET", "/API/assets/v1/custom_actions/{context}/"),
    ("POST", "/API/assets/v1/custom_actions/{context}/"),
    ("PUT", "/API/assets/v1/custom_actions/{context}/{action_id}/"),
    ("DELETE", "/API/assets/v1/custom_actions/{context}/{action_id}/"),
    ("GET", "/API/notifications/v1/webhooks/"),
    ("POST", "/API/notifications/v1/webhooks/"),
    ("PUT", "/API/notifications/v1/webhooks/{webhook_id}/"),
    ("DELETE", "/API/notifications/v1/webhooks/{webhook_id}/"),
]

_METHODS = ("get", "post", "put", "patch", "delete")

# Schemas an operation's own does not name but its answers hold: the search
# answers `SearchDocumentSchema`, whose asset documents are `AssetElasticSchema`.
SCHEMAS = [("assets.json", "AssetElasticSchema")]


def _inline(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in seen:  # a recursive schema: stop, accept anything below
                return {}
            return _inline(components[name], components, (*seen, name))
        return {k: _inline(v, components, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components, seen) for v in node]
    return node


def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    for media_type in ("application/json", "text/vtt"):
        if media_type in content and "schema" in content[media_type]:
            return {"media_type": media_type, "schema": content[media_type]["schema"]}
    return None


def extract(specs_dir: Path) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    used = {f"{m} {p}" for m, p in USED}
    for spec_file in sorted(specs_dir.glob("*.json")):
        spec = json.loads(spec_file.read_text())
        prefix = spec["servers"][0]["url"].rstrip("/")
        components = spec.get("components", {}).get("schemas", {})
        for path, item in spec["paths"].items():
            for method in _METHODS:
                if method not in item:
                    continue
                key = f"{method.upper()} {prefix}{path}"
                entry: dict[str, Any] = {"source": spec_file.name}
                if key in used:
                    op = item[method]
                    for status, response in op.get("responses", {}).items():
                        if status.startswith("2"):
                            body = _json_schema(response.get("content"))
                            entry["status"] = int(status)
                            if body:
                                entry["response"] = {
                                    "media_type": body["media_type"],
                                    "schema": _inline(body["schema"], components),
                                }
                            break
                    request = _json_schema(op.get("requestBody", {}).get("content"))
                    if request:
                        entry["request"] = _inline(request["schema"], components)
                operations[key] = entry
    missing = sorted(used - set(operations))
    if missing:
        raise SystemExit(f"operations used but absent from the specs: {missing}")
    schemas = {}
    for spec_name, schema_name in SCHEMAS:
        components = json.loads((specs_dir / spec_name).read_text())["components"]["schemas"]
        schemas[schema_name] = _inline(components[schema_name], components)
    return {"generated_from": "shared/iconik-openapi", "operations": operations, "schemas": schemas}


def main() -> None:
    specs = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPECS
    EXTRACT.write_text(json.dumps(extract(specs), indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXTRACT} ({EXTRACT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

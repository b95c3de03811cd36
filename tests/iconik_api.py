"""Iconik's published API, as extracted into iconik_api.json (see extract_openapi.py)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

EXTRACT = Path(__file__).with_name("iconik_api.json")


@cache
def operations() -> dict[str, Any]:
    return json.loads(EXTRACT.read_text())["operations"]


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    compiled = []
    for key in operations():
        method, template = key.split(" ", 1)
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        compiled.append((re.compile(f"{method} {regex}"), key))
    # Literal segments beat parameters: /proxies/ must not match /{subtitle_id}/.
    compiled.sort(key=lambda item: item[1].count("{"))
    return compiled


def operation_for(method: str, path: str) -> str | None:
    """The spec operation (`METHOD /template/`) a concrete request is, or None."""
    for pattern, key in _patterns():
        if pattern.fullmatch(f"{method} {path}"):
            return key
    return None


def strict_schema(schema: Any) -> Any:
    """OpenAPI 3.0 schema as JSON Schema, refusing properties the spec does not declare."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items() if k not in ("nullable", "example")}
    if schema.get("nullable") and "type" in schema:
        out["type"] = [schema["type"], "null"]
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out

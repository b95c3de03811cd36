"""Iconik's published API, as extracted into iconik_api.json (see extract_openapi.py)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

EXTRACT = Path(__file__).with_name("iconik_api.json")


@cache
def operations() -> dict[str, Any]:
    return json.loads(EXTRACT.read_text())["operations"]


@cache
def schema(name: str) -> Any:
    """A schema the extract keeps beside the operations' (extract_openapi.py SCHEMAS)."""
    return json.loads(EXTRACT.read_text())["schemas"][name]


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


def request_schema(schema: Any) -> Any:
    """A request body's schema, strict: what the server fills in (`readOnly`) is
    neither required nor accepted."""
    return strict_schema(_without_read_only(schema))


def _without_read_only(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_without_read_only(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _without_read_only(v) for k, v in schema.items()}
    properties = schema.get("properties")
    if isinstance(properties, dict):
        read_only = {k for k, v in properties.items() if isinstance(v, dict) and v.get("readOnly")}
        out["properties"] = {k: v for k, v in out["properties"].items() if k not in read_only}
        if "required" in schema:
            out["required"] = [k for k in schema["required"] if k not in read_only]
    return out


def validated(method: str, path: str, response: Any) -> Any:
    """The response, checked against Iconik's published API for that operation."""
    key = operation_for(method, path)
    assert key is not None, f"{method} {path} is not in Iconik's API"
    spec = operations()[key]
    assert response.status_code == spec["status"], (key, response.text)
    expected = spec["response"]
    if expected["media_type"] == "application/json":
        jsonschema.validate(response.json(), strict_schema(expected["schema"]))
    else:
        assert response.headers["content-type"].startswith(expected["media_type"])
    return response

"""vLLM's own description of its API, read as the surface the worker judges jobs by: the paths in /openapi.json, and
for each route a kind uses, the field names of the request schema it takes (`$ref`s followed, and the `anyOf`,
`oneOf` and `allOf` unions that the pooling and audio routes use). JSON Schema is read here, not in the domain."""

from collections.abc import Iterable
from typing import Any

from domain.surface import VllmSurface

MAX_DEPTH = 16  # of `$ref`s and unions followed into one schema: vLLM's are two or three deep


class NotOpenApi(Exception):
    """The document is not an OpenAPI description with paths."""


def surface_of(document: Any, version: str, routes: Iterable[str]) -> VllmSurface:
    """The surface `document` (vLLM's /openapi.json, decoded) describes, for the kinds' `routes`."""
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise NotOpenApi("no paths")
    schemas = _object(_object(document.get("components")).get("schemas"))
    fields = {}
    for route in routes:
        body = _object(_object(_object(paths.get(route)).get("post")).get("requestBody"))
        media = [_object(each).get("schema") for each in _object(body.get("content")).values()]
        names = set().union(*(request_fields(schema, schemas) for schema in media))
        if names:  # a route that describes no request schema is judged by the built-in lists
            fields[route] = frozenset(names)
    return VllmSurface(version, frozenset(paths), fields, built_in=False)


def request_fields(schema: Any, schemas: dict[str, Any], depth: int = 0) -> set[str]:
    """The property names of `schema`: its own, those of each alternative of a union, those its `$ref` names."""
    schema = _object(schema)
    if depth > MAX_DEPTH:
        return set()
    if isinstance(reference := schema.get("$ref"), str):
        return request_fields(schemas.get(reference.rsplit("/", 1)[-1]), schemas, depth + 1)
    names = {name for name in _object(schema.get("properties")) if isinstance(name, str)}
    for union in ("anyOf", "oneOf", "allOf"):
        members = schema.get(union)
        for member in members if isinstance(members, list) else []:
            names |= request_fields(member, schemas, depth + 1)
    return names


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}

"""What the served vLLM takes, as plain data: its version, the paths it serves, and the field names of each route's
request; and a job's fields judged against it. The vLLM adapter reads it from vLLM's own /openapi.json; a vLLM that
serves none (`--disable-fastapi-docs`) is judged by the built-in lists, copied from BUILT_IN_VERSION.

A field the served vLLM takes passes, at the top level or in `extra_body`, whether the worker models it or not (what
it does not model, vLLM types: its 400 names the field); a field it does not take is refused by name, the version
said, since vLLM would drop it with only a warning in its own log.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.errors import ErrorCategory, JobFailed
from domain.payloads import JobPayload

BUILT_IN_VERSION = "0.32.0"  # the vLLM whose request models the payload models copy
Taken = tuple[frozenset[str], str]  # a route's request fields, and the vLLM version that takes them


@dataclass(frozen=True)
class VllmSurface:
    version: str  # vLLM's /version, or "unknown"
    paths: frozenset[str] | None = None  # the paths it serves; None when not known (every route is tried)
    fields: Mapping[str, frozenset[str]] = field(default_factory=dict)  # a route's request fields, by wire name
    built_in: bool = True  # no /openapi.json: the fields are the built-in lists

    def serves(self, route: str) -> bool:
        return self.paths is None or route in self.paths

    def taken(self, route: str) -> Taken | None:
        """The names the route's request takes, and the version; None when the surface does not say (the built-in
        lists judge)."""
        names = None if self.built_in else self.fields.get(route)
        return None if names is None else (names, self.version)


BUILT_IN = VllmSurface("unknown")


def judged_fields(
    model: type[JobPayload], payload: dict[str, Any], taken: frozenset[str], version: str
) -> dict[str, Any]:
    """`payload` as its model is to read it: the fields the served vLLM takes that the model does not know are left
    out (they go to vLLM as given). A field vLLM does not take, at the top level or in `extra_body`, fails the job.
    The worker's own fields and those its rules refuse (streaming, `request_id`, ...) are the model's to judge."""
    refused = [
        f"{prefix}{name}: vLLM {version} does not take this field"
        for prefix, fields in (("", payload), ("extra_body.", _extra(payload)))
        for name in fields
        if _judged(model, name) and model.WIRE_NAMES.get(name, name) not in taken
    ]
    if refused:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, "; ".join(refused))
    known = model.known_names()
    return {name: value for name, value in payload.items() if name in known or not _judged(model, name)}


def _judged(model: type[JobPayload], name: str) -> bool:
    return name not in model.NOT_SENT and name not in model.ruled()


def _extra(payload: dict[str, Any]) -> dict[str, Any]:
    extra = payload.get("extra_body")
    return extra if isinstance(extra, dict) else {}

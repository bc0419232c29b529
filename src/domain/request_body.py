"""A validated payload and the JSON body vLLM gets for it: the payload as given, `extra_body` merged in, and the
kind's defaults for the fields not given."""

import functools
from typing import Any, NamedTuple

from pydantic import ValidationError

from domain.errors import ErrorCategory, JobFailed
from domain.payloads import JobPayload, PayloadLimits
from domain.surface import Taken, judged_fields
from domain.validation_errors import describe_validation_error


class ValidPayload(NamedTuple):
    """A payload that passed its kind's checks (`request`), and the JSON object it came as (`given`)."""

    request: JobPayload
    given: dict[str, Any]


def validate_payload(
    model: type[JobPayload],
    payload: Any,
    echo: bool = True,
    limits: PayloadLimits | None = None,
    taken: Taken | None = None,
) -> ValidPayload:
    """The payload as `model`, or a `JobFailed` naming what is wrong; `echo=False` keeps the values out of it.

    With `taken` (the served vLLM's version and its route's request fields), a field is judged by what that vLLM
    takes; without, by the model alone (the built-in lists), `extra_body` passing as given."""
    if not isinstance(payload, dict):
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"payload must be a JSON object, got {type(payload).__name__}")
    modelled = payload if taken is None else judged_fields(model, payload, *taken)
    try:
        request = model.model_validate(modelled, context={"limits": limits or PayloadLimits()})
    except ValidationError as error:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, describe_validation_error(error, echo)) from None
    return ValidPayload(request, payload)


def request_body(payload: ValidPayload, model: str) -> dict[str, Any]:
    """What vLLM gets, naming the `model` it serves; `null` is the same as leaving a field out."""
    request, given = payload
    extra = given.get("extra_body") or {}
    yielded = request.yielded_defaults()
    body = {
        name: value
        for name, value in defaults(type(request)).items()
        if name not in given and name not in extra and name not in yielded
    }
    body.update((name, value) for name, value in given.items() if value is not None and name not in request.NOT_SENT)
    body.update((name, value) for name, value in extra.items() if value is not None)
    body["model"] = model
    return body


@functools.cache
def defaults(kind: type[JobPayload]) -> dict[str, Any]:
    """The fields with a default of the worker's own, by their JSON names: for chat, the seed's five (temperature,
    max_tokens, top_p, frequency_penalty, presence_penalty); the seed's `model` is the served model's name."""
    return {
        field.alias or name: field.default
        for name, field in kind.model_fields.items()
        if not field.is_required() and field.default is not None and name not in kind.NOT_SENT
    }

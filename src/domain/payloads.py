"""Job payloads: one pydantic model per kind, with the seed's ranges and defaults, and the request it makes."""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.errors import ErrorCategory, JobFailed
from domain.untrusted import shown


class JobPayload(BaseModel):
    """What every kind's payload has; `request_body` is the JSON body sent to vLLM."""

    model_config = ConfigDict(extra="ignore")

    model: str = "default"

    def request_body(self, served_model: str) -> dict[str, Any]:
        return self.model_dump(exclude_none=True) | {"model": served_model}


class ChatMessage(BaseModel):
    """One chat message; extra OpenAI fields (name, tool_calls, ...) pass through."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None


class ChatPayload(JobPayload):
    """A chat completion payload; `extra_body` goes to vLLM as is (e.g. `{"ignore_eos": true}`)."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    max_tokens: Annotated[int, Field(ge=1)] = 512
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    stop: str | list[str] | None = None
    seed: int | None = None
    extra_body: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and not all(stop):
            raise ValueError("stop sequences must not be empty strings")
        return stop

    def request_body(self, served_model: str) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True, exclude={"extra_body"})
        return body | (self.extra_body or {}) | {"model": served_model}


class EmbeddingsPayload(JobPayload):
    """An embeddings payload: `input` is a string or a list of strings."""

    input: str | Annotated[list[str], Field(min_length=1)]


def validate_payload(model: type[JobPayload], payload: Any, echo: bool = True) -> JobPayload:
    """The payload as `model`, or a `JobFailed` naming what is wrong; `echo=False` keeps the values out of it."""
    if not isinstance(payload, dict):
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"payload must be a JSON object, got {type(payload).__name__}")
    _check_strict_json(payload)
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, describe_validation_error(error, echo)) from None


def _check_strict_json(payload: dict[str, Any]) -> None:
    """What vLLM cannot read: NaN and Infinity, and strings that are not valid UTF-8 (lone surrogates)."""
    try:
        json.dumps(payload, allow_nan=False).encode()
    except UnicodeEncodeError:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, "a string holds a lone surrogate (not valid UTF-8)") from None
    except ValueError:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, "NaN and Infinity are not JSON numbers vLLM reads") from None


def describe_validation_error(error: ValidationError, echo: bool = True) -> str:
    """Names each wrong field and why, e.g. `temperature: must be <= 2 (got 3.5)`; the value only with `echo`."""
    problems = []
    for item in error.errors():
        field = shown(".".join(str(part) for part in item["loc"]) or "payload", 100)
        got = f" (got {_echoed(item['input'])})" if echo and item["type"] != "missing" else ""
        problems.append(f"{field}: {item['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(problems)


def _echoed(value: Any) -> str:
    return shown(repr(value[:100] if isinstance(value, str) else value), 60)

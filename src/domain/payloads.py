"""Job payloads: one pydantic model per kind, with the seed's ranges and defaults, and the request it makes."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.errors import ErrorCategory, JobFailed


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


def validate_payload(model: type[JobPayload], payload: Any) -> JobPayload:
    """The payload as `model`, or a `JobFailed` naming what is wrong."""
    if not isinstance(payload, dict):
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"payload must be a JSON object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """Names each wrong field and why, e.g. `temperature: must be <= 2 (got 3.5)`."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "payload"
        got = f" (got {_shorten(item['input'])})" if item["type"] != "missing" else ""
        problems.append(f"{field}: {item['msg']}{got}")
    return "; ".join(problems)


def _shorten(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

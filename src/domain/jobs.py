"""Jobs as the queue sends them: their kind, their payload and its validation."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.errors import ErrorCategory, JobFailed


class JobMode(StrEnum):
    TRANSIENT = "transient"
    PERSISTED = "persisted"


class JobKind(StrEnum):
    CHAT = "openai/chat-completion"
    EMBEDDINGS = "openai/embeddings"


CHAT_KIND_NAMES = frozenset({"chat_completion", "llm_inference", "openai/chat-completion"})
EMBEDDINGS_KIND_NAMES = frozenset({"openai/embeddings"})
SUPPORTED_KIND_NAMES = sorted(CHAT_KIND_NAMES | EMBEDDINGS_KIND_NAMES)


@dataclass(frozen=True)
class Job:
    """One job frame from the queue."""

    job_id: str
    mode: JobMode
    fence_token: int
    config_id: str
    job_type: str | None = None
    payload: dict[str, Any] | None = None
    payload_url: str | None = None
    result_upload_url: str | None = None

    @property
    def persisted(self) -> bool:
        return self.mode is JobMode.PERSISTED


def kind_name(job_type: str | None, payload: dict[str, Any]) -> str | None:
    """The first of the frame's `job_type`, `payload.task`, `payload.job_type`."""
    for name in (job_type, payload.get("task"), payload.get("job_type")):
        if name is not None:
            return str(name)
    return None


def resolve_kind(job_type: str | None, payload: dict[str, Any]) -> tuple[JobKind, str]:
    """The job's kind and the name it was given (the seed's `job_type` in results)."""
    name = kind_name(job_type, payload)
    if name is None or name in CHAT_KIND_NAMES:
        return JobKind.CHAT, name or "chat_completion"
    if name in EMBEDDINGS_KIND_NAMES:
        return JobKind.EMBEDDINGS, name
    supported = ", ".join(SUPPORTED_KIND_NAMES)
    raise JobFailed(ErrorCategory.UNSUPPORTED_JOB_TYPE, f"{name!r} is not supported; supported: {supported}")


class ChatMessage(BaseModel):
    """One chat message; extra OpenAI fields (name, tool_calls, ...) pass through."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None


class ChatPayload(BaseModel):
    """A chat completion payload with the seed's ranges and defaults."""

    model_config = ConfigDict(extra="ignore")

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    model: str = "default"
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    max_tokens: Annotated[int, Field(ge=1)] = 512
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    stop: str | list[str] | None = None
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and not all(stop):
            raise ValueError("stop sequences must not be empty strings")
        return stop


class EmbeddingsPayload(BaseModel):
    """An embeddings payload: `input` is a string or a list of strings."""

    model_config = ConfigDict(extra="ignore")

    input: str | Annotated[list[str], Field(min_length=1)]
    model: str = "default"


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


def validate_payload(kind: JobKind, payload: Any) -> ChatPayload | EmbeddingsPayload:
    """The payload as its kind's model, or a `JobFailed` naming what is wrong."""
    if not isinstance(payload, dict):
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"payload must be a JSON object, got {type(payload).__name__}")
    model = ChatPayload if kind is JobKind.CHAT else EmbeddingsPayload
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise JobFailed(ErrorCategory.INVALID_PAYLOAD, describe_validation_error(error)) from None

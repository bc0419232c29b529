"""Job kinds as one table: each kind's names, payload model, vLLM route and result field.

Adding a kind is one entry in `KINDS` and its payload model; nothing else branches on a kind.
"""

from dataclasses import dataclass
from typing import Any

from domain.errors import ErrorCategory, JobFailed
from domain.payloads import ChatPayload, EmbeddingsPayload, JobPayload


@dataclass(frozen=True)
class JobKind:
    task: str  # the kind's own name, sent back as the result's `task`
    names: frozenset[str]  # what a job may call it: `job_type`, `payload.task` or `payload.job_type`
    payload: type[JobPayload]
    route: str  # vLLM's OpenAI-compatible route
    result_field: str  # the result field that holds vLLM's answer


CHAT = JobKind(
    task="openai/chat-completion",
    names=frozenset({"chat_completion", "llm_inference", "openai/chat-completion"}),
    payload=ChatPayload,
    route="/v1/chat/completions",
    result_field="completion",
)
EMBEDDINGS = JobKind(
    task="openai/embeddings",
    names=frozenset({"openai/embeddings"}),
    payload=EmbeddingsPayload,
    route="/v1/embeddings",
    result_field="embeddings",
)
KINDS = (CHAT, EMBEDDINGS)
DEFAULT_KIND, DEFAULT_NAME = CHAT, "chat_completion"  # a job that names no kind

_BY_NAME = {name: kind for kind in KINDS for name in kind.names}
SUPPORTED_NAMES = ", ".join(sorted(_BY_NAME))


def kind_name(job_type: str | None, payload: dict[str, Any]) -> str | None:
    """The first of the frame's `job_type`, `payload.task`, `payload.job_type`."""
    for name in (job_type, payload.get("task"), payload.get("job_type")):
        if name is not None:
            return str(name)
    return None


def resolve_kind(job_type: str | None, payload: dict[str, Any]) -> tuple[JobKind, str]:
    """The job's kind and the name it was given (the seed's `job_type` in results)."""
    name = kind_name(job_type, payload)
    if name is None:
        return DEFAULT_KIND, DEFAULT_NAME
    kind = _BY_NAME.get(name)
    if kind is None:
        raise JobFailed(ErrorCategory.UNSUPPORTED_JOB_TYPE, f"{name!r} is not supported; supported: {SUPPORTED_NAMES}")
    return kind, name

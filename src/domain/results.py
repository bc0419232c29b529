"""The result objects the worker returns for each kind of job (the seed's format)."""

from datetime import UTC, datetime
from typing import Any

from domain.jobs import JobKind

RESULT_INLINE_LIMIT = 256 * 1024


def processed_at(now: datetime) -> str:
    """ISO 8601 with milliseconds and a `Z`, as in the seed: 2024-01-29T12:00:00.000Z."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def job_result(kind: JobKind, job_type: str, config_id: str, output: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`output` is the OpenAI object vLLM returned: a chat completion or an embeddings list."""
    field = "completion" if kind is JobKind.CHAT else "embeddings"
    return {
        "status": "success",
        "job_type": job_type,
        "task": kind.value,
        "config_id": config_id,
        "processed_at": processed_at(now),
        field: output,
    }

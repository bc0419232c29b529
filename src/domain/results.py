"""The result objects the worker returns (the seed's format), and when a result is uploaded instead."""

from datetime import UTC, datetime
from typing import Any

from domain.kinds import JobKind

RESULT_INLINE_LIMIT = 256 * 1024


def processed_at(now: datetime) -> str:
    """ISO 8601 with milliseconds and a `Z`, as in the seed: 2024-01-29T12:00:00.000Z."""
    return f"{now.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='milliseconds')}Z"


def job_result(kind: JobKind, job_type: str, config_id: str, output: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`output` is the OpenAI object vLLM returned; the kind says which result fields it makes."""
    return {
        "status": "success",
        "job_type": job_type,
        "task": kind.task,
        "config_id": config_id,
        "processed_at": processed_at(now),
    } | kind.result(output)


def upload_instead(size: int, upload_url: str | None) -> bool:
    """A result over 256 KiB goes to the job's `result_upload_url` when it has one."""
    return upload_url is not None and size > RESULT_INLINE_LIMIT

"""Stable categories that start every error the worker sends in a `job_error`."""

from enum import StrEnum


class ErrorCategory(StrEnum):
    INVALID_PAYLOAD = "invalid_payload"
    UNSUPPORTED_JOB_TYPE = "unsupported_job_type"
    INFERENCE_ERROR = "inference_error"
    INFERENCE_TIMEOUT = "inference_timeout"
    VLLM_UNAVAILABLE = "vllm_unavailable"
    SHUTTING_DOWN = "shutting_down"
    OVER_CAPACITY = "over_capacity"


def job_error_text(category: ErrorCategory, reason: str) -> str:
    """The error string of a `job_error`: the category, a colon, the reason."""
    return f"{category.value}: {reason}"


class JobFailed(Exception):
    """A job ended without a result; its message is the text sent to the queue."""

    def __init__(self, category: ErrorCategory, reason: str) -> None:
        super().__init__(job_error_text(category, reason))
        self.category = category
        self.reason = reason

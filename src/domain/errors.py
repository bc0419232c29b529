"""Why a job fails: the stable categories of `job_error`, and which failure falls in which."""

from enum import StrEnum


class ErrorCategory(StrEnum):
    INVALID_PAYLOAD = "invalid_payload"
    UNSUPPORTED_JOB_TYPE = "unsupported_job_type"
    INFERENCE_ERROR = "inference_error"
    INFERENCE_TIMEOUT = "inference_timeout"
    VLLM_UNAVAILABLE = "vllm_unavailable"
    VLLM_STALLED = "vllm_stalled"  # vLLM answers /health but makes no progress (CASOLA_VLLM_STALL_TIMEOUT)
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


class InferenceUnavailable(Exception):
    """vLLM could not be reached or is not serving."""


class InferenceRejected(Exception):
    """vLLM answered the request with an error; the message is vLLM's reason, `status` its HTTP status."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class PayloadTransferFailed(Exception):
    """A payload could not be fetched, or a result not uploaded; the message says why."""


CATEGORY_OF: dict[type[Exception], ErrorCategory] = {
    InferenceUnavailable: ErrorCategory.VLLM_UNAVAILABLE,
    InferenceRejected: ErrorCategory.INFERENCE_ERROR,
    PayloadTransferFailed: ErrorCategory.INVALID_PAYLOAD,
}


def job_failure(error: Exception, job_timeout: float) -> JobFailed:
    """The `JobFailed` a job ends with when `error` escapes it."""
    if isinstance(error, JobFailed):
        return error
    if isinstance(error, TimeoutError):
        return JobFailed(ErrorCategory.INFERENCE_TIMEOUT, f"no answer within {job_timeout:g} s (CASOLA_JOB_TIMEOUT)")
    category = CATEGORY_OF.get(type(error))
    if category is ErrorCategory.INVALID_PAYLOAD:
        return JobFailed(category, f"payload_url: {error}")
    if category is not None:
        return JobFailed(category, str(error))
    return JobFailed(ErrorCategory.INFERENCE_ERROR, f"{type(error).__name__}: {error}")

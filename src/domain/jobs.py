"""Jobs as the queue sends them."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.untrusted import header_safe

RESULT_INLINE_LIMIT = 256 * 1024


class JobMode(StrEnum):
    TRANSIENT = "transient"
    PERSISTED = "persisted"


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

    @property
    def request_id(self) -> str:
        """The job's id as an HTTP header may carry it: vLLM's `X-Request-Id`, so its log names the job."""
        return header_safe(self.job_id)


def upload_instead(size: int, upload_url: str | None) -> bool:
    """A result over 256 KiB goes to the job's `result_upload_url` when it has one."""
    return upload_url is not None and size > RESULT_INLINE_LIMIT

"""Jobs as the queue sends them."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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

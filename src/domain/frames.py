"""Frames of the queue socket: what the queue sends, parsed into events; what the worker sends, typed and encoded.

This module is the only place that knows the wire format.
"""

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.jobs import Job, JobMode
from domain.payloads import describe_validation_error

# The queue's frames.


class MalformedFrame(Exception):
    """A frame that is not JSON, not an object, or lacks a field its type needs."""


@dataclass(frozen=True)
class JobRevoked:
    job_id: str
    reason: str


@dataclass(frozen=True)
class QueueError:
    message: str


@dataclass(frozen=True)
class UnknownFrame:
    type: str


InboundFrame = Job | JobRevoked | QueueError | UnknownFrame


class _JobFrame(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: str
    mode: Literal["transient", "persisted"]
    config_id: str = ""
    fence_token: int = 0
    payload: Any = None
    payload_url: str | None = None
    result_upload_url: str | None = None
    job_type: str | None = None


class _JobRevokedFrame(BaseModel):
    job_id: str
    reason: str = ""


class _ErrorFrame(BaseModel):
    message: str = ""


def parse_frame(text: str | bytes) -> InboundFrame:
    """The frame as an event, or `MalformedFrame` saying what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedFrame(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise MalformedFrame(f"not a JSON object but {type(data).__name__}")
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        raise MalformedFrame("no string field 'type'")
    try:
        return _parse_typed(frame_type, data)
    except ValidationError as error:
        raise MalformedFrame(f"{frame_type}: {describe_validation_error(error)}") from None


def _parse_typed(frame_type: str, data: dict[str, Any]) -> InboundFrame:
    if frame_type == "job":
        return _job_from(_JobFrame.model_validate(data))
    if frame_type == "job_revoked":
        revoked = _JobRevokedFrame.model_validate(data)
        return JobRevoked(revoked.job_id, revoked.reason)
    if frame_type == "error":
        return QueueError(_ErrorFrame.model_validate(data).message)
    return UnknownFrame(frame_type)


def _job_from(frame: _JobFrame) -> Job:
    if frame.payload is None and frame.payload_url is None:
        raise MalformedFrame("job: neither 'payload' nor 'payload_url' given")
    return Job(
        job_id=frame.job_id,
        mode=JobMode(frame.mode),
        fence_token=frame.fence_token,
        config_id=frame.config_id,
        job_type=frame.job_type,
        payload=frame.payload,
        payload_url=frame.payload_url,
        result_upload_url=frame.result_upload_url,
    )


# The worker's frames.


@dataclass(frozen=True)
class Register:
    TYPE: ClassVar[str] = "register"
    worker_id: str
    config_id: str
    capacity: int


@dataclass(frozen=True)
class JobResult:
    TYPE: ClassVar[str] = "job_result"
    job_id: str
    fence_token: int
    result: dict[str, Any]


@dataclass(frozen=True)
class JobResultRef:
    """The result was PUT to the job's `result_upload_url`."""

    TYPE: ClassVar[str] = "job_result_ref"
    job_id: str
    fence_token: int


@dataclass(frozen=True)
class JobError:
    TYPE: ClassVar[str] = "job_error"
    job_id: str
    fence_token: int
    error: str


@dataclass(frozen=True)
class JobProgress:
    """A lease renewal; the next one says the same, so it may be dropped when the outbox is full."""

    TYPE: ClassVar[str] = "job_progress"
    job_id: str
    fence_token: int
    status_message: str | None = None


@dataclass(frozen=True)
class Drain:
    TYPE: ClassVar[str] = "drain"


@dataclass(frozen=True)
class Pause:
    TYPE: ClassVar[str] = "pause"


@dataclass(frozen=True)
class Resume:
    TYPE: ClassVar[str] = "resume"


OutboundFrame = Register | JobResult | JobResultRef | JobError | JobProgress | Drain | Pause | Resume


def encode(frame: OutboundFrame) -> str:
    """The frame as the JSON text the queue reads; fields that are None are left out."""
    fields = {name: value for name, value in vars(frame).items() if value is not None}
    return json.dumps({"type": frame.TYPE, **fields})


def droppable(frame: OutboundFrame) -> bool:
    """Whether the frame may be dropped first when the outbox is full."""
    return isinstance(frame, JobProgress)

"""Frames of the queue socket: what the queue sends, parsed into events; what the worker sends, typed and encoded.

This module is the only place that knows the wire format.
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from domain.jobs import Job, JobMode
from domain.untrusted import loggable
from domain.urls import parse_http_url
from domain.validation_errors import describe_validation_error

MAX_FENCE_TOKEN = 2**63 - 1  # int64, as the queue stores it
MAX_JOB_ID_LENGTH = 256
JobId = Annotated[str, Field(min_length=1, max_length=MAX_JOB_ID_LENGTH)]
FenceToken = Annotated[int, Field(strict=True, ge=0, le=MAX_FENCE_TOKEN)]
Mode = Literal["transient", "persisted"]
T = TypeVar("T")
_JOB_ID, _FENCE_TOKEN, _MODE = TypeAdapter(JobId), TypeAdapter(FenceToken), TypeAdapter(Mode)

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


@dataclass(frozen=True)
class BadJob:
    """A job frame with a readable id and mode but a field that is wrong: the job fails, the frame is not lost."""

    job_id: str
    mode: JobMode
    fence_token: int
    reason: str


InboundFrame = Job | JobRevoked | QueueError | UnknownFrame | BadJob


class _JobFrame(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: JobId
    mode: Mode
    config_id: str = ""
    fence_token: FenceToken = 0
    payload: Any = None
    payload_url: str | None = None
    result_upload_url: str | None = None
    job_type: str | None = None

    @field_validator("payload_url", "result_upload_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parse_http_url(url)
        return url


class _JobRevokedFrame(BaseModel):
    job_id: JobId
    reason: str = ""


class _ErrorFrame(BaseModel):
    message: str = ""


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def parse_frame(text: str | bytes) -> InboundFrame:
    """The frame as an event, or `MalformedFrame` saying what is wrong.

    Strict JSON, decoded once (msgspec): nothing after it checks a payload for NaN or invalid text again.
    What only a lenient reader takes (NaN, Infinity, lone surrogates, numbers past a double) fails its job.
    """
    not_strict = None
    try:
        data = _decode(text)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        data, not_strict = _read_leniently(text)
    if not isinstance(data, dict):
        raise MalformedFrame(f"not a JSON object but {type(data).__name__}")
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        raise MalformedFrame("no string field 'type'")
    try:
        if not_strict is not None and frame_type == "job":
            raise MalformedFrame(not_strict)
        return _parse_typed(frame_type, data)
    except (ValidationError, MalformedFrame) as error:
        reason = describe_validation_error(error) if isinstance(error, ValidationError) else str(error)
        if frame_type == "job" and (bad := _bad_job(data, reason)) is not None:
            return bad
        raise MalformedFrame(f"{frame_type}: {reason}") from None


def _read_leniently(text: str | bytes) -> tuple[Any, str]:
    """What strict decoding refused, read by the standard library to tell why; `MalformedFrame` if not JSON."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedFrame(f"not JSON: {error}") from None
    except RecursionError:
        raise MalformedFrame("not JSON the worker reads: nested too deeply") from None
    try:
        json.dumps(data, allow_nan=False, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return data, "a string holds a lone surrogate (not valid UTF-8)"
    except ValueError:
        return data, "NaN and Infinity are not JSON numbers vLLM reads"
    return data, "not strict JSON"


def _bad_job(data: dict[str, Any], reason: str) -> BadJob | None:
    """The job as a `BadJob` when its id and mode can be read, so a held transient request is answered."""
    job_id = _readable(_JOB_ID, data.get("job_id"))
    mode = _readable(_MODE, data.get("mode"))
    if job_id is None or mode is None:
        return None
    fence_token = _readable(_FENCE_TOKEN, data.get("fence_token"))
    return BadJob(job_id, JobMode(mode), fence_token or 0, loggable(reason, 500))


def _readable(field: TypeAdapter[T], value: Any) -> T | None:
    """`value` if it passes the same rule as in a job frame, else None."""
    try:
        return field.validate_python(value)
    except ValidationError:
        return None


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
        raise MalformedFrame("neither 'payload' nor 'payload_url' given")
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


def encode(frame: OutboundFrame | dict[str, Any]) -> bytes:
    """The frame as the UTF-8 JSON text the other side reads; fields that are None are left out."""
    if isinstance(frame, dict):
        message = frame
    else:
        message = {"type": frame.TYPE} | {name: value for name, value in vars(frame).items() if value is not None}
    try:
        return _encode(message)
    except UnicodeEncodeError:  # a lone surrogate from a leniently read frame: escaped, as JSON allows
        return json.dumps(message).encode()


# The queue's side, as the local queue and `worker-vllm dev` speak it: the frames they send to workers.


def queue_job(job_id: str, mode: str, fence_token: int, config_id: str, job_type: str, payload: Any) -> dict[str, Any]:
    """A `job` frame, for `encode`."""
    return {"type": "job", "job_id": job_id, "mode": mode, "config_id": config_id, "fence_token": fence_token,
            "job_type": job_type, "payload": payload}  # fmt: skip


def queue_revoke(job_id: str, reason: str) -> dict[str, Any]:
    """A `job_revoked` frame, for `encode`."""
    return {"type": "job_revoked", "job_id": job_id, "reason": reason}


def droppable(frame: OutboundFrame) -> bool:
    """Whether the frame may be dropped first when the outbox is full."""
    return isinstance(frame, JobProgress)

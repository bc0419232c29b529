"""Frames of the queue socket: parsing what the queue sends, building what the worker sends."""

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.jobs import Job, JobMode, describe_validation_error


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


def register(worker_id: str, config_id: str, capacity: int) -> dict[str, Any]:
    return {"type": "register", "worker_id": worker_id, "config_id": config_id, "capacity": capacity}


def job_result(job_id: str, fence_token: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "job_result", "job_id": job_id, "fence_token": fence_token, "result": result}


def job_result_ref(job_id: str, fence_token: int) -> dict[str, Any]:
    return {"type": "job_result_ref", "job_id": job_id, "fence_token": fence_token}


def job_error(job_id: str, fence_token: int, error: str) -> dict[str, Any]:
    return {"type": "job_error", "job_id": job_id, "fence_token": fence_token, "error": error}


def job_progress(job_id: str, fence_token: int, status_message: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "job_progress", "job_id": job_id, "fence_token": fence_token}
    if status_message is not None:
        frame["status_message"] = status_message
    return frame


def control(frame_type: Literal["drain", "pause", "resume"]) -> dict[str, Any]:
    return {"type": frame_type}

"""Parsing the queue's frames: jobs, revokes, errors, unknown types and malformed input."""

import pytest

from domain.frames import JobRevoked, MalformedFrame, QueueError, UnknownFrame, parse_frame
from domain.jobs import Job, JobMode


def test_a_job_frame() -> None:
    frame = parse_frame(
        '{"type": "job", "job_id": "j1", "mode": "persisted", "config_id": "c", "fence_token": 3,'
        ' "payload": {"messages": []}, "result_upload_url": "http://x/r", "job_type": "chat_completion"}'
    )
    assert frame == Job("j1", JobMode.PERSISTED, 3, "c", "chat_completion", {"messages": []}, None, "http://x/r")


def test_other_frames() -> None:
    assert parse_frame('{"type": "job_revoked", "job_id": "j1", "reason": "gone"}') == JobRevoked("j1", "gone")
    assert parse_frame('{"type": "error", "message": "bad"}') == QueueError("bad")
    assert parse_frame('{"type": "welcome", "x": 1}') == UnknownFrame("welcome")


MALFORMED = [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object but list"),
    ('{"job_id": "j1"}', "no string field 'type'"),
    ('{"type": 5}', "no string field 'type'"),
    ('{"type": "job", "mode": "transient", "payload": {}}', "job: job_id: Field required"),
    ('{"type": "job", "job_id": "j", "mode": "forever", "payload": {}}', "job: mode: Input should be"),
    ('{"type": "job", "job_id": "j", "mode": "transient", "fence_token": "x", "payload": {}}', "job: fence_token"),
    ('{"type": "job", "job_id": "j", "mode": "transient"}', "neither 'payload' nor 'payload_url'"),
    ('{"type": "job_revoked"}', "job_revoked: job_id: Field required"),
    (b"\xff\xfe", "not JSON"),
]


@pytest.mark.parametrize(("text", "why"), MALFORMED)
def test_malformed_frames_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(MalformedFrame, match=why.replace("(", r"\(")):
        parse_frame(text)

"""Parsing the queue's frames: jobs, revokes, errors, unknown types and malformed input."""

import json

import pytest

from domain.frames import (
    BadJob,
    JobError,
    JobProgress,
    JobResult,
    JobRevoked,
    MalformedFrame,
    QueueError,
    UnknownFrame,
    encode,
    parse_frame,
)
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


def job_frame_text(job_id: str) -> str:
    return json.dumps({"type": "job", "job_id": job_id, "mode": "transient", "payload": {}})


MALFORMED = [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object but list"),
    ('{"job_id": "j1"}', "no string field 'type'"),
    ('{"type": 5}', "no string field 'type'"),
    ('{"type": "job", "mode": "transient", "payload": {}}', "job: job_id: Field required"),
    ('{"type": "job", "job_id": "j", "mode": "forever", "payload": {}}', "job: mode: Input should be"),
    ('{"type": "job", "job_id": "", "mode": "transient", "payload": {}}', "job: job_id: String should have at least"),
    (
        '{"type": "job", "job_id": "' + "x" * 257 + '", "mode": "transient", "payload": {}}',
        "job: job_id: String should",
    ),
    ('{"type": "job", "job_id": 5, "mode": "transient", "payload": {}}', "job: job_id: Input should be a valid string"),
    ("[" * 1000 + "]" * 1000, "nested too deeply"),
    ('{"type": "job", "job_id": "j", "payload": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ('{"type": "job_revoked", "job_id": ""}', "job_revoked: job_id: String should have at least 1"),
    ('{"type": "job_revoked"}', "job_revoked: job_id: Field required"),
    (b"\xff\xfe", "not JSON"),
]


@pytest.mark.parametrize(("text", "why"), MALFORMED)
def test_malformed_frames_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(MalformedFrame, match=why.replace("(", r"\(")):
        parse_frame(text)


def job_frame(**fields: object) -> str:
    return json.dumps({"type": "job", "job_id": "j", "mode": "transient", "payload": {}} | fields)


BAD_JOBS = [
    # (fields over a valid transient job, fence token the error carries, start of the reason)
    ({"fence_token": "7"}, 0, "fence_token: Input should be a valid integer (got '7')"),
    ({"fence_token": 3.0}, 0, "fence_token: Input should be a valid integer"),
    ({"fence_token": True}, 0, "fence_token: Input should be a valid integer"),
    ({"fence_token": None}, 0, "fence_token: Input should be a valid integer"),
    ({"fence_token": -5}, 0, "fence_token: Input should be greater than or equal to 0"),
    ({"fence_token": 2**80}, 0, "fence_token: Input should be less than or equal to 9223372036854775807"),
    ({"fence_token": 4, "job_type": 5}, 4, "job_type: Input should be a valid string"),
    ({"fence_token": 4, "payload": None}, 4, "neither 'payload' nor 'payload_url' given"),
    ({"payload_url": "http://[::1"}, 0, "payload_url: has a malformed IPv6 host"),
    ({"payload_url": "http://0177.0.0.1/p"}, 0, "payload_url: host '0177.0.0.1' is not a dotted-quad IPv4 address"),
    ({"result_upload_url": "http://127.1/r"}, 0, "result_upload_url: host '127.1' is not a dotted-quad IPv4 address"),
    ({"result_upload_url": "http://x\\@y/r"}, 0, "result_upload_url: must not hold a backslash"),
    ({"payload_url": "file:///etc/passwd"}, 0, "payload_url: must be an http:// or https:// URL"),
    ({"result_upload_url": "ftp://x/y"}, 0, "result_upload_url: must be an http:// or https:// URL"),
    ({"fence_token": 2, "payload": {"temperature": float("nan")}}, 2, "NaN and Infinity are not JSON numbers"),
    ({"payload": {"extra_body": {"x": float("inf")}}}, 0, "NaN and Infinity are not JSON numbers vLLM reads"),
    ({"payload": {"messages": [{"role": "user", "content": "\ud800"}]}}, 0, "a string holds a lone surrogate"),
    ({"payload": {"seed": 1e308 * 10}}, 0, "NaN and Infinity are not JSON numbers vLLM reads"),
]


@pytest.mark.parametrize(("fields", "fence", "reason"), BAD_JOBS)
def test_a_job_with_a_readable_id_and_a_bad_field_is_a_bad_job(
    fields: dict[str, object], fence: int, reason: str
) -> None:
    bad = parse_frame(job_frame(**fields))
    assert isinstance(bad, BadJob) and (bad.job_id, bad.mode, bad.fence_token) == ("j", JobMode.TRANSIENT, fence)
    assert bad.reason.startswith(reason), bad.reason


def test_fence_tokens_up_to_int64_are_accepted() -> None:
    assert parse_frame(job_frame(fence_token=2**63 - 1)).fence_token == 2**63 - 1  # type: ignore[union-attr]
    assert parse_frame(job_frame(fence_token=0)).fence_token == 0  # type: ignore[union-attr]


def test_credentials_in_a_bad_url_are_not_repeated() -> None:
    bad = parse_frame(job_frame(payload_url="https://user:hunter2@x y/?token=abc"))
    assert isinstance(bad, BadJob) and "hunter2" not in bad.reason and "abc" not in bad.reason


def test_a_frame_sent_back_keeps_a_lone_surrogate_escaped() -> None:
    """The encoder never fails a frame: text that is not valid UTF-8 goes out escaped, as JSON allows."""
    wire = encode(JobError("j\ud800", 1, "bad"))
    assert json.loads(wire.decode("utf-8"))["job_id"] == "j\ud800"


def test_outbound_frames_are_compact_utf8_json_without_none_fields() -> None:
    assert encode(JobProgress("j", 3)) == b'{"type":"job_progress","job_id":"j","fence_token":3}'
    assert json.loads(encode(JobResult("é", 1, {"text": "Paris ✓"}))) == {
        "type": "job_result", "job_id": "é", "fence_token": 1, "result": {"text": "Paris ✓"}
    }  # fmt: skip

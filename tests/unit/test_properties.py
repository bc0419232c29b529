"""Generated hostile input at the frame parser, payload validation and the service's message handler."""

import asyncio
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import JobFailed
from domain.frames import MalformedFrame, parse_frame
from domain.kinds import CHAT, EMBEDDINGS
from domain.request_body import request_body, validate_payload
from domain.untrusted import LOGGABLE_LIMIT, loggable
from tests.unit.test_service import Bed, bed

THOROUGH = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
texts = st.text(alphabet=st.characters(codec=None), max_size=300) | st.sampled_from(
    ["\n", "\x1b[31m", "\x00", "\ud800"]
)
numbers = st.integers(min_value=-(2**80), max_value=2**80) | st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=20
)
FIELDS = ["type", "job_id", "mode", "fence_token", "payload", "payload_url", "result_upload_url", "job_type", "reason"]
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["job", "job_revoked", "error", "other"]) | texts},
    optional={name: json_values | st.sampled_from(["transient", "persisted", "j1"]) for name in FIELDS[1:]},
)
deep = st.integers(min_value=1, max_value=5000).map(lambda depth: "[" * depth + "]" * depth)


def dumped(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@THOROUGH
@given(st.one_of(texts, st.binary(max_size=300), deep, json_values.map(dumped), frame_like.map(dumped)))
def test_the_parser_raises_only_malformed_frame(text: str | bytes) -> None:
    try:
        parse_frame(text)
    except MalformedFrame as malformed:
        assert len(str(malformed)) < 10_000


@THOROUGH
@given(
    st.dictionaries(
        st.sampled_from(["messages", "temperature", "max_tokens", "stop", "input", "extra_body"]) | texts, json_values
    )
)
def test_payload_validation_raises_only_job_failed_with_a_bounded_reason(payload: dict[str, Any]) -> None:
    for kind in (CHAT, EMBEDDINGS):
        try:
            request_body(validate_payload(kind.payload, payload), "default")
        except JobFailed as failed:
            assert len(str(failed)) < 20_000


@THOROUGH
@given(st.one_of(texts, json_values, st.binary(max_size=100)), st.integers(min_value=10, max_value=500))
def test_shown_is_one_bounded_line(value: object, limit: int) -> None:
    text = loggable(value, limit)
    assert "\n" not in text and "\x1b" not in text and "\x00" not in text
    assert len(text) <= 6 * limit + 40  # each character escaped at most as \\uXXXX, plus the length note
    text.encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(frame_like.map(dumped), deep, texts), min_size=1, max_size=10))
async def test_the_message_handler_takes_anything_and_the_log_stays_bounded(
    caplog: pytest.LogCaptureFixture, messages: list[str]
) -> None:
    caplog.clear()
    running: Bed = bed(CASOLA_MAX_JOBS=64)
    running.service.worker.transition(running.service.worker.state.WAITING_FOR_VLLM)
    running.service.worker.transition(running.service.worker.state.CONNECTING)
    running.queue._on_message = running.service.link.on_message  # as if connected, without the background loops
    with caplog.at_level(logging.INFO):
        async with asyncio.TaskGroup() as jobs:
            running.service._group = jobs
            for message in messages:
                running.queue.deliver(message)
    assert sum(len(record.getMessage()) for record in caplog.records) < len(messages) * 4 * (LOGGABLE_LIMIT + 600)

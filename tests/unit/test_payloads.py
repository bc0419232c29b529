"""Payload validation: every seed field at and past its bounds, errors that name the field."""

from typing import Any

import pytest

from domain.errors import JobFailed
from domain.kinds import CHAT, EMBEDDINGS, JobKind, resolve_kind
from domain.payloads import ChatPayload, EmbeddingsPayload, validate_payload

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": MESSAGES, **fields}


def test_seed_defaults() -> None:
    payload = validate_payload(CHAT.payload, chat())
    assert isinstance(payload, ChatPayload)
    assert (payload.model, payload.temperature, payload.max_tokens, payload.top_p) == ("default", 0.7, 512, 1.0)
    assert (payload.frequency_penalty, payload.presence_penalty, payload.stop) == (0.0, 0.0, None)


ACCEPTED = [
    ("temperature", 0.0),
    ("temperature", 2.0),
    ("max_tokens", 1),
    ("top_p", 1.0),
    ("top_p", 0.001),
    ("frequency_penalty", -2.0),
    ("frequency_penalty", 2.0),
    ("presence_penalty", -2.0),
    ("presence_penalty", 2.0),
    ("stop", "\n\n"),
    ("stop", ["\n\n", "END"]),
    ("model", "anything"),
]
REJECTED = [
    ("temperature", -0.01, "greater than or equal to 0"),
    ("temperature", 2.01, "less than or equal to 2"),
    ("temperature", "hot", "valid number"),
    ("max_tokens", 0, "greater than or equal to 1"),
    ("max_tokens", 1.5, "valid integer"),
    ("top_p", 0.0, "greater than 0"),
    ("top_p", 1.01, "less than or equal to 1"),
    ("frequency_penalty", -2.01, "greater than or equal to -2"),
    ("frequency_penalty", 2.01, "less than or equal to 2"),
    ("presence_penalty", -2.01, "greater than or equal to -2"),
    ("presence_penalty", 2.01, "less than or equal to 2"),
    ("stop", 5, "valid string"),
    ("stop", [""], "must not be empty"),
]


@pytest.mark.parametrize(("field", "value"), ACCEPTED)
def test_values_at_the_bounds_are_accepted(field: str, value: Any) -> None:
    payload = validate_payload(CHAT.payload, chat(**{field: value}))
    assert getattr(payload, field) == value


@pytest.mark.parametrize(("field", "value", "why"), REJECTED)
def test_values_past_the_bounds_name_the_field(field: str, value: Any, why: str) -> None:
    with pytest.raises(JobFailed) as failed:
        validate_payload(CHAT.payload, chat(**{field: value}))
    text = str(failed.value)
    assert text.startswith(f"invalid_payload: {field}")
    assert why in text


MESSAGE_PROBLEMS = [
    ({}, "messages: Field required"),
    ({"messages": []}, "messages: List should have at least 1 item"),
    ({"messages": "hi"}, "messages: Input should be a valid list"),
    ({"messages": [{"content": "hi"}]}, "messages.0.role: Field required"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role: Input should be"),
]


@pytest.mark.parametrize(("payload", "error"), MESSAGE_PROBLEMS)
def test_bad_messages(payload: dict[str, Any], error: str) -> None:
    with pytest.raises(JobFailed) as failed:
        validate_payload(CHAT.payload, payload)
    assert str(failed.value).startswith(f"invalid_payload: {error}")


def test_a_payload_that_is_not_an_object() -> None:
    with pytest.raises(JobFailed, match="invalid_payload: payload must be a JSON object, got list"):
        validate_payload(CHAT.payload, [1, 2])


def test_embeddings_payload() -> None:
    assert isinstance(validate_payload(EMBEDDINGS.payload, {"input": "a"}), EmbeddingsPayload)
    assert validate_payload(EMBEDDINGS.payload, {"input": ["a", "b"]}).input == ["a", "b"]  # type: ignore[union-attr]
    with pytest.raises(JobFailed, match="invalid_payload: input"):
        validate_payload(EMBEDDINGS.payload, {"input": []})


KINDS = [
    (None, {}, CHAT, "chat_completion"),
    ("chat_completion", {}, CHAT, "chat_completion"),
    ("llm_inference", {}, CHAT, "llm_inference"),
    (None, {"task": "openai/chat-completion"}, CHAT, "openai/chat-completion"),
    (None, {"job_type": "openai/embeddings"}, EMBEDDINGS, "openai/embeddings"),
    ("openai/embeddings", {"task": "chat_completion"}, EMBEDDINGS, "openai/embeddings"),
    (None, {"task": "openai/embeddings", "job_type": "chat_completion"}, EMBEDDINGS, "openai/embeddings"),
]


@pytest.mark.parametrize(("job_type", "payload", "kind", "name"), KINDS)
def test_kind_is_the_first_of_job_type_task_and_payload_job_type(
    job_type: str | None, payload: dict[str, Any], kind: JobKind, name: str
) -> None:
    assert resolve_kind(job_type, payload) == (kind, name)


def test_an_unknown_kind_names_itself_and_the_supported_ones() -> None:
    with pytest.raises(JobFailed) as failed:
        resolve_kind("image_generation", {})
    assert str(failed.value) == (
        "unsupported_job_type: 'image_generation' is not supported; supported: "
        "chat_completion, llm_inference, openai/chat-completion, openai/embeddings"
    )

"""Payload validation: every field at and past its bounds, errors that name the field, nothing dropped."""

from typing import Any

import pytest

from domain.errors import InferenceRejected, JobFailed
from domain.generation_payloads import ChatPayload
from domain.kinds import CHAT, COMPLETION, EMBEDDINGS, KINDS, RERANK, SCORE, JobKind, resolve_kind
from domain.payloads import EmbeddingsPayload, PayloadLimits
from domain.request_body import request_body, validate_payload

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": MESSAGES, **fields}


def test_seed_defaults() -> None:
    payload = validate_payload(CHAT.payload, chat()).request
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
    ("stop", [""], "at least 1 character"),
]


@pytest.mark.parametrize(("field", "value"), ACCEPTED)
def test_values_at_the_bounds_are_accepted(field: str, value: Any) -> None:
    payload = validate_payload(CHAT.payload, chat(**{field: value})).request
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
    assert isinstance(validate_payload(EMBEDDINGS.payload, {"input": "a"}).request, EmbeddingsPayload)
    assert validate_payload(EMBEDDINGS.payload, {"input": ["a", "b"]}).request.input == ["a", "b"]  # type: ignore[union-attr]
    with pytest.raises(JobFailed, match="invalid_payload: input"):
        validate_payload(EMBEDDINGS.payload, {"input": []})


NAMES = [
    (None, {}, CHAT, "chat_completion"),
    ("chat_completion", {}, CHAT, "chat_completion"),
    ("llm_inference", {}, CHAT, "llm_inference"),
    (None, {"task": "openai/chat-completion"}, CHAT, "openai/chat-completion"),
    (None, {"job_type": "openai/embeddings"}, EMBEDDINGS, "openai/embeddings"),
    ("openai/embeddings", {"task": "chat_completion"}, EMBEDDINGS, "openai/embeddings"),
    (None, {"task": "openai/embeddings", "job_type": "chat_completion"}, EMBEDDINGS, "openai/embeddings"),
    ("openai/completion", {}, COMPLETION, "openai/completion"),
    (None, {"task": "vllm/score"}, SCORE, "vllm/score"),
    ("vllm/rerank", {}, RERANK, "vllm/rerank"),
]


@pytest.mark.parametrize(("job_type", "payload", "kind", "name"), NAMES)
def test_kind_is_the_first_of_job_type_task_and_payload_job_type(
    job_type: str | None, payload: dict[str, Any], kind: JobKind, name: str
) -> None:
    assert resolve_kind(job_type, payload) == (kind, name)


def test_an_unknown_kind_names_itself_and_the_supported_ones() -> None:
    with pytest.raises(JobFailed) as failed:
        resolve_kind("image_generation", {})
    assert str(failed.value) == (
        "unsupported_job_type: 'image_generation' is not supported; supported: "
        "anthropic/messages, chat_completion, llm_inference, openai/audio-speech, openai/audio-transcription, "
        "openai/audio-translation, openai/chat-batch, openai/chat-completion, openai/completion, openai/embeddings, "
        "openai/responses, vllm/classify, vllm/detokenize, vllm/rerank, vllm/score, vllm/tokenize"
    )


TOOL = {"type": "function", "function": {"name": "get_city", "parameters": {"type": "object"}, "strict": True}}
CHAT_FIELDS = [  # each OpenAI and vLLM chat field the worker takes, with a value vLLM accepts
    {"model": "default"},
    {"frequency_penalty": 0.5, "presence_penalty": -0.5},
    {"logit_bias": {"50256": -100, "11": 2.5}},
    {"logprobs": True, "top_logprobs": 20},
    {"max_completion_tokens": 16},
    {"n": 8},
    {"response_format": {"type": "text"}},
    {"response_format": {"type": "json_object"}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "c", "strict": True, "description": "d"}}},
    {"response_format": {"type": "structural_tag", "format": {"type": "triggered_tags"}}},
    {"seed": -(2**63)},
    {"seed": 2**63 - 1},
    {"stop": ["a", "b", "c", "d"]},
    {"stream": False},
    {"temperature": 0.0, "top_p": 0.5},
    {"tools": [TOOL], "tool_choice": "auto", "parallel_tool_calls": False},
    {"tools": [TOOL], "tool_choice": "required"},
    {"tools": [TOOL], "tool_choice": "none"},
    {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_city"}}},
    {"reasoning_effort": "low", "include_reasoning": False},
    {"user": "u-1", "priority": -3, "cache_salt": "s"},
    {"use_beam_search": True, "length_penalty": 0.8},
    {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.2},
    {"top_k": 40, "min_p": 1.0},
    {"stop_token_ids": [2, 0], "include_stop_str_in_output": True, "ignore_eos": True},
    {"min_tokens": 512, "max_tokens": 512},
    {"min_tokens": 3, "max_completion_tokens": 3},
    {"skip_special_tokens": False, "spaces_between_special_tokens": False},
    {"truncate_prompt_tokens": -1, "truncation_side": "left"},
    {"prompt_logprobs": 0, "logprob_token_ids": [5]},
    {"allowed_token_ids": [1, 2], "bad_words": ["no"]},
    {"echo": True, "add_generation_prompt": False, "continue_final_message": True, "add_special_tokens": True},
    {"documents": [{"title": "t", "text": "x"}], "chat_template": "{{ messages }}", "chat_template_kwargs": {"a": 1}},
    {"mm_processor_kwargs": {"fps": 1}, "media_io_kwargs": {"video": {"num_frames": 2}}},
    {"structured_outputs": {"choice": ["yes", "no"]}},
    {"structured_outputs": {"regex": "[a-z]+", "disable_any_whitespace": True}},
    {"structured_outputs": {"json": {"type": "object"}, "disable_additional_properties": True}},
    {"structured_outputs": {"grammar": "root ::= 'a'"}},
    {"structured_outputs": {"json_object": True, "whitespace_pattern": " "}},
    {"return_tokens_as_token_ids": True, "return_token_ids": True, "return_token_offsets": False},
    {"return_prompt_text": True, "thinking_token_budget": 10, "watermarking": False, "session_id": "s"},
    {"repetition_detection": {"max_pattern_size": 4}, "vllm_xargs": {"a": 1, "b": ["x", 2.5]}},
    {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]}]},
    {"messages": [{"role": "tool", "content": "42", "tool_call_id": "1"}, {"role": "developer", "content": "d"}]},
]


@pytest.mark.parametrize("fields", CHAT_FIELDS, ids=lambda fields: ",".join(fields))
def test_every_chat_field_goes_to_vllm_as_given(fields: dict[str, Any]) -> None:
    body = request_body(validate_payload(CHAT.payload, chat(**fields)), "served")
    for name, value in fields.items():
        assert body[name] == (value if name != "model" else "served"), name


CHAT_REFUSED = [
    ({"n": 9}, "n: at most 8 choices per job (CASOLA_MAX_CHOICES)"),
    ({"n": 0}, "n: Input should be greater than or equal to 1"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs: Input should be less than or equal to 20"),
    ({"top_logprobs": 2}, "top_logprobs needs logprobs: true"),
    ({"logprobs": "yes"}, "logprobs: Input should be a valid boolean"),
    ({"top_k": -2}, "top_k: Input should be greater than or equal to -1"),
    ({"min_p": 1.5}, "min_p: Input should be less than or equal to 1"),
    ({"repetition_penalty": 0}, "repetition_penalty: Input should be greater than 0"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop: List should have at most 4 items"),
    ({"seed": 2**63}, "seed: Input should be less than or equal to 9223372036854775807"),
    ({"logit_bias": {"abc": 1}}, "logit_bias.abc: String should match pattern"),
    ({"logit_bias": {"1": 101}}, "logit_bias.1: Input should be less than or equal to 100"),
    ({"tool_choice": "auto"}, "tool_choice needs tools"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}}, "tool_choice names 'x'"),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name: String should match"),
    ({"tools": [{"type": "retrieval"}]}, "tools.0.type: Input should be 'function'"),
    ({"tools": [{"function": {"name": "f", "parms": {}}}]}, "tools.0.function.parms: unknown field"),
    ({"response_format": {"type": "yaml"}}, "response_format.type: Input should be 'text', 'json_object' or"),
    ({"response_format": {"type": "json_schema"}}, "response_format: json_schema is given exactly when"),
    ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "structured_outputs: give exactly one of json, regex"),
    ({"structured_outputs": {}}, "structured_outputs: give exactly one of"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs.choice: List should have at least 1 item"),
    ({"stream": True}, "stream: the queue returns one result, so streaming is refused"),
    ({"stream_options": {"include_usage": True}}, "stream_options: the queue returns one result"),
    ({"request_id": "r"}, "request_id: the worker names each vLLM request after its job"),
    ({"functions": []}, "functions: deprecated by OpenAI and not implemented by vLLM; use tools"),
    ({"audio": {}}, "audio: an OpenAI platform feature vLLM does not implement"),
    ({"store": True}, "store: an OpenAI platform feature vLLM does not implement"),
    ({"temprature": 0.1}, "temprature: unknown field, refused rather than dropped"),
    ({"min_tokens": 600}, "min_tokens (600) is above the output limit (512)"),
    ({"continue_final_message": True, "add_generation_prompt": True}, "continue_final_message and add_generation"),
    ({"cache_salt": ""}, "cache_salt: String should have at least 1 character"),
    ({"truncation_side": "middle"}, "truncation_side: Input should be 'left' or 'right'"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort: Input should be"),
    ({"extra_body": "ignore_eos"}, "extra_body: Input should be a valid dictionary"),
    ({"extra_body": {"stream": True}}, "extra_body may not set stream"),
    ({"extra_body": {"model": "x", "messages": []}}, "extra_body may not set messages, model"),
    ({"extra_body": {"top_k": "many"}}, "top_k: Input should be a valid integer"),
    ({"top_k": 1, "extra_body": {"top_k": 2}}, "top_k: given both in the payload and in extra_body"),
    ({"extra_body": {"request_id": "r"}}, "extra_body.request_id: the worker names each vLLM request"),
    ({"extra_body": {"n": 64}}, "n: at most 8 choices per job"),
]


@pytest.mark.parametrize(("fields", "error"), CHAT_REFUSED, ids=lambda value: str(value)[:40])
def test_a_chat_field_that_cannot_be_honoured_is_refused_naming_it(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(JobFailed) as failed:
        validate_payload(CHAT.payload, chat(**fields))
    assert str(failed.value).startswith(f"invalid_payload: {error}"), str(failed.value)


def test_extra_body_passes_fields_the_worker_does_not_model_and_checks_the_ones_it_does() -> None:
    body = request_body(validate_payload(CHAT.payload, chat(extra_body={"ignore_eos": True, "future_field": [1]})), "m")
    assert (body["ignore_eos"], body["future_field"]) == (True, [1])
    assert "extra_body" not in body


def test_the_choice_cap_is_the_operators() -> None:
    assert (
        request_body(validate_payload(CHAT.payload, chat(n=32), limits=PayloadLimits(max_choices=32)), "m")["n"] == 32
    )
    with pytest.raises(JobFailed, match="at most 2 choices"):
        validate_payload(COMPLETION.payload, {"prompt": "a", "n": 3}, limits=PayloadLimits(max_choices=2))


def test_max_completion_tokens_replaces_the_seed_default_max_tokens() -> None:
    assert "max_tokens" not in request_body(validate_payload(CHAT.payload, chat(max_completion_tokens=9)), "m")
    both = request_body(validate_payload(CHAT.payload, chat(max_completion_tokens=9, max_tokens=7)), "m")
    assert (both["max_tokens"], both["max_completion_tokens"]) == (7, 9)


def test_the_kind_names_in_the_payload_are_not_sent_to_vllm() -> None:
    body = request_body(validate_payload(CHAT.payload, chat(task="openai/chat-completion", job_type="x")), "m")
    assert "task" not in body and "job_type" not in body


PAYLOADS = [  # (kind, payload that goes to vLLM as given, apart from the model)
    (COMPLETION, {"prompt": "Once"}),
    (COMPLETION, {"prompt": ["a", "b"], "echo": True, "logprobs": 5, "suffix": "end", "max_tokens": 3}),
    (COMPLETION, {"prompt": [1, 2, 3], "n": 2}),
    (COMPLETION, {"prompt": [[1, 2], [3]], "structured_outputs": {"choice": ["a"]}, "stop_token_ids": [1]}),
    (COMPLETION, {"prompt_embeds": "AAAA", "prompt": "x"}),
    (EMBEDDINGS, {"input": "a"}),
    (EMBEDDINGS, {"input": ["a", "b"], "encoding_format": "base64", "dimensions": 64, "user": "u"}),
    (EMBEDDINGS, {"input": [1, 2], "truncate_prompt_tokens": 8, "embed_dtype": "float16", "endianness": "little"}),
    (EMBEDDINGS, {"input": [[1], [2, 3]], "use_activation": True, "add_special_tokens": False, "priority": 1}),
    (SCORE, {"queries": "q", "documents": ["a", "b"]}),
    (SCORE, {"queries": ["q1", "q2"], "items": ["a", "b"], "use_activation": False}),
    (SCORE, {"text_1": "q", "text_2": "a", "max_tokens_per_query": 8, "max_tokens_per_doc": 16}),
    (SCORE, {"data_1": {"content": []}, "data_2": ["a"], "instruction": "rank"}),
    (RERANK, {"query": "q", "documents": ["a", "b"], "top_n": 1}),
    (RERANK, {"query": "q", "documents": "a", "padding": "do_not_pad"}),
]


@pytest.mark.parametrize(("kind", "payload"), PAYLOADS, ids=lambda value: str(value)[:40])
def test_every_kind_sends_its_payload_as_given(kind: JobKind, payload: dict[str, Any]) -> None:
    assert request_body(validate_payload(kind.payload, payload), "m") == payload | {"model": "m"}


REFUSED = [
    (COMPLETION, {}, "prompt: Field required"),
    (COMPLETION, {"prompt": []}, "prompt: List should have at least 1 item"),
    (COMPLETION, {"prompt": [1, -1]}, "prompt.1: Input should be greater than or equal to 0"),
    (COMPLETION, {"prompt": "x", "logprobs": True}, "logprobs: Input should be a valid integer"),
    (COMPLETION, {"prompt": "x", "best_of": 4}, "best_of: vLLM no longer takes it; use n"),
    (COMPLETION, {"prompt": "x", "messages": []}, "messages: unknown field"),
    (COMPLETION, {"prompt": "x", "extra_body": {"prompt": "y"}}, "extra_body may not set prompt"),
    (EMBEDDINGS, {"input": []}, "input: List should have at least 1 item"),
    (EMBEDDINGS, {"input": "a", "encoding_format": "bytes"}, "encoding_format: Input should be 'float' or 'base64'"),
    (EMBEDDINGS, {"input": "a", "dimensions": 0}, "dimensions: Input should be greater than or equal to 1"),
    (EMBEDDINGS, {"input": "a", "temperature": 1}, "temperature: unknown field"),
    (EMBEDDINGS, {"input": "a", "extra_body": {"input": "b"}}, "extra_body may not set input"),
    (SCORE, {"queries": "q"}, "give one pair: queries and documents, queries and items, text_1 and text_2"),
    (SCORE, {"text_1": "a", "text_2": "b", "queries": "c"}, "give one pair"),
    (RERANK, {"query": "q"}, "documents: Field required"),
    (RERANK, {"query": "q", "documents": [], "top_n": 1}, "documents: "),
    (RERANK, {"query": "q", "documents": "a", "top_n": -1}, "top_n: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("kind", "payload", "error"), REFUSED, ids=lambda value: str(value)[:40])
def test_every_kind_refuses_what_it_cannot_honour_naming_the_field(
    kind: JobKind, payload: dict[str, Any], error: str
) -> None:
    with pytest.raises(JobFailed) as failed:
        validate_payload(kind.payload, payload)
    assert str(failed.value).startswith(f"invalid_payload: {error}"), str(failed.value)


def test_embeddings_results_are_in_the_queues_format() -> None:
    vllm_answer = {
        "object": "list",
        "model": "default",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}, {"index": 1, "embedding": "AAA="}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    assert EMBEDDINGS.result(vllm_answer, {}) == {
        "embeddings": [{"index": 0, "embedding": [0.5]}, {"index": 1, "embedding": "AAA="}],
        "prompt_tokens": 4,
        "total_tokens": 4,
    }
    with pytest.raises(InferenceRejected, match="no list of embeddings"):
        EMBEDDINGS.result({"data": [{"index": 0}]}, {})


@pytest.mark.parametrize(
    ("kind", "field"), [(CHAT, "completion"), (COMPLETION, "completion"), (SCORE, "score"), (RERANK, "rerank")]
)
def test_other_kinds_return_vllms_object_in_their_field(kind: JobKind, field: str) -> None:
    assert kind.result({"id": "x", "data": []}, {}) == {field: {"id": "x", "data": []}}


def test_a_route_this_vllm_does_not_serve_says_which_runner_the_kind_needs() -> None:
    not_found = InferenceRejected("vLLM answered HTTP 404: Not Found", 404)
    assert str(EMBEDDINGS.explained(not_found, {})) == (
        "this vLLM does not serve /v1/embeddings: openai/embeddings jobs need a pooling model "
        "(--runner pooling --convert embed in VLLM_EXTRA_ARGS)"
    )
    assert "openai/chat-completion jobs need a generate model (without --runner pooling)" in str(
        CHAT.explained(not_found, {})
    )


def test_tools_on_a_vllm_without_tool_calling_name_the_flags_to_add() -> None:
    rejected = InferenceRejected('vLLM answered HTTP 400: tool_choice="required" requires --tool-call-parser', 400)
    explained = str(CHAT.explained(rejected, {"tools": [TOOL]}))
    assert explained.startswith('vLLM answered HTTP 400: tool_choice="required" requires --tool-call-parser; ')
    assert "--enable-auto-tool-choice --tool-call-parser" in explained and "VLLM_EXTRA_ARGS" in explained
    other = InferenceRejected("vLLM answered HTTP 400: bad", 400)
    assert CHAT.explained(other, {"tools": [TOOL]}) is other


def test_every_kind_has_a_distinct_task_and_route() -> None:
    assert len({kind.task for kind in KINDS}) == len({kind.route for kind in KINDS}) == len(KINDS)

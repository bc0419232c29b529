"""A job's fields judged by the served vLLM's surface, and the surface read from an OpenAPI document: tables, no I/O."""

from typing import Any

import pytest

from adapters.vllm.openapi import NotOpenApi, request_fields, surface_of
from domain.errors import JobFailed
from domain.kinds import CHAT, TRANSCRIPTION
from domain.request_body import request_body, validate_payload
from domain.surface import VllmSurface

MESSAGES = [{"role": "user", "content": "hi"}]
# vLLM 0.32's chat request, less `watermarking`, plus a field the worker does not model (a newer vLLM's)
CHAT_FIELDS = frozenset(
    {*CHAT.payload.known_names(), "stream", "request_id", "return_weight_versions"}
    - {"watermarking", "task", "job_type"}
)
TAKEN = (CHAT_FIELDS, "0.33.0")


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": MESSAGES, **fields}


def test_a_field_the_served_vllm_takes_reaches_it_though_the_worker_does_not_model_it() -> None:
    body = request_body(validate_payload(CHAT.payload, chat(return_weight_versions=True), taken=TAKEN), "m")
    assert body["return_weight_versions"] is True
    inside = chat(extra_body={"return_weight_versions": True, "ignore_eos": True})
    body = request_body(validate_payload(CHAT.payload, inside, taken=TAKEN), "m")
    assert (body["return_weight_versions"], body["ignore_eos"]) == (True, True)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"temprature": 0.1}, "temprature: vLLM 0.33.0 does not take this field"),
        ({"watermarking": True}, "watermarking: vLLM 0.33.0 does not take this field"),  # modelled, not taken
        ({"extra_body": {"temprature": 0.1}}, "extra_body.temprature: vLLM 0.33.0 does not take this field"),
        (
            {"a": 1, "extra_body": {"b": 2}},
            "a: vLLM 0.33.0 does not take this field; extra_body.b: vLLM 0.33.0 does not take this field",
        ),
    ],
)
def test_a_field_the_served_vllm_does_not_take_is_refused_naming_it_and_the_version(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(JobFailed) as refused:
        validate_payload(CHAT.payload, chat(**fields), taken=TAKEN)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"stream": True}, "stream: the queue returns one result, so streaming is refused"),
        ({"request_id": "x"}, "request_id: the worker names each vLLM request after its job"),
        ({"temperature": 3}, "temperature: Input should be less than or equal to 2"),
        ({"n": 99}, "n: at most 8 choices per job (CASOLA_MAX_CHOICES)"),
        ({"extra_body": {"messages": []}}, "extra_body may not set messages"),
    ],
)
def test_the_workers_own_rules_stay_whatever_vllm_takes(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(JobFailed) as refused:
        validate_payload(CHAT.payload, chat(**fields), taken=TAKEN)
    assert reason in refused.value.reason


def test_without_a_surface_the_built_in_lists_judge_and_extra_body_passes_as_given() -> None:
    with pytest.raises(JobFailed, match="return_weight_versions: unknown field, refused rather than dropped"):
        validate_payload(CHAT.payload, chat(return_weight_versions=True))
    body = request_body(validate_payload(CHAT.payload, chat(extra_body={"future_field": 1})), "m")
    assert body["future_field"] == 1


def test_an_audio_field_is_judged_by_its_name_in_vllms_form() -> None:
    taken = (frozenset({"file", "model", "language", "response_format", "timestamp_granularities[]"}), "0.32.0")
    payload = {"audio_base64": "UklGRg==", "response_format": "verbose_json", "timestamp_granularities": ["word"]}
    validate_payload(TRANSCRIPTION.payload, payload, taken=taken)
    with pytest.raises(JobFailed, match=r"^invalid_payload: temperature: vLLM 0\.32\.0 does not take this field$"):
        validate_payload(TRANSCRIPTION.payload, {**payload, "temperature": 0.0}, taken=taken)


SCHEMAS = {
    "ChatCompletionRequest": {"properties": {"messages": {}, "model": {}, "seed": {}}},
    "EmbeddingCompletionRequest": {"properties": {"input": {}, "model": {}}},
    "EmbeddingChatRequest": {"allOf": [{"properties": {"messages": {}}}, {"$ref": "#/components/schemas/Common"}]},
    "Common": {"properties": {"dimensions": {}}},
    "Loop": {"$ref": "#/components/schemas/Loop"},
}
DOCUMENT = {
    "paths": {
        "/v1/chat/completions": {
            "post": {
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}
                }
            }
        },
        "/v1/embeddings": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/EmbeddingCompletionRequest"},
                                    {"$ref": "#/components/schemas/EmbeddingChatRequest"},
                                ]
                            }
                        }
                    }
                }
            }
        },
        "/v1/loop": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "Loop"}}}}}},
        "/v1/raw": {"post": {}},
        "/health": {"get": {}},
    },
    "components": {"schemas": SCHEMAS},
}


def test_the_surface_is_read_from_vllms_openapi_document() -> None:
    surface = surface_of(DOCUMENT, "0.32.0", ["/v1/chat/completions", "/v1/embeddings", "/v1/raw", "/v1/rerank"])
    assert surface.version == "0.32.0" and not surface.built_in
    assert surface.paths == frozenset({"/v1/chat/completions", "/v1/embeddings", "/v1/loop", "/v1/raw", "/health"})
    assert surface.fields == {
        "/v1/chat/completions": frozenset({"messages", "model", "seed"}),
        "/v1/embeddings": frozenset({"input", "model", "messages", "dimensions"}),  # both requests of the union
    }
    assert surface.taken("/v1/raw") is None  # no request schema: the built-in lists judge
    assert not surface.serves("/v1/rerank")


def test_a_reference_that_loops_ends() -> None:
    assert request_fields({"$ref": "#/components/schemas/Loop"}, SCHEMAS) == set()


@pytest.mark.parametrize("document", [[], {}, {"paths": []}, "openapi"])
def test_a_document_without_paths_is_not_openapi(document: Any) -> None:
    with pytest.raises(NotOpenApi):
        surface_of(document, "0.32.0", [])


def test_the_built_in_surface_serves_every_route_and_judges_no_field() -> None:
    surface = VllmSurface("unknown")
    assert surface.serves("/v1/anything") and surface.taken("/v1/chat/completions") is None

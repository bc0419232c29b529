"""The official openai client through `worker-vllm dev`, a worker and real vLLM: what only vLLM can prove.

Two servers cover it: the tier's shared generate server (tool calling on) and one pooling server here.
"""

import base64
import json
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
from testbed.real_vllm import vllm_python

from adapters.dev.openai_front import OpenAIFront
from domain.audio_payloads import FORM_NAMES
from domain.kinds import KINDS
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import front_and_worker, real_vllm
from tests.integration.real_vllm import VLLM_ARGS, require_real_vllm

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

MESSAGES = [{"role": "user", "content": "Name a capital city."}]
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}, "capital": {"type": "boolean"}},
    "required": ["city", "capital"],
    "additionalProperties": False,
}  # free strings are pinned: the grammar lets raw control characters into unconstrained ones
GET_CITY = {
    "type": "function",
    "function": {"name": "get_city", "strict": True, "parameters": CITY, "description": "Look a city up."},
}


@pytest.fixture(scope="module")
def pooling_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with real_vllm(tmp_path_factory.mktemp("pooling"), f"{VLLM_ARGS} --runner pooling --convert embed") as port:
        yield port


@pytest.fixture
async def generate(fake_api: FakeApi, vllm_port: int) -> AsyncIterator[openai.AsyncOpenAI]:
    async with front_and_worker(fake_api, vllm_port) as front:
        yield client(front)


@pytest.fixture
async def pooling(fake_api: FakeApi, pooling_port: int) -> AsyncIterator[openai.AsyncOpenAI]:
    async with front_and_worker(fake_api, pooling_port) as front:
        yield client(front)


def client(front: OpenAIFront) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{front.url}/v1", api_key="unused", max_retries=0, timeout=120)


def check_city(value: object) -> None:
    assert isinstance(value, dict) and set(value) == {"city", "capital"}, value
    assert value["city"] in ("Paris", "Rome") and isinstance(value["capital"], bool), value


async def test_json_schema_output_parses_and_validates(generate: openai.AsyncOpenAI) -> None:
    schema = {"name": "city", "strict": True, "schema": CITY}
    completion = await generate.chat.completions.create(
        model="default",
        messages=MESSAGES,
        max_tokens=200,
        response_format={"type": "json_schema", "json_schema": schema},  # type: ignore[arg-type]
    )
    check_city(json.loads(completion.choices[0].message.content or ""))


async def test_a_structured_outputs_choice(generate: openai.AsyncOpenAI) -> None:
    completion = await generate.chat.completions.create(
        model="default",
        messages=MESSAGES,
        max_tokens=10,
        extra_body={"structured_outputs": {"choice": ["yes", "no"]}},  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content in ("yes", "no")


async def test_a_named_strict_tool_call_has_arguments_that_validate(generate: openai.AsyncOpenAI) -> None:
    completion = await generate.chat.completions.create(
        model="default", messages=MESSAGES, max_tokens=200, tools=[GET_CITY],  # type: ignore[arg-type, list-item]
        tool_choice={"type": "function", "function": {"name": "get_city"}},
    )  # fmt: skip
    calls = completion.choices[0].message.tool_calls or []
    assert len(calls) == 1 and calls[0].function.name == "get_city"  # type: ignore[union-attr]
    check_city(json.loads(calls[0].function.arguments))  # type: ignore[union-attr]


async def test_n_logprobs_and_seed(generate: openai.AsyncOpenAI) -> None:
    two = await generate.chat.completions.create(
        model="default",
        messages=MESSAGES,
        max_tokens=4,
        n=2,
        logprobs=True,
        top_logprobs=2,  # type: ignore[arg-type]
    )
    assert [choice.index for choice in two.choices] == [0, 1]
    tokens = two.choices[0].logprobs.content  # type: ignore[union-attr]
    assert tokens and all(len(token.top_logprobs) == 2 for token in tokens)
    texts = [
        (await generate.chat.completions.create(
            model="default", messages=MESSAGES, max_tokens=12, temperature=1.0, seed=1234  # type: ignore[arg-type]
        )).choices[0].message.content
        for _ in range(2)
    ]  # fmt: skip
    assert texts[0] == texts[1]


async def test_a_text_completion(generate: openai.AsyncOpenAI) -> None:
    completion = await generate.completions.create(model="default", prompt="Once upon a time", max_tokens=5, echo=True)
    assert completion.object == "text_completion"
    assert completion.choices[0].text.startswith("Once upon a time")
    assert completion.usage is not None and completion.usage.completion_tokens == 5


async def test_an_unknown_field_and_stream_are_refused_before_vllm(generate: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        await generate.chat.completions.create(model="default", messages=MESSAGES, extra_body={"top_kk": 3})  # type: ignore[arg-type]
    assert unknown.value.type == "invalid_payload"
    # the SDK merges extra_body into the request: the field is judged at the top level, by the served vLLM's own list
    assert "top_kk: vLLM 0.32.0 does not take this field" in unknown.value.message
    with pytest.raises(openai.BadRequestError, match="stream: the queue returns one result"):
        await generate.chat.completions.create(model="default", messages=MESSAGES, stream=True)  # type: ignore[arg-type]


async def test_embeddings_as_floats_and_base64_and_a_score(pooling: openai.AsyncOpenAI) -> None:
    floats = await pooling.embeddings.create(model="default", input=["a cat", "a dog"], encoding_format="float")
    assert [item.index for item in floats.data] == [0, 1]
    assert [len(item.embedding) for item in floats.data] == [128, 128]
    assert floats.usage.prompt_tokens > 0 and floats.usage.total_tokens == floats.usage.prompt_tokens
    packed = await pooling.with_options().post(
        "/embeddings", body={"model": "default", "input": "a cat", "encoding_format": "base64"}, cast_to=httpx.Response
    )
    vector = base64.b64decode(packed.json()["data"][0]["embedding"])
    assert struct.unpack(f"<{len(vector) // 4}f", vector) == pytest.approx(floats.data[0].embedding, abs=1e-3)
    score = await pooling.post(
        "/score", body={"queries": "a cat", "documents": ["a cat", "a dog"]}, cast_to=httpx.Response
    )
    assert [item["index"] for item in score.json()["data"]] == [0, 1]
    assert all(isinstance(item["score"], float) for item in score.json()["data"])


VLLM_FIELDS = """
import json
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.pooling.embed.protocol import EmbeddingCompletionRequest
from vllm.entrypoints.pooling.scoring import protocol as scoring
from vllm.entrypoints.speech_to_text.transcription.protocol import TranscriptionRequest
from vllm.entrypoints.speech_to_text.translation.protocol import TranslationRequest
from vllm.entrypoints.openai.responses.protocol import ResponsesRequest
from vllm.entrypoints.anthropic.protocol import AnthropicMessagesRequest
from vllm.entrypoints.openai.chat_completion.protocol import BatchChatCompletionRequest
from vllm.entrypoints.serve.tokenize import protocol as tokenize
from vllm.entrypoints.pooling.classify import protocol as classify
def names(*models):
    return sorted({field.alias or name for model in models for name, field in model.model_fields.items()})
score = (scoring.ScoreQueriesDocumentsRequest, scoring.ScoreQueriesItemsRequest, scoring.ScoreTextRequest,
         scoring.ScoreDataRequest)
print(json.dumps({"openai/chat-completion": names(ChatCompletionRequest), "openai/completion": names(CompletionRequest),
                  "openai/embeddings": names(EmbeddingCompletionRequest), "vllm/score": names(*score),
                  "vllm/rerank": names(scoring.RerankRequest),
                  "openai/audio-transcription": names(TranscriptionRequest),
                  "openai/audio-translation": names(TranslationRequest),
                  "openai/responses": names(ResponsesRequest), "anthropic/messages": names(AnthropicMessagesRequest),
                  "openai/chat-batch": names(BatchChatCompletionRequest),
                  "vllm/tokenize": names(tokenize.TokenizeCompletionRequest, tokenize.TokenizeChatRequest),
                  "vllm/detokenize": names(tokenize.DetokenizeRequest),
                  "vllm/classify": names(classify.ClassificationCompletionRequest,
                                         classify.ClassificationChatRequest)}))
"""


def test_each_kind_takes_exactly_the_fields_of_vllms_request_less_the_refused_ones() -> None:
    """Read from the vLLM the tier runs: a vLLM upgrade that adds or drops a field fails here, not in production."""
    require_real_vllm()
    answer = subprocess.run([vllm_python(), "-c", VLLM_FIELDS], capture_output=True, text=True, timeout=300, check=True)
    vllm_fields = json.loads(answer.stdout.strip().splitlines()[-1])
    for kind in KINDS:
        if kind.runner == "omni":  # vLLM-Omni's request, not vLLM's: held to the stand-in's copy (test_audio_jobs.py)
            continue
        ours = {FORM_NAMES.get(name, field.alias or name) for name, field in kind.payload.model_fields.items()}
        ours -= {"task", "job_type", "extra_body"}  # the worker's own, never sent
        ours -= {"audio_base64", "audio_url", "filename", "content_type"}  # an audio job's file: vLLM's `file`
        ours |= {"file"} if kind.sent == "form" else set()
        refused = set(kind.payload.ruled())
        ours -= refused  # never sent: modelled to be refused by name (streaming, a batch job's `tools`, ...)
        assert ours <= set(vllm_fields[kind.task]), (kind.task, sorted(ours - set(vllm_fields[kind.task])))
        assert set(vllm_fields[kind.task]) <= ours | refused, (
            kind.task,
            sorted(set(vllm_fields[kind.task]) - ours - refused),
        )

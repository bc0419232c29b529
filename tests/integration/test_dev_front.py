"""`worker-vllm dev`: the official openai client drives a real worker through the REST front and its queue socket."""

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.openai_front import OpenAIFront
from tests.conftest import eventually
from tests.fakes.audio import wav
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import cli, front_and_worker, spawn, terminate


@pytest.fixture
async def front(fake_vllm: FakeVllm, fake_api: FakeApi) -> AsyncIterator[OpenAIFront]:
    """The front on free ports, and one worker (capacity 4) connected to it."""
    async with front_and_worker(fake_api, fake_vllm.port) as dev:
        yield dev


@pytest.fixture
async def client(front: OpenAIFront) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{front.url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


MESSAGES = [{"role": "user", "content": "hi"}]


async def test_a_chat_completion_through_the_queue_is_an_openai_object(
    client: openai.AsyncOpenAI, fake_vllm: FakeVllm
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    completion = await client.chat.completions.create(
        model="default",
        messages=MESSAGES,
        max_tokens=3,
        seed=7,
        tools=[tool],
        tool_choice="auto",  # type: ignore[list-item]
        extra_body={"top_k": 5},
    )
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    sent = fake_vllm.record.requests[0]
    assert (sent["seed"], sent["top_k"], sent["tools"], sent["tool_choice"]) == (7, 5, [tool], "auto")


async def test_embeddings_text_completion_score_and_rerank(client: openai.AsyncOpenAI, front: OpenAIFront) -> None:
    embeddings = await client.embeddings.create(model="default", input=["a", "b"], encoding_format="float")
    assert [item.index for item in embeddings.data] == [0, 1]
    assert embeddings.data[1].embedding == [0.1, 0.2, 0.3]
    assert (embeddings.usage.prompt_tokens, embeddings.usage.total_tokens) == (2, 2)
    text = await client.completions.create(model="default", prompt="Once", max_tokens=2)
    assert text.choices[0].text == " word word"
    async with httpx.AsyncClient(base_url=front.url) as http:
        score = (await http.post("/v1/score", json={"queries": "q", "documents": ["a", "b"]})).json()
        rerank = (await http.post("/v1/rerank", json={"query": "q", "documents": ["a", "b"]})).json()
    assert [item["score"] for item in score["data"]] == [0.5, 1 / 3]
    assert [item["index"] for item in rerank["results"]] == [0, 1]


async def test_the_official_clients_transcription_and_translation_uploads_through_the_queue(
    client: openai.AsyncOpenAI, fake_vllm: FakeVllm
) -> None:
    audio = wav(2.0)
    transcription = await client.audio.transcriptions.create(
        model="default", file=("talk.wav", audio, "audio/wav"), language="en", temperature=0.2,
        response_format="verbose_json", timestamp_granularities=["word"], extra_body={"max_completion_tokens": 2},
    )  # fmt: skip
    assert (transcription.text, transcription.duration) == ("word word", 2)
    assert transcription.words is not None and transcription.words[0].word == "word"
    translation = await client.audio.translations.create(model="default", file=("talk.wav", audio, "audio/wav"))
    assert translation.text == "word " * 4 + "word"
    bare = await client.audio.transcriptions.create(
        model="default", file=("talk.wav", audio, "audio/wav"), response_format="text",
        extra_body={"max_completion_tokens": 2},
    )  # fmt: skip
    assert bare == "word word"  # the bare transcript, not JSON
    sent = fake_vllm.record.requests[0]
    assert sent["file"] == {"filename": "talk.wav", "content_type": "audio/wav", "data": audio}
    assert (sent["language"], sent["temperature"], sent["timestamp_granularities"]) == ("en", "0.2", ["word"])
    with pytest.raises(openai.BadRequestError) as refused:
        await client.audio.transcriptions.create(model="default", file=("x.wav", b"not audio", "audio/wav"))
    assert refused.value.status_code == 400 and "Invalid or corrupted audio data" in str(refused.value)


async def test_the_official_clients_speech_gets_the_audio_itself(
    client: openai.AsyncOpenAI, fake_vllm: FakeVllm
) -> None:
    speech = await client.audio.speech.create(model="default", voice="vivian", input="Hello", response_format="flac")
    assert speech.response.headers["content-type"] == "audio/flac"
    assert speech.content.startswith(b"RIFF")  # the stand-in's audio, byte for byte
    assert fake_vllm.record.requests[-1] == {
        "model": "default", "voice": "vivian", "input": "Hello", "response_format": "flac",
    }  # fmt: skip


async def test_a_job_error_is_an_openai_error_with_its_category(
    client: openai.AsyncOpenAI, fake_vllm: FakeVllm
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="default", messages=MESSAGES, extra_body={"temprature": 1})  # type: ignore[arg-type]
    assert refused.value.type == "invalid_payload"
    assert refused.value.message.endswith(
        "- temprature: unknown field, refused rather than dropped (a vLLM field "
        "the worker does not model goes in extra_body)"
    )
    with pytest.raises(openai.BadRequestError, match="the queue returns one result"):
        await client.chat.completions.create(model="default", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="model: gpt-4o is not served here; served: default"):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    fake_vllm.behaviour.runner = "generate"
    with pytest.raises(openai.InternalServerError) as unserved:
        await client.embeddings.create(model="default", input="a")
    assert unserved.value.type == "inference_error"
    assert "openai/embeddings jobs need a pooling model" in unserved.value.message


async def test_models_come_from_vllm(client: openai.AsyncOpenAI, fake_vllm: FakeVllm) -> None:
    fake_vllm.behaviour.aliases = ["sql-lora"]
    assert [model.id async for model in client.models.list()] == ["default", "sql-lora"]


async def test_a_client_that_goes_away_revokes_its_job_and_vllm_aborts_it(
    front: OpenAIFront, fake_vllm: FakeVllm
) -> None:
    fake_vllm.behaviour.hang = True
    async with httpx.AsyncClient(base_url=front.url) as http:
        request = asyncio.create_task(http.post("/v1/chat/completions", json={"messages": MESSAGES}))
        await eventually(lambda: fake_vllm.record.running == 1, what="the request running in vLLM")
        request.cancel()
    await eventually(lambda: len(fake_vllm.record.closed) == 1, what="vLLM's request closed")


async def test_without_a_worker_the_front_answers_503(fake_vllm: FakeVllm) -> None:
    async def no_models() -> list[str]:
        return []

    async with OpenAIFront("127.0.0.1", 0, "127.0.0.1", 0, no_models) as dev, httpx.AsyncClient() as http:
        answer = await http.post(f"{dev.url}/v1/chat/completions", json={"messages": MESSAGES})
        bad = await http.post(f"{dev.url}/v1/chat/completions", content=b"{not json")
    assert answer.status_code == 503
    assert answer.json()["error"]["message"] == "no worker is connected to this queue"
    assert (bad.status_code, bad.json()["error"]["type"]) == (400, "invalid_request_error")


@pytest.mark.slow
async def test_the_dev_command_serves_until_sigterm(fake_vllm: FakeVllm) -> None:
    process = spawn(cli("dev", "--port", "0", "--http-port", "0"), {"VLLM_PORT": str(fake_vllm.port)})
    try:
        front_url = await asyncio.to_thread(read_until, process, "OpenAI-compatible front on ")
        async with httpx.AsyncClient() as http:
            models = (await http.get(f"{front_url}/models")).json()
        assert [model["id"] for model in models["data"]] == ["default"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        terminate(process)


def read_until(process: subprocess.Popen[str], marker: str) -> str:
    """The URL that follows `marker` in the process's log."""
    assert process.stderr is not None
    for line in process.stderr:
        if marker in line:
            return line.split(marker)[1].split()[0].removesuffix(":")
    raise AssertionError(f"the log ended without {marker!r}")


async def test_the_official_clients_responses_and_anthropic_messages_through_the_queue(
    client: openai.AsyncOpenAI, front: OpenAIFront, fake_vllm: FakeVllm
) -> None:
    response = await client.responses.create(model="default", input="hi", max_output_tokens=3)
    assert response.output_text == "word word word"
    assert response.usage is not None and response.usage.output_tokens == 3
    async with anthropic.AsyncAnthropic(base_url=front.url, api_key="sk-ant-unused", max_retries=0) as claude:
        message = await claude.messages.create(
            model="default", max_tokens=2, system="Be brief.", messages=[{"role": "user", "content": "hi"}]
        )
    assert message.content[0].type == "text" and message.content[0].text == "word word"
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 2)
    sent = fake_vllm.record.requests
    assert (sent[0]["input"], sent[0]["store"]) == ("hi", False)
    assert sent[1]["system"] == "Be brief." and sent[1]["max_tokens"] == 2


async def test_tokenize_detokenize_batch_and_classify_through_the_front(front: OpenAIFront) -> None:
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        tokens = (await http.post("/tokenize", json={"model": "default", "prompt": "a bc"})).json()
        text = (await http.post("/detokenize", json={"model": "default", "tokens": tokens["tokens"]})).json()
        batch = await http.post("/v1/chat/completions/batch", json={"messages": [MESSAGES, MESSAGES], "max_tokens": 1})
        classes = (await http.post("/classify", json={"input": "good"})).json()
        refused = await http.post("/v1/responses", json={"input": "hi", "previous_response_id": "resp_1"})
    assert (tokens["count"], tokens["tokens"], text["prompt"]) == (2, [1, 2], "x xx")
    assert [choice["index"] for choice in batch.json()["choices"]] == [0, 1]
    assert classes["data"][0]["probs"] == [0.2, 0.8]
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("previous_response_id: the worker keeps no state")

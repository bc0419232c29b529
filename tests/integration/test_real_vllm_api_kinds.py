"""The new generate kinds through the worker against the tier's real vLLM (the tiny chat model): OpenAI's Responses,
Anthropic's Messages, batch chat, tokenize and detokenize; and through `worker-vllm dev` with the official clients.
What vLLM 0.32 answers is held to what it answers directly, for the same request."""

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from testbed.real_vllm import TINY_CLASSIFIER

from adapters.dev.local_queue import LocalQueue
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import StartWorker, front_and_worker, real_vllm

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
HI = [{"role": "user", "content": "Say hi"}]
GREEDY = {"temperature": 0.0}


def job(job_id: str, job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "job", "job_id": job_id, "mode": "transient", "job_type": job_type, "payload": payload}


async def result_of(queue: LocalQueue, job_id: str, job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    await queue.push(job(job_id, job_type, payload))
    frame = await queue.wait_for(lambda f: f.get("job_id") == job_id and f["type"] != "job_progress", timeout=120)
    assert frame["type"] == "job_result", frame
    return dict(frame["result"])


async def test_each_generate_kind_answers_as_vllm_does(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port, CASOLA_MAX_JOBS=2)
    response = (await result_of(queue, "r", "openai/responses", {"input": "Say hi", "max_output_tokens": 6,
                                                                  **GREEDY}))["response"]  # fmt: skip
    assert response["object"] == "response" and response["status"] in ("completed", "incomplete")
    assert response["usage"]["output_tokens"] <= 6 and response["model"] == "default"
    message = (await result_of(queue, "m", "anthropic/messages", {"messages": HI, "max_tokens": 5, **GREEDY}))[
        "message"
    ]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["usage"]["output_tokens"] <= 5
    conversations = [HI, [{"role": "user", "content": "And bye"}]]
    batch = await result_of(queue, "b", "openai/chat-batch", {"messages": conversations, "max_tokens": 3})
    assert [choice["index"] for choice in batch["completion"]["choices"]] == [0, 1]
    tokenized = await result_of(queue, "t", "vllm/tokenize", {"prompt": "hello world", "return_token_strs": True})
    detokenized = await result_of(queue, "d", "vllm/detokenize", {"tokens": tokenized["tokenized"]["tokens"]})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{vllm_port}", timeout=60) as direct:
        tokens = (await direct.post("/tokenize", json={"prompt": "hello world", "return_token_strs": True})).json()
        chat_tokens = (await direct.post("/tokenize", json={"messages": HI, "add_generation_prompt": True})).json()
        anthropic_direct = (await direct.post("/v1/messages", json={"model": "default", "messages": HI,
                                                                    "max_tokens": 5, **GREEDY})).json()  # fmt: skip
    assert tokenized["tokenized"] == tokens
    assert detokenized["detokenized"]["prompt"] == "hello world"
    via_chat = await result_of(queue, "tc", "vllm/tokenize", {"messages": HI, "add_generation_prompt": True})
    assert via_chat["tokenized"] == chat_tokens
    assert message["content"] == anthropic_direct["content"]  # greedy: the same words, through the worker or not


async def test_stateful_responses_are_refused_before_vllm(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port)
    await queue.push(job("p", "openai/responses", {"input": "hi", "previous_response_id": "resp_123"}))
    error = await queue.wait_for_type("job_error", "p", timeout=60)
    assert error["error"].startswith("invalid_payload: previous_response_id: the worker keeps no state between jobs")


async def test_the_official_clients_through_the_dev_front_on_real_vllm(fake_api: FakeApi, vllm_port: int) -> None:
    async with front_and_worker(fake_api, vllm_port) as front:
        async with openai.AsyncOpenAI(base_url=f"{front.url}/v1", api_key="unused", max_retries=0) as client:
            response = await client.responses.create(model="default", input="Say hi", max_output_tokens=6)
        async with anthropic.AsyncAnthropic(base_url=front.url, api_key="unused", max_retries=0) as claude:
            message = await claude.messages.create(model="default", max_tokens=5, messages=[HI[0]])  # type: ignore[list-item]
    assert response.object == "response" and response.usage is not None and response.usage.output_tokens <= 6
    assert message.role == "assistant" and message.usage.output_tokens <= 5


@pytest.fixture(scope="module")
def classifier_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Real vLLM serving the tiny classifier (a two-label head) as a pooling model."""
    args = "--max-model-len 512 --dtype bfloat16 --runner pooling"
    with real_vllm(tmp_path_factory.mktemp("classifier"), args, model=TINY_CLASSIFIER) as port:
        yield port


async def test_classify_on_a_classification_model_answers_as_vllm_does(
    queue: LocalQueue, classifier_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=classifier_port, VLLM_MODEL=str(TINY_CLASSIFIER))
    classified = (await result_of(queue, "c", "vllm/classify", {"input": ["good", "bad"]}))["classification"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{classifier_port}", timeout=60) as direct:
        answer = (await direct.post("/classify", json={"model": "default", "input": ["good", "bad"]})).json()
    assert [(item["label"], item["probs"]) for item in classified["data"]] == [
        (item["label"], item["probs"]) for item in answer["data"]
    ]
    assert {item["label"] for item in classified["data"]} <= {"negative", "positive"}
    await queue.push(job("chat", "openai/responses", {"input": "hi"}))
    refused = (await queue.wait_for_type("job_error", "chat", timeout=60))["error"]
    assert refused.startswith("unsupported_job_type: openai/responses: this vLLM (0.32.0, serving default)"), refused

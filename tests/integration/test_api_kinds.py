"""The rest of vLLM's API as job kinds, through the real worker against the fake vLLM: OpenAI's Responses, Anthropic's
Messages, batch chat, tokenize and detokenize, classify; each answer whole under its one result field, and each
refusal named before vLLM sees the job."""

from typing import Any

import pytest
from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from tests.integration.conftest import StartWorker

MESSAGES = [{"role": "user", "content": "Say hi"}]
KINDS = [  # (job_type, payload, result field, what vLLM got besides the payload)
    ("openai/responses", {"input": "Say hi", "max_output_tokens": 4}, "response", {"store": False}),
    ("anthropic/messages", {"messages": MESSAGES, "max_tokens": 4, "system": "Be brief."}, "message", {}),
    ("vllm/tokenize", {"prompt": "three words here", "return_token_strs": True}, "tokenized", {}),
    ("vllm/tokenize", {"messages": MESSAGES, "add_generation_prompt": True}, "tokenized", {}),
    ("vllm/detokenize", {"tokens": [1, 2]}, "detokenized", {}),
    ("vllm/classify", {"input": ["good", "bad"]}, "classification", {}),
]
CHAT_DEFAULTS = {"temperature": 0.7, "max_tokens": 512, "top_p": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}


def job(job_id: str, job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "job", "job_id": job_id, "mode": "transient", "job_type": job_type, "payload": payload}


async def test_each_kind_sends_its_payload_to_its_route_and_returns_the_whole_answer(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    for number, (job_type, payload, field, added) in enumerate(KINDS):
        await queue.push(job(f"k{number}", job_type, payload))
        result = (await queue.wait_for_type("job_result", f"k{number}"))["result"]
        assert (result["status"], result["task"], result["job_type"]) == ("success", job_type, job_type)
        assert fake_vllm.record.requests[number] == payload | added | {"model": "default"}
        assert set(result) == {"status", "job_type", "task", "config_id", "processed_at", field}, result
    results = [frame["result"] for frame in queue.frames_of("job_result")]
    assert results[0]["response"]["output"][0]["content"][0]["text"] == "word word word word"
    assert results[1]["message"]["content"] == [{"type": "text", "text": "word word word word"}]
    assert results[2]["tokenized"] == {"count": 3, "max_model_len": 512, "tokens": [5, 5, 4],
                                       "token_strs": ["three", "words", "here"]}  # fmt: skip
    assert results[4]["detokenized"] == {"prompt": "x xx"}
    assert [item["label"] for item in results[5]["classification"]["data"]] == ["positive", "positive"]


async def test_a_batch_job_answers_each_conversation_as_one_choice(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    conversations = [MESSAGES, [{"role": "user", "content": "And bye"}], MESSAGES]
    await queue.push(job("b", "openai/chat-batch", {"messages": conversations, "max_tokens": 3}))
    completion = (await queue.wait_for_type("job_result", "b"))["result"]["completion"]
    assert [choice["index"] for choice in completion["choices"]] == [0, 1, 2]
    assert completion["usage"]["completion_tokens"] == 9
    assert fake_vllm.record.requests == [CHAT_DEFAULTS | {"messages": conversations, "max_tokens": 3,
                                                          "model": "default"}]  # fmt: skip


REFUSALS = [  # (job_type, payload, the error), none reaching vLLM
    ("openai/responses", {"input": "hi", "store": True},
     "invalid_payload: store: the worker keeps no state between jobs: send the whole conversation in each job"),
    ("openai/responses", {"input": "hi", "previous_response_id": "resp_1"},
     "invalid_payload: previous_response_id: the worker keeps no state between jobs: send the whole conversation in "
     "each job"),
    ("openai/responses", {"input": "hi", "background": True},
     "invalid_payload: background: the queue holds the job until its result: a background run has no one to poll it"),
    ("openai/responses", {"input": "hi", "stream": True},
     "invalid_payload: stream: the queue returns one result, so streaming is refused"),
    ("openai/responses", {"input": "hi", "extra_body": {"conversation": "c1"}},
     "invalid_payload: extra_body.conversation: the worker keeps no state between jobs: send the whole conversation "
     "in each job"),
    ("anthropic/messages", {"messages": MESSAGES}, "invalid_payload: max_tokens: Field required"),
    ("anthropic/messages", {"messages": [{"role": "system", "content": "x"}], "max_tokens": 2},
     "invalid_payload: messages.0.role: Input should be 'user' or 'assistant' (got 'system')"),
    ("anthropic/messages", {"messages": MESSAGES, "max_tokens": 2, "stream": True},
     "invalid_payload: stream: the queue returns one result, so streaming is refused"),
    ("vllm/tokenize", {"prompt": "a", "messages": MESSAGES}, "invalid_payload: give one input: prompt or messages"),
    ("vllm/detokenize", {"tokens": [-1]},
     "invalid_payload: tokens.0: Input should be greater than or equal to 0 (got -1)"),
    ("vllm/classify", {}, "invalid_payload: give one input: input or messages"),
    ("openai/chat-batch", {"messages": [MESSAGES] * 5},
     "invalid_payload: messages: 5 conversations is over 4 generations per job (CASOLA_MAX_BATCH)"),
    ("openai/chat-batch", {"messages": [MESSAGES] * 2, "n": 3},
     "invalid_payload: messages: 2 conversations times n=3 is over 4 generations per job (CASOLA_MAX_BATCH)"),
    ("openai/chat-batch", {"messages": [MESSAGES], "n": 9},
     "invalid_payload: n: at most 8 choices per job (CASOLA_MAX_CHOICES) (got 9)"),
    ("openai/chat-batch", {"messages": MESSAGES}, "invalid_payload: messages.0: Input should be a valid list"),
    ("openai/chat-batch", {"messages": [MESSAGES], "tools": [{"type": "function", "function": {"name": "f"}}]},
     "invalid_payload: tools: vLLM's batch route does not take it (send such jobs one conversation each, as "
     "openai/chat-completion)"),
]  # fmt: skip


@pytest.mark.parametrize(("job_type", "payload", "error"), REFUSALS)
async def test_every_refusal_is_named_before_vllm_sees_the_job(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, job_type: str, payload: dict[str, Any],
    error: str,
) -> None:  # fmt: skip
    await start_worker(CASOLA_MAX_BATCH=4)
    await queue.push(job("r", job_type, payload))
    assert (await queue.wait_for_type("job_error", "r"))["error"] == error
    assert fake_vllm.record.requests == []


async def test_a_kind_whose_route_this_vllm_does_not_serve_is_told_its_flags(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.runner = "generate"
    await start_worker()
    await queue.push(job("c", "vllm/classify", {"input": "good"}))
    assert (await queue.wait_for_type("job_error", "c"))["error"] == (
        "inference_error: this vLLM does not serve /classify: vllm/classify jobs need a classification model "
        "(--runner pooling --convert classify in VLLM_EXTRA_ARGS)"
    )

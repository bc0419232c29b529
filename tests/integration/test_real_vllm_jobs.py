"""Chat jobs through the worker against one shared real vLLM server (the tiny model on the CPU)."""

import asyncio
import time

import httpx
import pytest

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.conftest import eventually
from tests.integration.conftest import StartWorker, chat
from tests.integration.real_vllm import (
    LONG,
    generation_tokens,
    requests_running,
)

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


async def test_results_carry_real_usage_and_finish_reasons(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port)
    await queue.push(chat_job("len", chat(), max_tokens=8, temperature=0.0, extra_body={"ignore_eos": True}))
    completion = (await queue.wait_for_type("job_result", "len", timeout=60))["result"]["completion"]
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 8
    assert completion["usage"]["prompt_tokens"] > 0
    assert completion["usage"]["total_tokens"] == completion["usage"]["prompt_tokens"] + 8
    assert completion["object"] == "chat.completion" and completion["model"] == "default"

    await queue.push(chat_job("free", chat(), max_tokens=40, temperature=0.0, extra_body={"ignore_eos": True}))
    text = (await queue.wait_for_type("job_result", "free", timeout=60))["result"]["completion"]["choices"][0]
    full = text["message"]["content"]
    stop = full[12:16]
    assert len(stop) == 4, full
    await queue.push(chat_job("stop", chat(), max_tokens=40, temperature=0.0, stop=[stop]))
    stopped = (await queue.wait_for_type("job_result", "stop", timeout=60))["result"]["completion"]["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["message"]["content"] == full[: full.index(stop)]


async def test_thirty_two_jobs_at_capacity_eight_run_concurrently(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port, CASOLA_MAX_JOBS=8)
    peak = 0.0

    async def watch_metrics() -> None:
        nonlocal peak
        async with httpx.AsyncClient() as client:
            while True:
                peak = max(peak, await requests_running(client, vllm_port) or 0)
                await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_metrics())
    try:
        sent = 0
        while sent < 32:  # the queue keeps at most 8 in flight, as it would for a worker of capacity 8
            done = len(queue.frames_of("job_result")) + len(queue.frames_of("job_error"))
            if sent - done < 8:
                await queue.push(chat_job(f"j{sent}", chat(), max_tokens=256, extra_body={"ignore_eos": True}))
                sent += 1
            else:
                await asyncio.sleep(0.005)
        await eventually(lambda: len(queue.frames_of("job_result")) == 32, timeout=180, what="32 results")
    finally:
        watcher.cancel()
    assert queue.frames_of("job_error") == []
    assert peak >= 4, f"vLLM ran at most {peak} requests at once"


async def test_a_revoked_job_leaves_vllm_and_sends_nothing(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port, CASOLA_MAX_JOBS=2)
    async with httpx.AsyncClient() as client:
        before = await generation_tokens(client, vllm_port)
        await queue.push(chat_job("revoked", chat(), **LONG))
        await eventually_running(client, vllm_port)
        await queue.push({"type": "job_revoked", "job_id": "revoked", "reason": "test"})
        deadline = time.monotonic() + 120
        while await requests_running(client, vllm_port) != 0:
            assert time.monotonic() < deadline, "vLLM still runs the revoked job"
            await asyncio.sleep(0.01)
        generated = await generation_tokens(client, vllm_port) - before
    assert generated < LONG["max_tokens"], f"vLLM wrote all {generated} tokens: the revoke did not abort it"
    await queue.push(chat_job("after", chat(), max_tokens=4))
    await queue.wait_for_type("job_result", "after", timeout=60)
    assert [frame for frame in queue.received if frame.get("job_id") == "revoked"] == []


async def eventually_running(client: httpx.AsyncClient, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (await requests_running(client, port) or 0) >= 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the job never showed in vllm:num_requests_running")


async def test_a_payload_vllm_rejects_comes_back_with_vllms_reason(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port)
    await queue.push(chat_job("too-long", chat(), max_tokens=100_000))
    error = (await queue.wait_for_type("job_error", "too-long", timeout=60))["error"]
    assert error.startswith("inference_error: vLLM answered HTTP 400: ")
    assert "8192" in error  # vLLM names the model's context length

"""The fields and kinds a job may use follow the served vLLM's own /openapi.json: a fake vLLM describing a newer vLLM
(one field added, one gone, no pooling routes), one describing nothing (the built-in lists and their one warning),
and one that comes back after a silence describing itself anew."""

import asyncio
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testbed.fake_vllm import FakeVllm
from testbed.fake_vllm_answers import openapi_document
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import chat_job
from domain.kinds import CHAT, COMPLETION
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import RunningWorker, StartWorker, chat

NEWER_CHAT = {*CHAT.payload.known_names(), "stream", "return_weight_versions"} - {"watermarking", "task", "job_type"}
NEWER = openapi_document(
    {"/v1/chat/completions": NEWER_CHAT, "/v1/completions": set(COMPLETION.payload.known_names()) - {"task"}}
)
FALLBACK_WARNING = "serves no /openapi.json (started with --disable-fastapi-docs?)"


def vllm_info(worker: RunningWorker) -> dict[str, str]:
    text = worker.service.metrics.text().decode()  # type: ignore[attr-defined]
    family = next(family for family in text_string_to_metric_families(text) if family.name == "worker_vllm_vllm_info")
    return dict(family.samples[0].labels)


async def test_fields_and_kinds_follow_the_served_vllms_own_description(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.version, fake_vllm.behaviour.openapi = "0.33.0", NEWER
    worker = await start_worker(CASOLA_MAX_JOBS=4)
    await queue.push(chat_job("added", chat(), return_weight_versions=True))
    await queue.push(chat_job("inside", chat(), extra_body={"return_weight_versions": False, "temprature": 1}))
    await queue.push(chat_job("removed", chat(), watermarking=True))
    await queue.push({**chat_job("pooling", chat()), "job_type": "openai/embeddings", "payload": {"input": "a"}})
    assert (await queue.wait_for_type("job_result", "added"))["result"]["completion"]["object"] == "chat.completion"
    inside = (await queue.wait_for_type("job_error", "inside"))["error"]
    removed = (await queue.wait_for_type("job_error", "removed"))["error"]
    pooling = (await queue.wait_for_type("job_error", "pooling"))["error"]
    assert inside == "invalid_payload: extra_body.temprature: vLLM 0.33.0 does not take this field"
    assert removed == "invalid_payload: watermarking: vLLM 0.33.0 does not take this field"
    assert pooling == (
        "unsupported_job_type: openai/embeddings: this vLLM (0.33.0, serving default) does not serve /v1/embeddings; "
        "openai/embeddings jobs need a pooling model (--runner pooling --convert embed in VLLM_EXTRA_ARGS)"
    )
    assert [request.get("return_weight_versions") for request in fake_vllm.record.requests] == [True]  # one request
    running = await asyncio.to_thread(fake_api.wait_for_status, "running")
    assert running["vllm_version"] == "0.33.0"
    assert running["job_kinds"] == ["openai/chat-completion", "openai/completion"]
    assert vllm_info(worker) == {
        "version": "0.33.0", "kinds": "openai/chat-completion,openai/completion", "fields": "openapi"
    }  # fmt: skip


async def test_without_openapi_json_the_built_in_lists_judge_with_one_warning(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="worker")
    worker = await start_worker(CASOLA_MAX_JOBS=2)
    await queue.push(chat_job("unknown", chat(), return_weight_versions=True))
    await queue.push(chat_job("escape", chat(), extra_body={"return_weight_versions": True}))
    unknown = (await queue.wait_for_type("job_error", "unknown"))["error"]
    assert unknown.startswith("invalid_payload: return_weight_versions: unknown field, refused rather than dropped")
    await queue.wait_for_type("job_result", "escape")
    assert fake_vllm.record.requests[0]["return_weight_versions"] is True  # extra_body passes, as before
    warnings = [record.getMessage() for record in caplog.records if FALLBACK_WARNING in record.getMessage()]
    assert warnings == [
        "vLLM 0.32.0 serves no /openapi.json (started with --disable-fastapi-docs?): a job's fields are judged by the "
        "built-in lists, copied from vLLM 0.32.0, and extra_body passes as given"
    ]
    assert vllm_info(worker) == {"version": "0.32.0", "kinds": "unknown", "fields": "built-in"}
    beat = await asyncio.to_thread(fake_api.wait_for_status, "running")
    assert beat["vllm_version"] == "0.32.0" and "job_kinds" not in beat


async def test_a_vllm_back_after_a_silence_is_read_anew(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    await start_worker()
    fake_vllm.behaviour.healthy = False  # one failed check pauses dispatch; three would fail the worker
    await queue.wait_for_type("pause", timeout=10)
    fake_vllm.behaviour.version, fake_vllm.behaviour.openapi = "0.33.0", NEWER  # another vLLM took its place
    fake_vllm.behaviour.healthy = True
    await queue.wait_for_type("resume", timeout=10)
    await queue.push(chat_job("added", chat(), return_weight_versions=True))
    await queue.wait_for_type("job_result", "added")
    assert fake_vllm.record.requests[-1]["return_weight_versions"] is True
    assert sum(FALLBACK_WARNING in record.getMessage() for record in caplog.records) == 1

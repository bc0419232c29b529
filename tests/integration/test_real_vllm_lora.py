"""LoRA adapters on demand against real vLLM (CPU build) on the tiny chat model and its tiny adapters
(`make vllm-env` builds them): vLLM started as the worker starts it with CASOLA_LORA_ROOT (--enable-lora, one
slot: --max-loras 1, runtime loading), the worker loading each adapter the first time a job names it."""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.real_vllm import TINY_LORAS, TINY_MODEL

from adapters.dev.local_queue import LocalQueue, chat_job
from domain.lora import RUNTIME_LOADING
from tests.integration.conftest import ROOT, StartWorker, real_vllm
from tests.integration.real_vllm import VLLM_ARGS, require_real_vllm

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
FIGURES = ROOT / ".cache" / "lora-figures.json"
SAME = {"temperature": 0.0, "seed": 7, "max_tokens": 12, "extra_body": {"ignore_eos": True}}
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def lora_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    require_real_vllm()
    if not (TINY_LORAS / "tiny-a" / "adapter_config.json").exists():
        pytest.fail("no tiny LoRA adapters: run `make vllm-env`")
    args = f"{VLLM_ARGS} --enable-lora --max-loras 1 --max-lora-rank 16"
    with real_vllm(tmp_path_factory.mktemp("lora-vllm"), args, environment=RUNTIME_LOADING) as port:
        yield port


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shelf = tmp_path / "loras"
    shutil.copytree(TINY_LORAS, shelf)
    return shelf


async def answer(queue: LocalQueue, job_id: str, model: str) -> tuple[str, float]:
    started = time.monotonic()
    await queue.push(chat_job(job_id, PROMPT, model=model, **SAME))
    frame = await queue.wait_for(lambda f: f.get("job_id") == job_id and f["type"] != "job_progress", timeout=120)
    took = time.monotonic() - started
    assert frame["type"] == "job_result", frame
    return str(frame["result"]["completion"]["choices"][0]["message"]["content"]), took


async def error(queue: LocalQueue, job_id: str, model: str) -> str:
    await queue.push(chat_job(job_id, PROMPT, model=model, **SAME))
    frame = await queue.wait_for(lambda f: f.get("job_id") == job_id and f["type"] != "job_progress", timeout=120)
    assert frame["type"] == "job_error", frame
    return str(frame["error"])


async def test_adapters_load_on_demand_answer_unlike_the_base_and_outnumber_the_slots(
    queue: LocalQueue, lora_vllm: int, start_worker: StartWorker, root: Path
) -> None:
    await start_worker(VLLM_PORT=lora_vllm, VLLM_MODEL=str(TINY_MODEL), CASOLA_LORA_ROOT=root)
    base, base_s = await answer(queue, "base", "default")
    a, a_first = await answer(queue, "a", "tiny-a")
    again, a_warm = await answer(queue, "a-again", "tiny-a")
    b, _ = await answer(queue, "b", "tiny-b")
    c, _ = await answer(queue, "c", "tiny-c")  # three adapters, one slot: vLLM evicts the least recently used
    back, _ = await answer(queue, "a-back", "tiny-a")
    assert len({base, a, b, c}) == 4, (base, a, b, c)  # each adapter changes the answer, the same seed and prompt
    assert again == a and back == a  # and keeps it, evicted and loaded again or not
    base_again, base_warm = await answer(queue, "base-again", "default")
    assert base_again == base
    figures = {"base_seconds": base_warm, "adapter_first_seconds": a_first, "adapter_warm_seconds": a_warm,
               "base_first_seconds": base_s}  # fmt: skip
    FIGURES.write_text(json.dumps({name: round(value, 3) for name, value in figures.items()}, indent=2) + "\n")
    print(f"\nLoRA on the tiny model: {figures}")


async def test_what_is_not_an_adapter_of_this_model_is_refused_and_a_bad_one_fails_alone(
    queue: LocalQueue, lora_vllm: int, start_worker: StartWorker, root: Path
) -> None:
    await start_worker(VLLM_PORT=lora_vllm, VLLM_MODEL=str(TINY_MODEL), CASOLA_LORA_ROOT=root)
    assert await error(queue, "up", "../tiny-loras") == (
        "invalid_payload: model: ../tiny-loras cannot name an adapter: a path separator"
    )
    assert (await error(queue, "none", "tiny-z")).startswith("invalid_payload: model: tiny-z is neither served nor")
    assert await error(queue, "llama", "other-base") == (
        "invalid_payload: model: adapter other-base was made for meta-llama/Llama-3.1-8B-Instruct, not the served "
        f"model {TINY_MODEL}"
    )
    wide = await error(queue, "wide", "too-wide")
    assert wide.startswith("inference_error: adapter too-wide: vLLM cannot load it: vLLM answered HTTP "), wide
    assert "32" in wide and "16" in wide, wide  # vLLM's reason: its rank against --max-lora-rank
    bad = await error(queue, "bad", "bad-weights")
    assert bad.startswith("inference_error: adapter bad-weights: vLLM cannot load it: vLLM answered HTTP "), bad
    await answer(queue, "still", "tiny-b")


async def test_an_adapter_added_to_the_root_while_the_worker_runs_is_served(
    queue: LocalQueue, lora_vllm: int, start_worker: StartWorker, root: Path
) -> None:
    await start_worker(VLLM_PORT=lora_vllm, VLLM_MODEL=str(TINY_MODEL), CASOLA_LORA_ROOT=root)
    assert (await error(queue, "early", "fresh")).startswith("invalid_payload: model: fresh is neither served")
    shutil.copytree(root / "tiny-b", root / "fresh")
    fresh, _ = await answer(queue, "fresh", "fresh")
    b, _ = await answer(queue, "b", "tiny-b")
    assert fresh == b  # the same weights under another name
    config: dict[str, Any] = json.loads((root / "fresh" / "adapter_config.json").read_text())
    assert config["r"] == 8

"""LoRA adapters on demand, through the real worker against the fake vLLM (which loads what it is asked to, and lists
it in /v1/models): a job names an adapter under CASOLA_LORA_ROOT, the first loads it, later ones use it; names that
are not an adapter's are refused before anything reaches vLLM."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import chat_job
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import StartWorker, chat


def adapter(root: Path, name: str, base: str = "tiny", rank: int = 8) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": rank}))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shelf = tmp_path / "loras"
    adapter(shelf, "sql")
    adapter(shelf, "support")
    adapter(shelf, "for-llama", base="meta-llama/Llama-3.1-8B")
    adapter(shelf, "broken")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tiny"}))
    return shelf


async def error_of(queue: ScriptedQueue, job_id: str, model: str) -> str:
    await queue.push(chat_job(job_id, chat(), model=model))
    return str((await queue.wait_for_type("job_error", job_id))["error"])


async def test_the_first_job_for_an_adapter_loads_it_and_later_jobs_use_it(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker, root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="worker")
    worker = await start_worker(CASOLA_LORA_ROOT=root, CASOLA_MAX_JOBS=4)
    for number in range(3):  # three at once: one load
        await queue.push(chat_job(f"sql-{number}", chat(), model="sql"))
    for number in range(3):
        await queue.wait_for_type("job_result", f"sql-{number}")
    await queue.push(chat_job("support", chat(), model="support"))
    await queue.wait_for_type("job_result", "support")
    assert fake_vllm.record.lora_loads == [("sql", str(root / "sql")), ("support", str(root / "support"))]
    assert [request["model"] for request in fake_vllm.record.requests] == ["sql", "sql", "sql", "support"]
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("job sql-0 done in ") and "(adapter sql; prompt " in line for line in lines), lines
    assert any(line.startswith("LoRA adapter sql loaded in ") for line in lines)
    await eventually(lambda: any(beat.get("loras_loaded") == 2 for beat in fake_api.heartbeats), what="2 loaded")
    assert next(beat for beat in fake_api.heartbeats if beat.get("loras_loaded") == 2)["status"] == "running"
    metrics = worker.service.metrics.text().decode()  # type: ignore[attr-defined]
    assert 'worker_vllm_lora_loads_total{adapter="sql",outcome="loaded"} 1.0' in metrics
    assert 'worker_vllm_lora_load_seconds_count{adapter="support"} 1.0' in metrics


REFUSED = [  # (model, the error), none reaching vLLM
    ("../outside", "invalid_payload: model: ../outside cannot name an adapter: a path separator"),
    ("..", "invalid_payload: model: .. cannot name an adapter: '..'"),
    ("sql\x00", "invalid_payload: model: sql\\x00 cannot name an adapter: a control character"),
    ("missing", "invalid_payload: model: missing is neither served nor an adapter under CASOLA_LORA_ROOT "
                "(no missing/adapter_config.json)"),
    ("for-llama", "invalid_payload: model: adapter for-llama was made for meta-llama/Llama-3.1-8B, not the served "
                  "model tiny"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "error"), REFUSED)
async def test_a_name_that_is_no_adapter_of_the_served_model_is_refused_by_name(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, root: Path, model: str, error: str
) -> None:
    await start_worker(CASOLA_LORA_ROOT=root)
    assert await error_of(queue, "bad", model) == error
    assert fake_vllm.record.lora_loads == [] and fake_vllm.record.requests == []


async def test_a_load_vllm_refuses_fails_that_job_with_its_reason_and_the_worker_serves_on(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, root: Path
) -> None:
    fake_vllm.behaviour.lora_refusals = {"broken": "LoRA rank 64 is greater than max_lora_rank 16."}
    await start_worker(CASOLA_LORA_ROOT=root)
    assert await error_of(queue, "b", "broken") == (
        "inference_error: adapter broken: vLLM cannot load it: vLLM answered HTTP 500: LoRA rank 64 is greater than "
        "max_lora_rank 16."
    )
    await queue.push(chat_job("sql", chat(), model="sql"))
    await queue.wait_for_type("job_result", "sql")


async def test_an_adapter_added_while_the_worker_runs_is_served(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, root: Path
) -> None:
    await start_worker(CASOLA_LORA_ROOT=root)
    assert (await error_of(queue, "early", "late")).startswith("invalid_payload: model: late is neither served")
    adapter(root, "late")
    await queue.push(chat_job("now", chat(), model="late"))
    await queue.wait_for_type("job_result", "now")
    assert fake_vllm.record.lora_loads == [("late", str(root / "late"))]


async def test_without_a_lora_root_an_unknown_model_is_refused_as_before(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    await start_worker()
    assert await error_of(queue, "x", "sql") == "invalid_payload: model: sql is not served here; served: default"
    assert fake_vllm.record.lora_loads == []


async def test_a_vllm_that_cannot_load_at_run_time_is_told_how_to_start(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, root: Path
) -> None:
    fake_vllm.behaviour.lora = False
    await start_worker(CASOLA_LORA_ROOT=root)
    error = await error_of(queue, "x", "sql")
    assert error.startswith("inference_error: adapter sql: vLLM cannot load it: this vLLM does not load adapters at ")
    assert "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1" in error


def test_the_launch_command_enables_lora_and_runtime_loading() -> None:
    from application.settings import load_settings

    base = {
        "CASOLA_WS_URL": "ws://127.0.0.1:9",
        "CASOLA_CONFIG_ID": "c",
        "VLLM_MODEL": "m",
        "CASOLA_LORA_ROOT": "/loras",
    }
    settings = load_settings(base | {"CASOLA_MAX_LORAS": "4", "CASOLA_MAX_LORA_RANK": "32"})
    assert settings.vllm_command[-5:] == ["--enable-lora", "--max-loras", "4", "--max-lora-rank", "32"]
    assert settings.vllm_environment["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"
    given: dict[str, Any] = base | {"VLLM_EXTRA_ARGS": "--enable-lora --max-loras 2"}
    assert load_settings(given).vllm_command[-3:] == ["--enable-lora", "--max-loras", "2"]
    without = load_settings({name: value for name, value in base.items() if name != "CASOLA_LORA_ROOT"})
    assert "--enable-lora" not in without.vllm_command
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in without.vllm_environment

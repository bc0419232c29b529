"""Log lines and system metrics shipped to the fake API by a real `worker-vllm run`: masked, batched, nothing lost."""

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import chat, cli, spawn, stand_in_nvidia_smi, terminate, worker_environment

pytestmark = pytest.mark.slow
HF_TOKEN = "hf_do_not_ship_me_4242"


def entries(fake_api: FakeApi) -> list[dict[str, Any]]:
    return [entry for batch in fake_api.posts.get("/api/logs", []) for entry in batch["entries"]]


async def test_log_lines_are_shipped_masked_with_job_ids_and_survive_an_outage(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    environment = worker_environment(
        queue, fake_vllm, fake_api, CASOLA_MAX_JOBS=2, CASOLA_LOGS_URL=f"{fake_api.url}/api/logs",
        CASOLA_LOG_FLUSH_INTERVAL=0.2, HF_TOKEN=HF_TOKEN,
    )  # fmt: skip
    process = spawn(cli("run"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        await queue.push(chat_job("first", chat()))
        await eventually(lambda: any("job first done" in e["message"] for e in entries(fake_api)), what="shipped")
        fake_api.failing.add("/api/logs")  # an outage shorter than the buffer
        fake_vllm.behaviour.status, fake_vllm.behaviour.error_message = 400, f"bad token {HF_TOKEN}"
        for number in range(5):
            await queue.push(chat_job(f"during-{number}", chat()))
            await queue.wait_for_type("job_error", f"during-{number}")
        await eventually(lambda: fake_api.refused.get("/api/logs", 0) >= 2, what="two failed flushes")
        fake_api.failing.clear()
        await eventually(
            lambda: sum("during-" in e["message"] for e in entries(fake_api)) >= 5, what="the outage's lines"
        )
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        terminate(process)
    shipped = entries(fake_api)
    assert fake_api.posts["/api/logs"][0]["instance_id"] == "worker-1"
    assert fake_api.posts["/api/logs"][0]["queue_id"] == "vllm-queue"
    done = next(e for e in shipped if "job first done" in e["message"])
    assert (done["job_id"], done["source"], done["level"], done["config_id"]) == ("first", "worker", "info", "cfg-1")
    assert isinstance(done["timestamp"], float)
    assert all(f"job during-{number} failed" in " ".join(e["message"] for e in shipped) for number in range(5))
    assert HF_TOKEN not in str(fake_api.posts)
    assert shipped[-1]["message"] == "worker stopped"  # flushed at shutdown


async def test_a_flush_under_way_at_shutdown_is_let_finish_so_no_line_is_shipped_twice(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    environment = worker_environment(
        queue, fake_vllm, fake_api, CASOLA_LOGS_URL=f"{fake_api.url}/api/logs", CASOLA_LOG_FLUSH_INTERVAL=0.2
    )
    process = spawn(cli("run"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        fake_api.slow_paths["/api/logs"] = 1.0  # each batch takes the API 1 s to take in
        fake_api.holding.clear()
        await queue.push(chat_job("shipped-once", chat()))
        await queue.wait_for_type("job_result", "shipped-once")
        assert await asyncio.to_thread(fake_api.holding.wait, 10), "no batch reached the API"
        process.send_signal(signal.SIGTERM)  # while that batch is being taken in
        assert await asyncio.to_thread(process.wait, 15) == 0
        assert await asyncio.to_thread(fake_api.held.wait, 10), "the batch was never recorded"
    finally:
        terminate(process)
    shipped = [(entry["timestamp"], entry["message"]) for entry in entries(fake_api)]
    assert len(shipped) == len(set(shipped)), [line for line in shipped if shipped.count(line) > 1][:3]
    assert any("job shipped-once done" in message for _, message in shipped)
    assert shipped[-1][1] == "worker stopped"


async def test_system_metrics_snapshots_carry_the_gpu_and_vllms_load(
    tmp_path: Path, queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    environment = worker_environment(
        queue, fake_vllm, fake_api, CASOLA_METRICS_URL=f"{fake_api.url}/api/metrics", CASOLA_METRICS_INTERVAL=0.2
    )
    environment["PATH"] = f"{stand_in_nvidia_smi(tmp_path, '1024, 81920, 37, 55')}:/usr/bin:/bin"
    process = spawn(cli("run"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        fake_vllm.behaviour.hang = True
        await queue.push(chat_job("long", chat()))

        def snapshots() -> list[dict[str, Any]]:
            return [snap for batch in fake_api.posts.get("/api/metrics", []) for snap in batch["snapshots"]]

        await eventually(lambda: any(s.get("current_job_id") == "long" for s in snapshots()), what="a busy snapshot")
    finally:
        terminate(process)
    batch = fake_api.posts["/api/metrics"][0]
    assert (batch["instance_id"], batch["queue_id"], batch["config_id"]) == ("worker-1", "vllm-queue", "cfg-1")
    busy = next(s for s in snapshots() if s.get("current_job_id") == "long")
    assert (busy["gpu_memory_used_mb"], busy["gpu_memory_total_mb"]) == (1024, 81920)
    assert (busy["gpu_utilization_pct"], busy["gpu_temperature_c"]) == (37, 55)
    assert busy["vllm_running_requests"] == 1 and busy["vllm_waiting_requests"] == 0
    assert busy["worker_uptime_s"] >= 0

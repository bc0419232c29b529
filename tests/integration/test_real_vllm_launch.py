"""The worker launches real vLLM itself (`run --launch-vllm`), exactly as in production, and survives its death."""

import asyncio
import os
import signal
import subprocess
import threading
import time

import psutil
import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import alive, chat, cli, free_port, spawn, terminate, worker_environment
from tests.integration.real_vllm import (
    LONG,
    TINY_MODEL,
    VLLM_ARGS,
    VLLM_COMMAND,
    require_real_vllm,
    spawn_installed,
    worker_as_in_the_image,
)

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
LAUNCH = cli("run", "--launch-vllm", "--log-level", "debug")  # debug: "job ... started" lines
TOOL = {"type": "function", "function": {"name": "get_city", "parameters": {"type": "object"}}}


def launch_environment(queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi, port: int) -> dict[str, str]:
    return worker_environment(
        queue, fake_vllm, fake_api, VLLM_PORT=port, VLLM_MODEL=TINY_MODEL, VLLM_SERVE_COMMAND=VLLM_COMMAND,
        VLLM_EXTRA_ARGS=VLLM_ARGS, VLLM_STARTUP_TIMEOUT=400, CASOLA_HEARTBEAT_INTERVAL=5,
        CASOLA_SHUTDOWN_GRACE_PERIOD=60,
    )  # fmt: skip


def family(pid: int) -> list[int]:
    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


class WorkerLog:
    """The worker's stderr, read line by line in a thread, so a test can wait for a log line."""

    def __init__(self, worker: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert worker.stderr is not None
        self.stream = worker.stderr
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    async def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"no log line with {text!r}"
            await asyncio.sleep(0.01)


async def test_sigterm_mid_job_finishes_it_stops_vllm_and_exits_zero(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    """With the worker in an environment of its own made from requirements.lock, as the image has it."""
    require_real_vllm()
    port = free_port()
    installed = worker_as_in_the_image()
    command = [str(installed), *LAUNCH[3:]]  # `worker-vllm run --launch-vllm --log-level debug`
    worker = spawn_installed(command, launch_environment(queue, fake_vllm, fake_api, port))
    log = WorkerLog(worker)
    try:
        await queue.wait_for_type("register", timeout=420)
        processes = family(worker.pid)
        await queue.push(chat_job("first", chat(), max_tokens=4))
        first = (await queue.wait_for_type("job_result", "first", timeout=60))["result"]
        assert first["completion"]["usage"]["completion_tokens"] == 4
        await queue.push(chat_job("tools", chat(), tools=[TOOL], tool_choice="auto"))  # launched without tool calling
        tools = (await queue.wait_for_type("job_error", "tools", timeout=60))["error"]
        await queue.push(chat_job("long", chat(), **LONG))
        await log.wait_for("job long started")
        worker.send_signal(signal.SIGTERM)
        result = await queue.wait_for_type("job_result", "long", timeout=60)
        code = await asyncio.to_thread(worker.wait, 90)
    finally:
        terminate(worker)
    assert code == 0
    assert tools.startswith('inference_error: vLLM answered HTTP 400: "auto" tool choice requires')
    assert tools.endswith("add both to VLLM_EXTRA_ARGS") and "--enable-auto-tool-choice --tool-call-parser" in tools
    assert result["result"]["completion"]["usage"]["completion_tokens"] == 6000
    assert queue.frames_of("drain")
    assert fake_api.statuses()[-1] == "stopping"
    assert not [pid for pid in processes if alive(pid)]


async def test_vllm_killed_mid_job_fails_the_job_and_the_worker(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    require_real_vllm()
    port = free_port()
    worker = spawn(LAUNCH, launch_environment(queue, fake_vllm, fake_api, port))
    log = WorkerLog(worker)
    try:
        await queue.wait_for_type("register", timeout=420)
        processes = family(worker.pid)
        vllm = psutil.Process(worker.pid).children()[0].pid
        await queue.push(chat_job("warm-up", chat(), max_tokens=4))
        await queue.wait_for_type("job_result", "warm-up", timeout=60)
        await queue.push(chat_job("doomed", chat(), **LONG))
        await log.wait_for("job doomed started")
        os.killpg(vllm, signal.SIGKILL)
        error = await queue.wait_for_type("job_error", "doomed", timeout=30)
        code = await asyncio.to_thread(worker.wait, 60)
    finally:
        terminate(worker)
    assert error["error"].startswith("vllm_unavailable:")
    assert code == 1
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "error" and "vLLM exited" in beat["error_message"]
    assert not [pid for pid in processes if alive(pid)]


async def test_a_hung_engine_is_noticed_and_a_long_generation_is_not(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    """vLLM's engine core stopped by SIGSTOP: /health still answers, but the held job makes no progress; a long real
    generation with the stall timeout set below its duration is not flagged first."""
    require_real_vllm()
    port, stall = free_port(), 5
    environment = launch_environment(queue, fake_vllm, fake_api, port) | {"CASOLA_VLLM_STALL_TIMEOUT": str(stall)}
    worker = spawn(LAUNCH, environment)
    log = WorkerLog(worker)
    try:
        await queue.wait_for_type("register", timeout=420)
        processes = family(worker.pid)
        begun = time.monotonic()
        await queue.push(chat_job("long", chat(), **LONG))
        result = await queue.wait_for_type("job_result", "long", timeout=180)
        long_took = time.monotonic() - begun
        await queue.push(chat_job("held", chat(), **LONG))
        await log.wait_for("job held started")
        engine = next(pid for pid in processes if "EngineCor" in psutil.Process(pid).name())
        os.kill(engine, signal.SIGSTOP)
        stopped_at = time.monotonic()
        error = await queue.wait_for_type("job_error", "held", timeout=120)
        detected = time.monotonic() - stopped_at
        code = await asyncio.to_thread(worker.wait, 90)
    finally:
        terminate(worker)
    assert long_took > stall and result["result"]["completion"]["usage"]["completion_tokens"] == 6000
    assert error["error"].startswith("vllm_stalled: vLLM stalled"), error
    assert code == 1
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "error" and beat["error_message"].startswith("vLLM stalled")
    assert not [pid for pid in processes if alive(pid)], "vLLM's processes, stopped or not, are gone"
    print(
        f"\nlong generation {long_took:.1f} s not flagged at a {stall} s stall timeout; stall detected {detected:.1f} s"
    )

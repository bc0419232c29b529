"""The test bed: a fake queue, a fake vLLM and a fake API on 127.0.0.1, and the worker wired by its container."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import LocalQueue
from adapters.dev.openai_front import OpenAIFront
from adapters.queue.websocket import Backoff, WebSocketQueue
from application.service import WorkerService
from application.settings import Settings, load_settings
from application.timings import Timings
from domain.untrusted import Masker
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.real_vllm import (
    TINY_MODEL,
    VLLM_ARGS,
    VLLM_COMMAND,
    require_real_vllm,
    start_vllm,
    stop_group,
    wait_until_ready,
)
from wiring import Container

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789"
TOOL_CALLING = "--enable-auto-tool-choice --tool-call-parser hermes"
FAST = Timings(health_interval=0.1, readiness_interval=0.05, flush_timeout=2.0)


@pytest.fixture
def fake_vllm() -> Iterator[FakeVllm]:
    server = FakeVllm().start()
    yield server
    server.stop()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    server = FakeApi().start()
    yield server
    server.stop()


@pytest.fixture
async def queue() -> AsyncIterator[ScriptedQueue]:
    async with ScriptedQueue() as local_queue:
        yield local_queue


def worker_environment(
    queue: LocalQueue, fake_vllm: FakeVllm | None, fake_api: FakeApi, **overrides: Any
) -> dict[str, str]:
    """The worker's variables for the test bed; without a fake vLLM, VLLM_PORT comes in `overrides`."""
    environment = {
        "CASOLA_WS_URL": queue.url,
        "CASOLA_CONFIG_ID": "cfg-1",
        "CASOLA_INSTANCE_ID": "worker-1",
        "CASOLA_API_URL": fake_api.url,
        "CASOLA_API_TOKEN": TOKEN,
        "CASOLA_HEARTBEAT_INTERVAL": "0.2",
        "VLLM_MODEL": "tiny",
        "VLLM_PORT": str(fake_vllm.port if fake_vllm else 8000),
        "VLLM_STARTUP_TIMEOUT": "10",
        "WORKER_HTTP_PORT": "0",  # tests that read /metrics give a free port
        "CASOLA_BACKPRESSURE_CHECK_INTERVAL": "0.2",
    }
    environment.update({name: str(value) for name, value in overrides.items()})
    return environment


@dataclass
class RunningWorker:
    service: WorkerService
    task: "asyncio.Task[int]"

    async def stop(self, timeout: float = 15.0) -> int:
        self.service.request_shutdown()
        return await asyncio.wait_for(self.task, timeout)

    async def exit_code(self, timeout: float = 15.0) -> int:
        return await asyncio.wait_for(asyncio.shield(self.task), timeout)


StartWorker = Callable[..., Awaitable[RunningWorker]]


@pytest.fixture
async def start_worker(queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi) -> AsyncIterator[StartWorker]:
    """Starts the worker in this event loop, wired by the real container with quick timings."""
    started: list[tuple[Container, RunningWorker]] = []

    async def start(wait_registered: bool = True, **overrides: Any) -> RunningWorker:
        settings: Settings = load_settings(worker_environment(queue, fake_vllm, fake_api, **overrides))
        container = Container(settings=settings)
        container.timings.override(FAST)
        container.queue.override(
            WebSocketQueue(
                settings.queue_url,
                settings.api_token,
                Backoff(0.1, 0.5),
                keepalive=settings.CASOLA_QUEUE_KEEPALIVE,
                masker=Masker(settings.secrets()),
            )
        )
        await container.init_resources()
        service = await container.service()
        running = RunningWorker(service, asyncio.create_task(service.run()))
        started.append((container, running))
        if wait_registered:
            await queue.wait_for_type("register", timeout=10)
        return running

    yield start
    for container, running in started:
        if not running.task.done():
            running.service.request_shutdown()
            running.service.request_shutdown()
            await asyncio.wait_for(running.task, 15)
        await container.shutdown_resources()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "main", *args]


def cli_environment(environment: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", **environment}


def spawn(args: list[str], environment: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, env=cli_environment(environment), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting to be reaped is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chat(content: str = "What is the capital of France?") -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="session")
def vllm_port(vllm_log_dir: Path) -> Iterator[int]:
    """One real vLLM (the tiny model, tool calling on) for the whole real-vLLM tier: its start is the slow part."""
    with real_vllm(vllm_log_dir, f"{VLLM_ARGS} {TOOL_CALLING}") as port:
        yield port


@pytest.fixture(scope="session")
def vllm_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tier's real vLLM writes its output (`vllm.log`), from its start on."""
    return tmp_path_factory.mktemp("vllm")


@contextmanager
def real_vllm(
    log_dir: Path,
    args: str,
    model: Path = TINY_MODEL,
    vllm: Path = VLLM_COMMAND,
    environment: dict[str, str] | None = None,
) -> Iterator[int]:
    """Real vLLM on a free port with `args` (and `environment`), ready; its whole group stopped after (skipped until
    set up)."""
    require_real_vllm(model, vllm)
    port = free_port()
    log = log_dir / "vllm.log"
    process = start_vllm(port, log, args, model=model, vllm=vllm, environment=environment)
    try:
        wait_until_ready(port, process, log)
        yield port
    finally:
        stop_group(process)


@asynccontextmanager
async def front_and_worker(fake_api: FakeApi, vllm_port: int, **overrides: Any) -> AsyncIterator[OpenAIFront]:
    """`worker-vllm dev`'s front on free ports and one worker (wired by the container) connected to it."""

    async def no_models() -> list[str]:
        return []

    async with OpenAIFront("127.0.0.1", 0, "127.0.0.1", 0, no_models, timeout=120) as front:
        variables = {"VLLM_PORT": vllm_port, "CASOLA_MAX_JOBS": 4, **overrides}
        settings = load_settings(worker_environment(front.queue, None, fake_api, **variables))
        container = Container(settings=settings)
        container.timings.override(FAST)
        container.queue.override(WebSocketQueue(settings.queue_url, settings.api_token, Backoff(0.1, 0.5)))
        probe = await container.probe()  # type: ignore[misc]
        front.list_models = probe.models
        service = await container.service()  # type: ignore[misc]
        task = asyncio.create_task(service.run())
        try:
            await eventually(lambda: front.queue.connected, timeout=30, what="the worker connected")
            yield front
        finally:
            service.request_shutdown()
            service.request_shutdown()
            await asyncio.wait_for(task, 15)
            await container.shutdown_resources()  # type: ignore[misc]


def stand_in_nvidia_smi(directory: Path, *rows: str, exit_code: int = 0, delay: float = 0) -> Path:
    """A directory holding an `nvidia-smi` that prints `rows` (and exits with `exit_code`): put it first in PATH."""
    bin_dir = directory / "gpu-bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "nvidia-smi"
    lines = "".join(f"echo '{row}'\n" for row in rows)
    script.write_text(f"#!/bin/sh\nsleep {delay}\n{lines}exit {exit_code}\n")
    script.chmod(0o755)
    return bin_dir

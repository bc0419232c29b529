"""What an operator sees of a real `worker-vllm run`: /metrics moving with its jobs, /healthz, /readyz, backpressure."""

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import chat, cli, free_port, spawn, terminate, worker_environment

pytestmark = pytest.mark.slow
CHAT = 'kind="openai/chat-completion"'


def sample(text: str, name: str, labels: str = "") -> float:
    """One sample of the Prometheus text, by name and the start of its label set."""
    pattern = rf"^{re.escape(name)}(\{{{re.escape(labels)}[^}}]*\}})? ([0-9.e+-]+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"no {name}{{{labels}}} in /metrics"
    return float(found.group(found.lastindex or 1))


class Worker:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process, self.url = process, f"http://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(base_url=self.url, timeout=5)

    async def metrics(self) -> str:
        answer = await self.http.get("/metrics")
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        return answer.text

    async def readyz(self) -> tuple[int, dict[str, object]]:
        answer = await self.http.get("/readyz")
        return answer.status_code, answer.json()


@pytest.fixture
async def worker(queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi) -> AsyncIterator[Worker]:
    port = free_port()
    environment = worker_environment(
        queue, fake_vllm, fake_api, CASOLA_MAX_JOBS=4, WORKER_HTTP_HOST="127.0.0.1", WORKER_HTTP_PORT=port,
        CASOLA_BACKPRESSURE_CHECK_INTERVAL=0.1, CASOLA_BACKPRESSURE_PAUSE_THRESHOLD=3,
        CASOLA_BACKPRESSURE_RESUME_THRESHOLD=1,
    )  # fmt: skip
    process = spawn(cli("run"), environment)
    running = Worker(process, port)
    try:
        await queue.wait_for_type("register", timeout=20)
        yield running
    finally:
        await running.http.aclose()
        terminate(process)


async def test_metrics_count_jobs_by_kind_and_outcome_while_they_run(
    queue: LocalQueue, fake_vllm: FakeVllm, worker: Worker
) -> None:
    assert (await worker.http.get("/healthz")).json() == {"status": "ok"}
    await queue.push(chat_job("ok", chat(), max_tokens=5))
    await queue.wait_for_type("job_result", "ok")
    await queue.push(chat_job("bad", chat(), temperature=3))
    await queue.wait_for_type("job_error", "bad")
    fake_vllm.behaviour.hang = True
    await queue.push(chat_job("gone", chat()))
    await eventually(lambda: fake_vllm.record.running == 1, what="the job in vLLM")
    during = await worker.metrics()
    assert sample(during, "worker_vllm_running_jobs") == 1
    await queue.push({"type": "job_revoked", "job_id": "gone", "reason": "client left"})
    await eventually(lambda: fake_vllm.record.closed, what="the request closed")
    text = await worker.metrics()
    assert sample(text, "worker_vllm_jobs_total", f'{CHAT},outcome="result"') == 1
    assert sample(text, "worker_vllm_jobs_total", f'{CHAT},outcome="invalid_payload"') == 1
    assert sample(text, "worker_vllm_jobs_total", f'{CHAT},outcome="revoked"') == 1
    assert sample(text, "worker_vllm_job_duration_seconds_count", CHAT) == 3
    assert sample(text, "worker_vllm_time_to_result_seconds_count", CHAT) == 1
    assert sample(text, "worker_vllm_tokens_total", 'direction="completion"') == 5
    assert sample(text, "worker_vllm_capacity") == 4
    assert sample(text, "worker_vllm_queue_connected") == 1
    assert sample(text, "worker_vllm_running_jobs") == 0
    assert sample(text, "worker_vllm_vllm_healthy") == 1
    assert sample(text, "worker_vllm_ready") == 1


async def test_readyz_follows_vllms_health_and_healthz_the_process(fake_vllm: FakeVllm, worker: Worker) -> None:
    assert await worker.readyz() == (200, {"ready": True, "reason": "ready"})
    fake_vllm.behaviour.healthy = False
    answers: list[tuple[int, dict[str, object]]] = []

    async def not_ready() -> bool:
        answers.append(await worker.readyz())
        return answers[-1][0] == 503

    await until(not_ready, "/readyz answers 503")
    fake_vllm.behaviour.healthy = True  # before a third failed check would fail the worker
    assert answers[-1] == (503, {"ready": False, "reason": "vLLM does not answer /health"})
    assert (await worker.http.get("/healthz")).status_code == 200

    async def ready() -> bool:
        return await worker.readyz() == (200, {"ready": True, "reason": "ready"})

    await until(ready, "/readyz answers 200 again")


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    """Polls an asynchronous `condition` until it is true; fails after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.01)


async def test_backpressure_pauses_above_the_threshold_and_resumes_at_the_lower_one(
    queue: LocalQueue, fake_vllm: FakeVllm, worker: Worker
) -> None:
    async def reads_after(count: int) -> None:
        start = fake_vllm.record.metrics_reads
        await eventually(lambda: fake_vllm.record.metrics_reads >= start + count, what=f"{count} /metrics reads")

    fake_vllm.behaviour.waiting = 3  # at the threshold: no pause
    await reads_after(3)
    assert queue.frames_of("pause") == []
    fake_vllm.behaviour.waiting = 4
    await queue.wait_for_type("pause")
    assert sample(await worker.metrics(), "worker_vllm_backpressure") == 1
    fake_vllm.behaviour.waiting = 2  # between the thresholds: stays paused
    await reads_after(3)
    assert queue.frames_of("resume") == []
    fake_vllm.behaviour.waiting = 1
    await queue.wait_for_type("resume")
    assert len(queue.frames_of("pause")) == 1 and len(queue.frames_of("resume")) == 1
    assert sample(await worker.metrics(), "worker_vllm_paused") == 0
    worker.process.terminate()
    await asyncio.to_thread(worker.process.wait, 15)
    log = worker.process.stderr.read() if worker.process.stderr else ""
    assert log.count("backpressure: 4 requests waiting in vLLM: pausing dispatch") == 1
    assert log.count("backpressure: 1 requests waiting in vLLM: resuming dispatch") == 1


async def test_a_job_is_followed_by_its_id_into_vllm_and_through_the_json_log(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    process = spawn(
        cli("run", "--log-format", "json"), worker_environment(queue, fake_vllm, fake_api, CASOLA_MAX_JOBS=2)
    )
    try:
        await queue.wait_for_type("register", timeout=20)
        await queue.push(chat_job("order-42", chat()))
        await queue.push(chat_job("two\nlines", chat(), temperature=0.1))
        await queue.wait_for_type("job_result", "order-42")
        await queue.wait_for_type("job_result", "two\nlines")
    finally:
        terminate(process)
    ids = fake_vllm.record.request_ids
    assert "order-42" in ids
    assert sorted(ids, key=str)[1].startswith("sha256-")  # the id with a newline: no header injection
    lines = [json.loads(line) for line in (process.stderr.read() if process.stderr else "").splitlines()]
    done = [line for line in lines if line["message"].startswith("job order-42 done")]
    assert done and done[0]["job_id"] == "order-42"
    assert all("job_id" not in line for line in lines if line["message"].startswith("queue: connected"))

"""A real `worker-vllm run` under payload bombs: its peak memory (VmHWM) grows by the cap and a small constant at most.

Each case warms the worker up with the same job against a well-behaved host, reads the process's peak RSS, then sends
the job whose host is hostile, and reads it again. The growth of each case is kept in .cache for the closing notes.
"""

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import chat_job
from adapters.payload_urls.store import MAX_PAYLOAD_BYTES
from tests.fakes.fake_api import FakeApi
from tests.fakes.hostile_http import Answer, HostileServer, MiB, bomb, endless
from tests.integration.conftest import ROOT, chat, cli, spawn, terminate, worker_environment

pytestmark = pytest.mark.slow
FIGURES = ROOT / ".cache" / "payload-bomb-figures.json"
# What a job may add to the peak beyond what it holds by right (the cap, for a GET): the allocator's slack around
# the 64 KiB chunks it keeps (measured 0.3 to 9 MiB), never a part of what a bomb inflates to.
SMALL = 16 * MiB
BIG_RESULT_TOKENS = 60_000  # a chat result of about 300 KB: over 256 KiB, so it is uploaded
PAYLOAD = {"messages": chat(), "max_tokens": BIG_RESULT_TOKENS}


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024


def record(case: str, growth: int) -> None:
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(figures | {case: round(growth / MiB, 1)}, indent=2) + "\n")


GET_BOMBS = {
    "payload_url gzip bomb (200 MiB decoded)": Answer(headers={"Content-Encoding": "gzip"}, body=bomb("gzip")),
    "payload_url deflate bomb (200 MiB decoded)": Answer(headers={"Content-Encoding": "deflate"}, body=bomb("deflate")),
    "payload_url body that never ends": Answer(body=endless),
}
PUT_BOMBS = {
    "result_upload_url answered with a gzip bomb": Answer(headers={"Content-Encoding": "gzip"}, body=bomb("gzip")),
    "result_upload_url answered with a deflate bomb": Answer(
        headers={"Content-Encoding": "deflate"}, body=bomb("deflate")
    ),
    "result_upload_url answered with a body that never ends": Answer(body=endless),
}


async def run_worker_through(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, host: HostileServer, jobs: list[dict[str, Any]]
) -> list[int]:
    """The worker's peak RSS after registering and after each job's answer."""
    fake_vllm.behaviour.completion_tokens = BIG_RESULT_TOKENS
    environment = worker_environment(
        queue, fake_vllm, fake_api, CASOLA_PAYLOAD_ALLOWED_HOSTS=f"127.0.0.1:{host.port}", CASOLA_PAYLOAD_TIMEOUT=30
    )
    process = spawn(cli("run"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        peaks = [peak_rss(process.pid)]
        for job in jobs:
            await queue.push(job)
            await queue.wait_for(lambda frame, job_id=job["job_id"]: answers(frame, job_id), timeout=60)
            peaks.append(peak_rss(process.pid))
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
        return peaks
    finally:
        terminate(process)


def answers(frame: dict[str, Any], job_id: str) -> bool:
    return frame.get("type") in ("job_result", "job_result_ref", "job_error") and frame.get("job_id") == job_id


@pytest.mark.parametrize("case", list(GET_BOMBS))
async def test_a_payload_url_bomb_costs_no_more_than_the_cap(
    case: str, queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    async with HostileServer() as host:
        host.answers["/good"] = Answer(body=json.dumps(PAYLOAD).encode())
        host.answers["/bomb"] = GET_BOMBS[case]
        warm = {**chat_job("warm", chat()), "payload": None, "payload_url": f"{host.url}/good"}
        hostile = {**chat_job("bomb", chat()), "payload": None, "payload_url": f"{host.url}/bomb"}
        peaks = await run_worker_through(queue, fake_vllm, fake_api, host, [warm, hostile])
    assert queue.frames_of("job_result")[0]["job_id"] == "warm"
    error = queue.frames_of("job_error")[0]
    assert error["error"] == f"invalid_payload: payload_url: larger than the {MAX_PAYLOAD_BYTES} byte cap"
    record(case, peaks[2] - peaks[1])
    assert peaks[2] - peaks[1] < MAX_PAYLOAD_BYTES + SMALL, f"peak RSS grew {(peaks[2] - peaks[1]) / MiB:.1f} MiB"


@pytest.mark.parametrize("case", list(PUT_BOMBS))
async def test_the_answer_to_a_result_upload_costs_nothing(
    case: str, queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    async with HostileServer() as host:
        host.answers["/good"] = Answer()
        host.answers["/bomb"] = PUT_BOMBS[case]
        warm = {**chat_job("warm", chat(), max_tokens=BIG_RESULT_TOKENS), "result_upload_url": f"{host.url}/good"}
        hostile = {**chat_job("bomb", chat(), max_tokens=BIG_RESULT_TOKENS), "result_upload_url": f"{host.url}/bomb"}
        peaks = await run_worker_through(queue, fake_vllm, fake_api, host, [warm, hostile])
        uploaded = [request.path for request in host.requests if request.method == "PUT"]
    assert [frame["job_id"] for frame in queue.frames_of("job_result_ref")] == ["warm", "bomb"]
    assert uploaded == ["/good", "/bomb"]
    record(case, peaks[2] - peaks[1])
    assert peaks[2] - peaks[1] < SMALL, f"peak RSS grew {(peaks[2] - peaks[1]) / MiB:.1f} MiB"

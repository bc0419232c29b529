"""Hostile frames to a real `worker-vllm run` process: it survives each, answers what it must, and keeps serving."""

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator

import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.fakes.dripping import dripping_server
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import chat, cli, spawn, terminate, worker_environment

pytestmark = pytest.mark.slow

FORGED = "\n2026-01-01T00:00:00.000Z INFO    worker: job FORGED done"
EVENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
HOSTILE = [
    # (what the queue sends, the job_error it must get back or None, a text the log must not hold)
    ("[" * 1000 + "]" * 1000, None, None),
    (json.dumps({"type": "job", "job_id": "deep", "mode": "transient", "payload": {"x": "[" * 10}}), "deep", None),
    ('{"type": "job", "job_id": "n", "mode": "transient", "payload": ' + "[" * 3000 + "]" * 3000 + "}", None, None),
    (json.dumps({"type": "job", "job_id": "f1", "mode": "transient", "fence_token": "abc", "payload": {}}), "f1", None),
    (json.dumps({"type": "job", "job_id": "f2", "mode": "transient", "fence_token": 1.5, "payload": {}}), "f2", None),
    (json.dumps({"type": "job", "job_id": "f3", "mode": "transient", "job_type": 5, "payload": {}}), "f3", None),
    (json.dumps({"type": "job", "job_id": "f4", "mode": "transient"}), "f4", None),
    (json.dumps({"type": "job", "job_id": "f5", "mode": "transient", "payload_url": "http://[::1"}), "f5", None),
    (json.dumps({"type": "job", "job_id": "p1", "mode": "persisted", "fence_token": "abc", "payload": {}}), None, None),
    (json.dumps({"type": "unknown-" + "u" * 100_000}), None, "u" * 1000),
    (json.dumps({"type": "error", "message": "m" * 1_000_000}), None, "m" * 1000),
    (json.dumps({"type": "job_revoked", "job_id": "r" * 500_000}), None, "r" * 1000),
    (json.dumps({"type": "error", "message": "evil" + FORGED + "\x1b[31m\x00"}), None, FORGED),
    (
        json.dumps({"type": "job", "job_id": "id" + FORGED, "mode": "transient", "payload": {"messages": []}}),
        "id" + FORGED,
        FORGED,
    ),
]


@pytest.fixture
async def worker_process(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> AsyncIterator[subprocess.Popen[str]]:
    process = spawn(cli("run"), worker_environment(queue, fake_vllm, fake_api, CASOLA_MAX_JOBS=4))
    try:
        await queue.wait_for_type("register", timeout=20)
        yield process
    finally:
        terminate(process)


async def test_the_worker_survives_every_hostile_frame_and_keeps_serving(
    queue: LocalQueue, worker_process: subprocess.Popen[str]
) -> None:
    for number, (frame, error_for, _) in enumerate(HOSTILE):
        await queue.push(frame)
        if error_for is not None:
            error = await queue.wait_for_type("job_error", error_for)
            assert error["error"].startswith("invalid_payload: "), error
        await queue.push(chat_job(f"ok-{number}", chat()))
        assert (await queue.wait_for_type("job_result", f"ok-{number}"))["result"]["status"] == "success", frame[:80]
        assert worker_process.poll() is None
    assert len(queue.frames_of("register")) == 1, "the connection stayed up"
    assert [frame.get("job_id") for frame in queue.frames_of("job_error")] == [job for _, job, _ in HOSTILE if job]
    worker_process.terminate()
    await asyncio.to_thread(worker_process.wait, 15)
    log = worker_process.stderr.read() if worker_process.stderr else ""
    for _, _, unwanted in HOSTILE:
        assert unwanted is None or unwanted not in log
    assert len(log) < 200_000, f"the log grew to {len(log)} characters"
    lines = [line for line in log.splitlines() if line]
    assert all(EVENT.match(line) or line.startswith("    ") for line in lines), "an event's line, or its traceback"
    assert not any(line.startswith(FORGED.strip()[:24]) for line in lines), "no line starts as the forged one"


async def test_a_revoked_job_sent_again_runs_again(
    queue: LocalQueue, fake_vllm: FakeVllm, worker_process: subprocess.Popen[str]
) -> None:
    fake_vllm.behaviour.delay = 1.0
    await queue.push(chat_job("x", chat(), fence_token=1))
    await queue.push({"type": "job_revoked", "job_id": "x", "reason": "moved"})
    await queue.push(chat_job("x", chat(), fence_token=2))
    result = await queue.wait_for_type("job_result", "x")
    assert result["fence_token"] == 2


async def test_payload_urls_reach_no_address_inside_the_host_and_no_transfer_outlives_its_deadline(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    fake_api.documents["/secret"] = (200, b'{"messages": "the secret"}', {})
    drip, _ = await dripping_server()
    drip_port = drip.sockets[0].getsockname()[1]
    environment = worker_environment(
        queue,
        fake_vllm,
        fake_api,
        CASOLA_MAX_JOBS=2,
        CASOLA_PAYLOAD_ALLOWED_HOSTS=f"127.0.0.1:{drip_port}",
        CASOLA_PAYLOAD_TIMEOUT=1,
    )
    process = spawn(cli("run"), environment)
    job = {"type": "job", "mode": "transient", "fence_token": 1}
    try:
        async with drip:
            await queue.wait_for_type("register", timeout=20)
            for number, url in enumerate(
                (f"{fake_api.url}/secret", f"http://localhost:{fake_vllm.port}/v1/models", "http://[::1]:1/x")
            ):
                await queue.push({**job, "job_id": f"in-{number}", "payload_url": url})
                error = await queue.wait_for_type("job_error", f"in-{number}")
                assert "refused (the operator can allow it with CASOLA_PAYLOAD_ALLOWED_HOSTS)" in error["error"]
            await queue.push({**job, "job_id": "drip", "payload_url": f"http://127.0.0.1:{drip_port}/slow"})
            late = await queue.wait_for_type("job_error", "drip")
            assert late["error"] == "invalid_payload: payload_url: GET not done within 1 s (CASOLA_PAYLOAD_TIMEOUT)"
            await queue.push(chat_job("ok", chat()))
            assert (await queue.wait_for_type("job_result", "ok"))["result"]["status"] == "success"
    finally:
        terminate(process)
    assert [request for request in fake_api.requests if request[0] != "POST"] == []
    assert "the secret" not in json.dumps(queue.received)

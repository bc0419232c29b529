"""A hung engine: a fake vLLM that answers /health and /v1/models but holds requests with its counters frozen."""

from testbed.fake_vllm import FakeVllm
from testbed.scripted_queue import ScriptedQueue

from adapters.dev.local_queue import chat_job
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import StartWorker, chat


async def test_a_stalled_vllm_fails_its_jobs_gives_back_the_persisted_ones_and_ends_the_worker(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang = True  # accepted, never answered; /health 200; the token counters frozen
    worker = await start_worker(CASOLA_MAX_JOBS=2, CASOLA_VLLM_STALL_TIMEOUT=1, CASOLA_LEASE_SECONDS=30)
    await queue.push(chat_job("held", chat()))
    await queue.push(chat_job("leased", chat(), mode="persisted", fence_token=7))
    assert await worker.exit_code(timeout=30) == 1
    error = await queue.wait_for_type("job_error", "held")
    assert error["error"].startswith("vllm_stalled: vLLM stalled: a request held for 1 s with no request finished")
    assert [frame for frame in queue.received if frame.get("job_id") == "leased"] == [], "given back, not failed"
    assert queue.frames_of("pause"), "the queue was told to stop dispatching first"
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "error" and beat["error_message"].startswith("vLLM stalled")
    assert worker.service.readiness()[0] is False and "vLLM stalled" in worker.service.readiness()[1]
    assert b"worker_vllm_vllm_stalls_total 1.0" in worker.service.metrics.text()
    assert fake_vllm.record.health_checks > 0 and fake_vllm.behaviour.healthy, "its /health answered all along"


async def test_a_long_generation_whose_tokens_advance_is_not_a_stall(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.hang, fake_vllm.behaviour.generating = True, True
    worker = await start_worker(CASOLA_VLLM_STALL_TIMEOUT=1)
    await queue.push(chat_job("long", chat()))
    start = fake_vllm.record.metrics_reads
    await eventually(lambda: fake_vllm.record.metrics_reads >= start + 20, timeout=30, what="20 looks at vLLM")
    assert worker.service.failure is None and not worker.task.done()
    fake_vllm.behaviour.hang = False
    assert (await queue.wait_for_type("job_result", "long"))["result"]["status"] == "success"
    assert b"worker_vllm_vllm_stalls_total 0.0" in worker.service.metrics.text()


async def test_an_idle_vllm_and_finishing_jobs_are_never_a_stall(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.delay = 0.3  # each job takes a while, and finishes
    worker = await start_worker(CASOLA_VLLM_STALL_TIMEOUT=1)
    for number in range(8):
        await queue.push(chat_job(f"j{number}", chat()))
        await queue.wait_for_type("job_result", f"j{number}")
    start = fake_vllm.record.health_checks
    await eventually(lambda: fake_vllm.record.health_checks >= start + 15, timeout=30, what="an idle spell")
    assert worker.service.failure is None and not worker.task.done()

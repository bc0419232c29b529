"""The worker service driven through in-memory fakes of every port: what sockets cannot reach deterministically."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from application.job_runner import JobRunner
from application.ports import QueueRejected
from application.served_models import ServedModels
from application.service import WorkerService
from application.settings import load_settings
from application.supervisor import VllmSupervisor
from application.timings import Timings
from domain.frames import JobError, JobProgress, JobResult, Register
from domain.rules import Failure, HeartbeatStatus
from domain.untrusted import Masker
from tests.conftest import eventually
from tests.fakes.memory import (
    FakeHeartbeats,
    FakeInference,
    FakeLauncher,
    FakePayloads,
    FakeProbe,
    FakeQueue,
    ManualClock,
)

FAST_TIMINGS = Timings(health_interval=0.01, readiness_interval=0.01, flush_timeout=0.1, settle_timeout=1.0)


@dataclass
class Bed:
    service: WorkerService
    queue: FakeQueue
    heartbeats: FakeHeartbeats
    probe: FakeProbe
    inference: FakeInference
    clock: ManualClock
    task: "asyncio.Task[int] | None" = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.service.run())

    async def exit_code(self, timeout: float = 5.0) -> int:
        assert self.task is not None
        return await asyncio.wait_for(asyncio.shield(self.task), timeout)

    async def registered(self) -> None:
        await eventually(lambda: self.queue.of_type("register"), 5, "register")

    def job(self, job_id: str, mode: str = "transient", fence: int = 1, **payload: Any) -> None:
        messages = [{"role": "user", "content": "hi"}]
        frame = {"type": "job", "job_id": job_id, "mode": mode, "fence_token": fence, "config_id": "cfg"}
        self.queue.deliver(frame | {"payload": {"messages": messages, **payload}})


def bed(queue: FakeQueue | None = None, timings: Timings = FAST_TIMINGS, **variables: Any) -> Bed:
    environment = {
        "CASOLA_WS_URL": "ws://127.0.0.1:9",
        "CASOLA_CONFIG_ID": "cfg",
        "CASOLA_INSTANCE_ID": "w1",
        "VLLM_MODEL": "tiny",
        "CASOLA_HEARTBEAT_INTERVAL": "0.01",
        "VLLM_STARTUP_TIMEOUT": "5",
    } | {name: str(value) for name, value in variables.items()}
    settings = load_settings(environment)
    queue = queue or FakeQueue()
    heartbeats, probe, inference, clock = FakeHeartbeats(), FakeProbe(), FakeInference(), ManualClock()
    models = ServedModels(probe, settings.VLLM_SERVED_MODEL_NAME)
    runner = JobRunner(inference, FakePayloads(), models, settings.CASOLA_JOB_TIMEOUT)
    service = WorkerService(
        settings, queue, heartbeats, probe, runner, timings, clock=clock, masker=Masker(settings.secrets())
    )
    return Bed(service, queue, heartbeats, probe, inference, clock)


@pytest.fixture
async def started() -> AsyncIterator[Bed]:
    running = bed()
    running.start()
    await running.registered()
    yield running
    if running.task is not None and not running.task.done():
        running.service.request_shutdown()
        running.service.request_shutdown()
        await running.exit_code()


async def test_a_job_round_trip_then_a_clean_stop(started: Bed) -> None:
    assert started.queue.sent[0] == Register("w1", "cfg", 1)
    started.job("j1", fence=3, temperature=0.1)
    await eventually(lambda: started.queue.of_type("job_result"), 5, "result")
    (result,) = started.queue.of_type("job_result")
    assert isinstance(result, JobResult) and (result.job_id, result.fence_token) == ("j1", 3)
    assert result.result["task"] == "openai/chat-completion" and result.result["completion"]["model"] == "default"
    route, body = started.inference.requests[0]
    assert (route, body["model"], body["temperature"]) == ("/v1/chat/completions", "default", 0.1)
    started.service.request_shutdown()
    assert await started.exit_code() == 0
    assert started.heartbeats.statuses[0] == "starting" and started.heartbeats.statuses[-1] == "stopping"
    assert started.queue.of_type("drain") and started.queue.closed


async def test_the_queue_unreachable_long_enough_turns_heartbeats_to_error_and_back(started: Bed) -> None:
    started.queue.drop()
    await eventually(lambda: not started.queue.connected, 5, "disconnected")
    started.clock.advance(299)
    await eventually(lambda: started.heartbeats.sent[-1][0] == "running" and len(started.heartbeats.sent) > 3)
    started.clock.advance(2)
    await eventually(lambda: started.heartbeats.sent[-1] == ("error", "queue unreachable for 301 s"), 5, "error")
    started.queue.restore()
    await eventually(lambda: started.heartbeats.sent[-1] == ("running", None), 5, "running again")
    assert started.queue.connections == 2


async def test_a_second_signal_gives_up_running_jobs_without_the_grace_period() -> None:
    running = bed(CASOLA_SHUTDOWN_GRACE_PERIOD=60, CASOLA_MAX_JOBS=2)
    running.inference.hang = True
    running.start()
    await running.registered()
    running.job("t1")
    running.job("p1", mode="persisted")
    await eventually(lambda: len(running.inference.requests) == 2, 5, "both requests")
    running.service.request_shutdown()
    await eventually(lambda: running.queue.of_type("drain"), 5, "drain")
    assert not running.task.done()  # type: ignore[union-attr]
    running.service.request_shutdown()
    assert await running.exit_code(timeout=5) == 0
    assert [frame.job_id for frame in running.queue.of_type("job_error")] == ["t1"]
    assert running.queue.of_type("job_error")[0].error.startswith("shutting_down:")
    assert running.inference.cancelled == 2
    assert running.heartbeats.statuses[-1] == "stopping"


async def test_a_full_outbox_drops_lease_renewals_before_results() -> None:
    running = bed(FakeQueue(outbox_limit=3), CASOLA_MAX_JOBS=4, CASOLA_LEASE_SECONDS=10, CASOLA_RENEW_LEASE_AFTER=1)
    running.inference.hang = True
    running.start()
    await running.registered()
    running.job("p1", mode="persisted", fence=7)
    running.job("t1")
    running.job("t2")
    await eventually(lambda: len(running.inference.requests) == 3, 5, "three requests")
    running.queue.drop()
    await eventually(lambda: not running.queue.connected, 5, "disconnected")
    for _ in range(3):  # three renewals of p1 wait in the outbox: it is full
        running.clock.advance(1)
        before = len(running.queue.outbox)
        await eventually(lambda b=before: len(running.queue.outbox) == b + 1, 5, "a renewal")  # type: ignore[misc]
    running.inference.hang = False
    running.inference.release()  # t1, t2 and p1 finish while the queue is away
    await eventually(lambda: not running.service.worker.running, 5, "jobs done")
    running.queue.restore()
    await eventually(lambda: running.queue.connections == 2, 5, "reconnected")
    after = running.queue.sent[running.queue.sent.index(Register("w1", "cfg", 4), 1) + 1 :]
    assert sorted(frame.job_id for frame in after) == ["p1", "t1", "t2"]
    assert all(isinstance(frame, JobResult) for frame in after), "renewals went first; every result was kept"
    assert not any(isinstance(frame, JobProgress) for frame in after)


async def test_a_revoked_job_is_cancelled_and_sends_nothing(started: Bed) -> None:
    started.inference.hang = True
    started.job("j1")
    await eventually(lambda: started.inference.requests, 5, "request")
    started.queue.deliver({"type": "job_revoked", "job_id": "j1", "reason": "client left"})
    await eventually(lambda: started.inference.cancelled == 1, 5, "cancelled")
    await eventually(lambda: not started.service.worker.running, 5, "forgotten")
    assert started.queue.of_type("job_error") == [] and started.queue.of_type("job_result") == []


FAILURES = [
    # (how the worker fails, its exit code, the last heartbeat's status, what a running transient job gets)
    ("vllm_stops_answering", 1, "error", "vllm_unavailable:"),
    ("queue_refuses", 2, "fatal", "shutting_down:"),
    ("queue_task_crashes", 1, "error", "vllm_unavailable:"),
]


@pytest.mark.parametrize(("cause", "code", "status", "category"), FAILURES)
async def test_every_failure_has_its_exit_code(cause: str, code: int, status: str, category: str) -> None:
    running = bed()
    running.inference.hang = True
    running.start()
    await running.registered()
    running.job("t1")
    await eventually(lambda: running.inference.requests, 5, "request")
    if cause == "vllm_stops_answering":
        running.probe.healthy = False
    elif cause == "queue_refuses":
        running.queue.fail_with(QueueRejected("handshake refused with HTTP 401"))
    else:
        running.queue.fail_with(RuntimeError("socket library bug"))
    assert await running.exit_code() == code
    assert running.heartbeats.statuses[-1] == status
    # the transient job is told why: at once when the queue is still up, else from the outbox once it is back
    told = [*running.queue.sent, *running.queue.outbox.frames]
    errors = [frame for frame in told if isinstance(frame, JobError)]
    assert [(error.job_id, error.error.split(" ")[0]) for error in errors] == [("t1", category)]
    if cause == "vllm_stops_answering":
        assert running.queue.of_type("pause") and errors[0] in running.queue.sent
    assert running.inference.cancelled == 1


async def test_vllm_never_ready_exits_one_with_an_error_heartbeat() -> None:
    running = bed(VLLM_STARTUP_TIMEOUT=0.05)
    running.probe.healthy = False
    running.start()
    await eventually(lambda: running.probe.checks > 0, 5, "a first check")
    running.clock.advance(1)
    assert await running.exit_code() == 1
    assert running.heartbeats.sent[-1] == ("error", "vLLM did not become ready within 0 s (VLLM_STARTUP_TIMEOUT)")
    assert running.queue.connections == 0


LAUNCH_FAILURES = [
    # (what vLLM does, exit code, last heartbeat status, start of its message)
    ("fatal_line", 2, "fatal", "vLLM reports a bad host: RuntimeError: CUDA driver version is insufficient"),
    ("exits", 1, "error", "vLLM exited with code 3"),
    ("cannot_start", 1, "error", "cannot start vLLM with 'vllm': No such file or directory"),
]


@pytest.mark.parametrize(("event", "code", "status", "message"), LAUNCH_FAILURES)
async def test_every_launched_vllm_failure_has_its_exit_code(event: str, code: int, status: str, message: str) -> None:
    running = bed()
    cannot_start = FileNotFoundError(2, "No such file or directory") if event == "cannot_start" else None
    launcher = FakeLauncher(cannot_start)
    supervised = asyncio.create_task(VllmSupervisor(launcher, ["vllm", "serve", "tiny"], 1.0).run(running.service))
    if event != "cannot_start":
        await running.registered()
        assert launcher.process is not None
        if event == "fatal_line":
            launcher.process.on_line("RuntimeError: CUDA driver version is insufficient for CUDA runtime version")
        else:
            launcher.process.exit(3)
    assert await asyncio.wait_for(supervised, 5) == code
    last_status, last_message = running.heartbeats.sent[-1]
    assert last_status == status and (last_message or "").startswith(message)
    assert launcher.process is None or launcher.process.stopped


async def test_a_clean_stop_with_launched_vllm_stops_it_and_exits_zero() -> None:
    running = bed()
    launcher = FakeLauncher()
    supervised = asyncio.create_task(VllmSupervisor(launcher, ["vllm"], 1.0).run(running.service))
    await running.registered()
    running.service.request_shutdown()
    assert await asyncio.wait_for(supervised, 5) == 0
    assert launcher.process is not None and launcher.process.stopped


async def test_readiness_says_why_not_and_never_quotes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_never_out_1234")
    bed_ = bed()
    assert bed_.service.readiness() == (False, "waiting for vLLM to be ready")
    bed_.start()
    await bed_.registered()
    assert bed_.service.readiness() == (True, "ready")
    bed_.service.fail(Failure(HeartbeatStatus.FATAL, "vLLM: bad token hf_never_out_1234"))
    assert bed_.service.readiness() == (False, "failed: vLLM: bad token ***")
    assert await bed_.exit_code() == 2


async def test_vllms_start_up_lines_become_phases_in_starting_heartbeats_and_one_summary_at_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="worker")
    running = bed()
    for seconds, line in ((4, "INFO non-default args: {}"), (20, "INFO Loading weights took 0.10 seconds")):
        running.clock.advance(seconds)
        running.service.vllm.said(line)
    running.clock.advance(2)
    running.start()
    await running.registered()
    running.service.vllm.said("INFO Starting vLLM server on http://127.0.0.1:8000")  # ready already: no phase
    running.service.request_shutdown()
    await running.exit_code()
    said = [
        record.getMessage() for record in caplog.records if record.getMessage().startswith(("vLLM start", "vLLM ready"))
    ]
    assert said == [
        "vLLM starting: API server up (4.0 s), 4.0 s in",
        "vLLM starting: weights loaded (20.0 s), 24.0 s in",
        "vLLM ready in 26.0 s: API server up (4.0 s), weights loaded (20.0 s)",
    ]
    assert running.heartbeats.sent[:3] == [  # each phase in a `starting` heartbeat, all before `running`
        (HeartbeatStatus.STARTING, None),
        (HeartbeatStatus.STARTING, "vLLM starting: API server up (4.0 s), 4.0 s in"),
        (HeartbeatStatus.STARTING, "vLLM starting: weights loaded (20.0 s), 24.0 s in"),
    ]
    assert HeartbeatStatus.STARTING not in [status for status, _ in running.heartbeats.sent[3:]]

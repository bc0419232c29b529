"""The worker state machine as event tables: feed events, read states and commands."""

import pytest

from domain.errors import ErrorCategory
from domain.frames import Drain, JobError, JobProgress, Pause, Register, Resume
from domain.jobs import Job, JobMode
from domain.worker import (
    CancelJob,
    Command,
    Ignored,
    IllegalTransition,
    PauseReason,
    Send,
    StartJob,
    Worker,
    WorkerState,
)

S = WorkerState


def job(job_id: str = "j1", mode: str = "transient", fence: int = 1) -> Job:
    return Job(job_id=job_id, mode=JobMode(mode), fence_token=fence, config_id="cfg", payload={"messages": []})


def started(commands: list[Command]) -> list[Job]:
    return [command.running.job for command in commands if isinstance(command, StartJob)]


def finish(worker: Worker, job_id: str) -> bool:
    """Ends the job as its task would: True if a frame is wanted for it."""
    return worker.finish(worker.running[job_id])


def running_worker(capacity: int = 2) -> Worker:
    worker = Worker("w1", "cfg", capacity, lease_seconds=30, renew_after=24)
    for state in (S.WAITING_FOR_VLLM, S.CONNECTING):
        worker.transition(state)
    worker.connected()
    return worker


LEGAL = [
    [S.WAITING_FOR_VLLM, S.CONNECTING, S.RUNNING, S.DRAINING, S.STOPPED],
    [S.WAITING_FOR_VLLM, S.CONNECTING, S.RUNNING, S.CONNECTING, S.RUNNING, S.DRAINING, S.STOPPED],
    [S.WAITING_FOR_VLLM, S.FAILED],
    [S.WAITING_FOR_VLLM, S.DRAINING, S.STOPPED],
    [S.WAITING_FOR_VLLM, S.CONNECTING, S.DRAINING, S.FAILED],
]
ILLEGAL = [
    ([], S.RUNNING),
    ([S.WAITING_FOR_VLLM], S.RUNNING),
    ([S.WAITING_FOR_VLLM, S.CONNECTING, S.RUNNING, S.DRAINING], S.RUNNING),
    ([S.WAITING_FOR_VLLM, S.CONNECTING, S.RUNNING, S.DRAINING], S.CONNECTING),
    ([S.WAITING_FOR_VLLM, S.CONNECTING, S.RUNNING, S.DRAINING, S.STOPPED], S.RUNNING),
    ([S.WAITING_FOR_VLLM, S.FAILED], S.CONNECTING),
    ([], S.STOPPED),
]


@pytest.mark.parametrize("path", LEGAL)
def test_legal_paths_end_where_they_lead(path: list[WorkerState]) -> None:
    worker = Worker("w1", "cfg", 1, 30, 24)
    for state in path:
        worker.transition(state)
    assert worker.state is path[-1]


@pytest.mark.parametrize(("path", "illegal"), ILLEGAL)
def test_illegal_transition_raises_and_keeps_the_state(path: list[WorkerState], illegal: WorkerState) -> None:
    worker = Worker("w1", "cfg", 1, 30, 24)
    for state in path:
        worker.transition(state)
    before = worker.state
    with pytest.raises(IllegalTransition):
        worker.transition(illegal)
    assert worker.state is before


def test_every_connection_starts_with_register() -> None:
    worker = Worker("w1", "cfg", 4, 30, 24)
    worker.transition(S.WAITING_FOR_VLLM)
    worker.transition(S.CONNECTING)
    assert worker.connected() == [Send(Register("w1", "cfg", 4))]
    assert worker.state is S.RUNNING
    worker.disconnected()
    assert worker.state is S.CONNECTING


def test_reconnect_while_draining_repeats_the_drain() -> None:
    worker = running_worker()
    worker.drain()
    worker.disconnected()
    assert worker.state is S.DRAINING
    assert worker.connected() == [Send(Register("w1", "cfg", 2)), Send(Drain())]


CAPACITY_TABLE = [
    # (mode of the third job, what the worker answers it when two of two run)
    ("transient", "job_error"),
    ("persisted", None),
]


@pytest.mark.parametrize(("mode", "answer"), CAPACITY_TABLE)
def test_over_capacity(mode: str, answer: str | None) -> None:
    worker = running_worker(capacity=2)
    assert started(worker.receive(job("a"), 0)) == [job("a")]
    assert started(worker.receive(job("b"), 0)) == [job("b")]
    commands = worker.receive(job("c", mode), 0)
    assert "c" not in worker.running
    if answer is None:
        assert [type(command) for command in commands] == [Ignored]
    else:
        (command,) = commands
        assert isinstance(command, Send)
        assert answer == command.frame.TYPE
        assert command.frame.error.startswith("over_capacity: worker at capacity (2 of 2")


def test_capacity_frees_when_a_job_finishes() -> None:
    worker = running_worker(capacity=1)
    worker.receive(job("a"), 0)
    assert finish(worker, "a")
    assert started(worker.receive(job("b"), 0)) == [job("b")]


DUPLICATE_TABLE = [
    # (fence of the running attempt, fence of the duplicate, fence its result carries)
    (5, 4, 5),
    (5, 5, 5),
    (5, 6, 6),
]


@pytest.mark.parametrize(("running", "duplicate", "carried"), DUPLICATE_TABLE)
def test_duplicates(running: int, duplicate: int, carried: int) -> None:
    worker = running_worker()
    worker.receive(job("a", "persisted", running), 0)
    commands = worker.receive(job("a", "persisted", duplicate), 10)
    assert [type(command) for command in commands] == [Ignored]
    attempt = worker.running["a"]
    assert worker.finish(attempt) and attempt.fence_token == carried


def test_a_revoked_job_is_cancelled_and_sends_nothing() -> None:
    worker = running_worker()
    worker.receive(job("a"), 0)
    attempt = worker.running["a"]
    assert worker.revoke("a", "client went away") == [CancelJob(attempt, "revoked: client went away")]
    assert not worker.finish(attempt)
    assert worker.running == {}


def test_revoking_an_unknown_job_is_ignored() -> None:
    worker = running_worker()
    assert [type(command) for command in worker.revoke("nope", "")] == [Ignored]


LEASE_TABLE = [
    # (seconds since start, renewals sent)
    (23.9, 0),
    (24.0, 1),
    (30.0, 1),
]


@pytest.mark.parametrize(("elapsed", "renewals"), LEASE_TABLE)
def test_persisted_jobs_renew_their_lease(elapsed: float, renewals: int) -> None:
    worker = running_worker()
    worker.receive(job("p", "persisted", 7), 100.0)
    worker.receive(job("t", "transient"), 100.0)
    commands = worker.renewals(100.0 + elapsed)
    assert commands == [Send(JobProgress("p", 7))] * renewals


def test_renewals_repeat_after_each_renewal_and_carry_the_newest_token() -> None:
    worker = running_worker()
    worker.receive(job("p", "persisted", 1), 0.0)
    assert len(worker.renewals(24.0)) == 1
    assert worker.renewals(47.9) == []
    worker.receive(job("p", "persisted", 2), 30.0)
    assert worker.renewals(53.9) == []
    assert worker.renewals(54.0) == [Send(JobProgress("p", 2))]


SHUTDOWN_TABLE = [
    # (mode, frames sent for a job still running when the grace period ends)
    ("transient", ["job_error"]),
    ("persisted", []),
]


@pytest.mark.parametrize(("mode", "sent"), SHUTDOWN_TABLE)
def test_shutdown_sequence(mode: str, sent: list[str]) -> None:
    worker = running_worker()
    worker.receive(job("a", mode), 0)
    assert worker.drain() == [Send(Drain())]
    assert worker.drain() == []
    assert worker.state is S.DRAINING
    refused = worker.receive(job("late", "transient"), 1)
    errors = [c.frame.error for c in refused if isinstance(c, Send) and isinstance(c.frame, JobError)]
    assert [error.split(":")[0] for error in errors] == ["shutting_down"]
    commands = worker.abandon(ErrorCategory.SHUTTING_DOWN, "grace period over")
    assert [c.frame.TYPE for c in commands if isinstance(c, Send)] == sent
    assert [c.running.job.job_id for c in commands if isinstance(c, CancelJob)] == ["a"]
    assert not finish(worker, "a")
    worker.stop()
    assert worker.state is S.STOPPED


def test_pause_and_resume_follow_vllm_health() -> None:
    worker = running_worker()
    assert worker.vllm_unhealthy() == [Send(Pause())]
    assert worker.vllm_unhealthy() == []
    worker.disconnected()
    assert worker.connected()[-1] == Send(Pause())
    assert worker.vllm_healthy() == [Send(Resume())]
    assert worker.vllm_healthy() == []


def test_pause_lasts_while_any_reason_does_health_or_backpressure() -> None:
    worker = running_worker()
    assert worker.pause(PauseReason.BACKPRESSURE) == [Send(Pause())]
    assert worker.vllm_unhealthy() == []  # already paused
    assert worker.resume(PauseReason.BACKPRESSURE) == []  # vLLM still does not answer
    assert worker.vllm_healthy() == [Send(Resume())]
    assert not worker.paused


def test_a_reason_to_pause_while_disconnected_goes_out_with_the_next_register() -> None:
    worker = running_worker()
    worker.disconnected()
    assert worker.pause(PauseReason.BACKPRESSURE) == []
    assert worker.connected() == [Send(Register("w1", "cfg", 2)), Send(Pause())]
    assert worker.resume(PauseReason.BACKPRESSURE) == [Send(Resume())]

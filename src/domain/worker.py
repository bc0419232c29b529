"""The worker state machine: states, legal transitions, and what each event commands."""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.errors import ErrorCategory, job_error_text
from domain.frames import (
    BadJob,
    Drain,
    InboundFrame,
    JobError,
    JobProgress,
    JobRevoked,
    OutboundFrame,
    Pause,
    Register,
    Resume,
)
from domain.jobs import Job, JobMode
from domain.leases import Lease


class WorkerState(StrEnum):
    STARTING = "starting"
    WAITING_FOR_VLLM = "waiting_for_vllm"
    CONNECTING = "connecting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


S = WorkerState
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    S.STARTING: frozenset({S.WAITING_FOR_VLLM, S.DRAINING, S.FAILED}),
    S.WAITING_FOR_VLLM: frozenset({S.CONNECTING, S.DRAINING, S.FAILED}),
    S.CONNECTING: frozenset({S.RUNNING, S.DRAINING, S.FAILED}),
    S.RUNNING: frozenset({S.CONNECTING, S.DRAINING, S.FAILED}),
    S.DRAINING: frozenset({S.STOPPED, S.FAILED}),
    S.STOPPED: frozenset(),
    S.FAILED: frozenset(),
}
ACCEPTING = frozenset({S.CONNECTING, S.RUNNING})


class PauseReason(StrEnum):
    VLLM_UNHEALTHY = "vLLM does not answer /health"
    BACKPRESSURE = "vLLM has requests waiting"


class IllegalTransition(Exception):
    """A transition the table does not allow; the state stays as it was."""


@dataclass
class RunningJob:
    """The one record of a job the worker has started: the newest fence token it was given, its lease, when it
    started (on the runner's clock) and, once its payload is read, its kind."""

    job: Job
    fence_token: int
    lease: Lease | None
    revoked: bool = False
    started_at: float = 0.0
    kind: str = "unknown"  # the metrics label: the table's task once the kind is known (labels stay bounded)
    adapter: str | None = None  # the LoRA adapter it runs on, when it names one


@dataclass(frozen=True)
class Send:
    """Send this frame to the queue."""

    frame: OutboundFrame


@dataclass(frozen=True)
class StartJob:
    running: RunningJob


@dataclass(frozen=True)
class CancelJob:
    running: RunningJob
    reason: str
    outcome: str = "revoked"  # or "abandoned": the worker gave it up (shutdown, failure)


@dataclass(frozen=True)
class Ignored:
    """Nothing to do; `reason` is for the log."""

    job_id: str
    reason: str


Command = Send | StartJob | CancelJob | Ignored


class Worker:
    """The worker's state, running jobs and rules; time comes in as `now`."""

    def __init__(self, worker_id: str, config_id: str, capacity: int, lease_seconds: float, renew_after: float) -> None:
        self.worker_id = worker_id
        self.config_id = config_id
        self.capacity = capacity
        self.lease_seconds = lease_seconds
        self.renew_after = renew_after
        self.state = WorkerState.STARTING
        self.pause_reasons: set[PauseReason] = set()
        self.running: dict[str, RunningJob] = {}

    def transition(self, new: WorkerState) -> None:
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"{self.state} -> {new}")
        self.state = new

    @property
    def paused(self) -> bool:
        return bool(self.pause_reasons)

    @property
    def accepting(self) -> bool:
        return self.state in ACCEPTING

    def connected(self) -> list[Command]:
        """The first frames of every connection: register, then any standing drain or pause."""
        if self.state is S.CONNECTING:
            self.transition(S.RUNNING)
        hello: list[Command] = [Send(Register(self.worker_id, self.config_id, self.capacity))]
        if self.state is S.DRAINING:
            hello.append(Send(Drain()))
        elif self.paused:
            hello.append(Send(Pause()))
        return hello

    def disconnected(self) -> None:
        if self.state is S.RUNNING:
            self.transition(S.CONNECTING)

    def on_frame(self, frame: InboundFrame, now: float) -> list[Command] | None:
        """What a job frame from the queue commands (start, revoke, refuse); None for any other frame."""
        handle = JOB_FRAMES.get(type(frame))
        return None if handle is None else handle(self, frame, now)

    def receive(self, job: Job, now: float) -> list[Command]:
        existing = self.running.get(job.job_id)
        if existing is not None and not existing.revoked:  # a revoked attempt no longer blocks a new one
            return [self._duplicate(existing, job, now)]
        if not self.accepting:
            return self._refuse(job, ErrorCategory.SHUTTING_DOWN, "worker is draining")
        if len(self.running) >= self.capacity:
            reason = f"worker at capacity ({len(self.running)} of {self.capacity} jobs running)"
            return self._refuse(job, ErrorCategory.OVER_CAPACITY, reason)
        lease = Lease(self.lease_seconds, self.renew_after, now) if job.persisted else None
        running = self.running[job.job_id] = RunningJob(job, job.fence_token, lease)
        return [StartJob(running)]

    def _duplicate(self, existing: RunningJob, job: Job, now: float) -> Command:
        if job.fence_token <= existing.fence_token:
            return Ignored(job.job_id, f"duplicate with fence token {job.fence_token} <= {existing.fence_token}")
        existing.fence_token = job.fence_token
        if existing.lease is not None:
            existing.lease = existing.lease.renewed(now)
        return Ignored(job.job_id, f"running attempt now carries fence token {job.fence_token}")

    def _refuse(self, job: Job | BadJob, category: ErrorCategory, reason: str) -> list[Command]:
        """A job the worker will not run: a transient caller is told why at once; a persisted job is redelivered."""
        if job.mode is JobMode.PERSISTED:
            return [Ignored(job.job_id, f"{reason}; persisted job left for redelivery")]
        return [Send(JobError(job.job_id, job.fence_token, job_error_text(category, reason)))]

    def refuse_bad(self, bad: BadJob) -> list[Command]:
        """A job frame with a wrong field; while an attempt of the same job runs, the frame is ignored."""
        if bad.job_id in self.running:
            return [Ignored(bad.job_id, f"bad job frame ignored, an attempt is running: {bad.reason}")]
        return self._refuse(bad, ErrorCategory.INVALID_PAYLOAD, bad.reason)

    def revoke(self, job_id: str, reason: str) -> list[Command]:
        running = self.running.get(job_id)
        if running is None or running.revoked:
            return [Ignored(job_id, "revoked but not running")]
        running.revoked = True
        return [CancelJob(running, f"revoked: {reason}")]

    def finish(self, running: RunningJob) -> bool:
        """Forgets the job; True unless no frame is wanted for it (revoked or abandoned)."""
        if self.running.get(running.job.job_id) is running:
            del self.running[running.job.job_id]
        return not running.revoked

    def renewals(self, now: float) -> list[Command]:
        commands: list[Command] = []
        for running in self.running.values():
            if running.lease is not None and not running.revoked and running.lease.due(now):
                running.lease = running.lease.renewed(now)
                commands.append(Send(JobProgress(running.job.job_id, running.fence_token)))
        return commands

    def drain(self) -> list[Command]:
        if self.state is S.DRAINING:
            return []
        self.transition(S.DRAINING)
        return [Send(Drain())]

    def vllm_unhealthy(self) -> list[Command]:
        return self.pause(PauseReason.VLLM_UNHEALTHY)

    def vllm_healthy(self) -> list[Command]:
        return self.resume(PauseReason.VLLM_UNHEALTHY)

    def pause(self, reason: "PauseReason") -> list[Command]:
        """`pause` goes out when the first reason to pause comes, while running (else with the next register)."""
        if reason in self.pause_reasons:
            return []
        first = not self.pause_reasons
        self.pause_reasons.add(reason)
        return [Send(Pause())] if first and self.state is S.RUNNING else []

    def resume(self, reason: "PauseReason") -> list[Command]:
        """`resume` goes out when the last reason to pause is gone, while running."""
        if reason not in self.pause_reasons:
            return []
        self.pause_reasons.discard(reason)
        return [Send(Resume())] if not self.pause_reasons and self.state is S.RUNNING else []

    def abandon(self, category: ErrorCategory, reason: str) -> list[Command]:
        """Gives up every running job: transient ones get an error, persisted ones are released."""
        commands: list[Command] = []
        for running in self.running.values():
            if running.revoked:
                continue
            running.revoked = True
            commands.append(CancelJob(running, reason, "abandoned"))
            if not running.job.persisted:
                error = job_error_text(category, reason)
                commands.append(Send(JobError(running.job.job_id, running.fence_token, error)))
        return commands

    def stop(self) -> None:
        self.transition(S.STOPPED)

    def fail(self) -> None:
        self.transition(S.FAILED)


# Each job frame the queue sends, to what the worker does with it.
JOB_FRAMES: dict[type, Callable[[Worker, Any, float], list[Command]]] = {
    Job: lambda worker, job, now: worker.receive(job, now),
    JobRevoked: lambda worker, revoked, now: worker.revoke(revoked.job_id, revoked.reason),
    BadJob: lambda worker, bad, now: worker.refuse_bad(bad),
}

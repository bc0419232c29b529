"""The worker service: interprets the state machine's commands, owns the task group and the background loops."""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from application.job_context import current_job_id
from application.job_runner import JobRunner
from application.metrics import NO_METRICS
from application.ports import Heartbeats, QueueConnection, QueueRejected, VllmProbe, WorkerMetrics
from application.readiness import VllmReadiness, sleep_unless
from application.settings import Settings
from application.signals import shutdown_signals
from domain import frames, rules
from domain.errors import ErrorCategory, InferenceRejected, InferenceUnavailable
from domain.frames import OutboundFrame
from domain.jobs import Job
from domain.rules import Backpressure, Failure, HealthWatch, HeartbeatStatus, ShutdownStep, Thresholds
from domain.untrusted import WarningBudget, shown, without_secrets
from domain.vllm import LogVerdict, classify_log_line, gauge
from domain.worker import CancelJob, Command, Ignored, PauseReason, RunningJob, Send, StartJob, Worker, WorkerState

log = logging.getLogger("worker")
vllm_log = logging.getLogger("vllm")
UNKNOWN_TYPES_REMEMBERED = 64
SHUT_DOWN_MID_JOB = "the worker shut down before the job finished"


@dataclass(frozen=True)
class Timings:
    """How often the service polls; tests shorten them."""

    health_interval: float = 1.0
    readiness_interval: float = 0.5
    flush_timeout: float = 3.0
    settle_timeout: float = 5.0


class WorkerService:
    """Runs the worker from start to exit and returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        queue: QueueConnection,
        heartbeats: Heartbeats,
        probe: VllmProbe,
        runner: JobRunner,
        timings: Timings | None = None,
        thresholds: Thresholds | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: WorkerMetrics = NO_METRICS,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.heartbeats = heartbeats
        self.probe = probe
        self.runner = runner
        self.timings = timings or Timings()
        self.thresholds = thresholds or Thresholds()
        self.clock = clock
        self.worker = Worker(
            settings.CASOLA_INSTANCE_ID,
            settings.CASOLA_CONFIG_ID,
            settings.CASOLA_MAX_JOBS,
            settings.CASOLA_LEASE_SECONDS,
            settings.renew_lease_after,
        )
        self.health = HealthWatch(self.thresholds.health_failures_before_down)
        self.failure: Failure | None = None
        self._group: asyncio.TaskGroup | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._jobs: dict[int, tuple[asyncio.Task[None], float]] = {}  # by id(RunningJob): its task, when it started
        self._shutdown = asyncio.Event()
        self._hurry = asyncio.Event()
        self._failed = asyncio.Event()
        self._vllm_ready = False
        self._disconnected_since: float | None = None
        self._unknown_types: set[str] = set()
        self._warnings = WarningBudget()
        self._registered = False
        self._connections = 0
        self.backpressure = Backpressure(
            settings.CASOLA_BACKPRESSURE_PAUSE_THRESHOLD, settings.CASOLA_BACKPRESSURE_RESUME_THRESHOLD
        )
        self.metrics = metrics
        self._secrets = settings.secrets()
        self._observe(metrics)

    def _observe(self, metrics: WorkerMetrics) -> None:
        """The gauges, read at scrape time: nothing on the job path."""
        metrics.observe("running_jobs", lambda: len(self.worker.running))
        metrics.observe("capacity", lambda: self.worker.capacity)
        metrics.observe("queue_connected", lambda: self._registered)
        metrics.observe("outbox_depth", lambda: self.queue.outbox_depth)
        metrics.observe("paused", lambda: self.worker.paused)
        metrics.observe("backpressure", lambda: PauseReason.BACKPRESSURE in self.worker.pause_reasons)
        metrics.observe("vllm_healthy", lambda: self._vllm_ready and self.health.healthy)
        metrics.observe("ready", lambda: self.readiness()[0])

    def readiness(self) -> tuple[bool, str]:
        """Whether the worker can take jobs (vLLM ready and registered with the queue), else why not."""
        if self.failure is not None:  # a vLLM log line can quote a secret: none leaves through /readyz
            return False, f"failed: {shown(without_secrets(self.failure.message, self._secrets), 300)}"
        if not self._vllm_ready:
            return False, "waiting for vLLM to be ready"
        if not self.health.healthy:
            return False, "vLLM does not answer /health"
        if self.worker.state in (WorkerState.DRAINING, WorkerState.STOPPED):
            return False, "draining: shutting down"
        if not self._registered:
            return False, "not registered with the queue"
        return True, "ready"

    # Events from outside: signals, and the supervisor watching vLLM.

    def request_shutdown(self) -> None:
        if rules.on_shutdown_signal(self._shutdown.is_set()) is ShutdownStep.HURRY:
            log.warning("second shutdown signal: giving up running jobs now")
            self._hurry.set()
        else:
            log.info("shutdown requested: draining")
        self._shutdown.set()

    def vllm_said(self, line: str) -> None:
        """One line of vLLM's output (launched by the worker, or relayed in the container): logged as vLLM's,
        and a line that tells a bad host or a dead engine fails the worker."""
        vllm_log.info("%s", line)
        verdict = classify_log_line(line)
        if verdict is LogVerdict.RETRYABLE:
            log.error("vLLM failure: %s", line.strip()[:300])
        failure = rules.on_vllm_log(verdict, line)
        if failure is not None:
            self.fail(failure)

    def vllm_exited(self, code: int) -> None:
        """vLLM, started by someone else (the container's entrypoint), exited with `code`."""
        self.fail(rules.on_vllm_exit(code))

    def current_job(self) -> str | None:
        """One running job's id (the system metrics' `current_job_id`), or None."""
        return next(iter(self.worker.running), None)

    def fail(self, failure: Failure) -> None:
        if self.failure is None:
            self.failure = failure
            self._failed.set()

    # The run.

    async def run(self) -> int:
        with shutdown_signals(self.request_shutdown):
            return await self._run()

    async def _run(self) -> int:
        await self.heartbeats.send(HeartbeatStatus.STARTING)
        self.worker.transition(WorkerState.WAITING_FOR_VLLM)
        if not await self._wait_for_vllm():
            return await self._end()
        self._vllm_ready = True
        self.worker.transition(WorkerState.CONNECTING)
        async with asyncio.TaskGroup() as group:
            self._group = group
            loops = [self._connect(), self._heartbeat_loop(), self._lease_loop(), self._vllm_watch()]
            if self.settings.CASOLA_BACKPRESSURE_CHECK_INTERVAL > 0:
                loops.append(self._backpressure_loop())
            background = [group.create_task(loop) for loop in loops]
            self._heartbeat_task = background[1]
            await sleep_unless(self._shutdown, self._failed)
            if self.failure is None:
                await self._drain()
            code = await self._end()
            for task in background:
                task.cancel()
        return code

    async def _wait_for_vllm(self) -> bool:
        timeout = self.settings.VLLM_STARTUP_TIMEOUT
        log.info("waiting for vLLM at %s (up to %.0f s)", self.settings.vllm_base_url, timeout)
        readiness = VllmReadiness(
            self.probe, self.settings.VLLM_SERVED_MODEL_NAME, timeout, self.timings.readiness_interval, self.clock
        )
        ready = await readiness.wait(lambda seconds: sleep_unless(self._shutdown, self._failed, timeout=seconds))
        if ready is False:
            self.fail(rules.vllm_never_ready(timeout))
        return bool(ready) and not (self._shutdown.is_set() or self._failed.is_set())

    # Endings.

    async def _drain(self) -> None:
        self._execute(self.worker.drain())
        grace = self.settings.CASOLA_SHUTDOWN_GRACE_PERIOD
        running = self._job_tasks()
        log.info("draining: %d job(s) running, waiting up to %.1f s", len(running), grace)
        if running:
            await sleep_unless(asyncio.ensure_future(asyncio.wait(running)), self._hurry, self._failed, timeout=grace)

    async def _end(self) -> int:
        """Gives up what still runs, then reports: `stopping` after a clean drain, else the failure."""
        if self.failure is not None:
            self._execute(self.worker.abandon(self.failure.category, self.failure.message))
        else:
            self._execute(
                self.worker.abandon(ErrorCategory.SHUTTING_DOWN, "the worker shut down before the job finished")
            )
        if self._job_tasks():
            await asyncio.wait(self._job_tasks(), timeout=self.timings.settle_timeout)
        if self._heartbeat_task is not None:  # the last heartbeat is the last one sent: no `running` after it
            self._heartbeat_task.cancel()
            await asyncio.wait([self._heartbeat_task])
        failure = self.failure
        if failure is None:
            self.worker.transition(WorkerState.DRAINING)
            self.worker.stop()
            await self._close_queue()
            await self.heartbeats.send(HeartbeatStatus.STOPPING)
            log.info("worker stopped")
        else:
            log.error("worker failed: %s", failure.message)
            self.worker.fail()
            await self.heartbeats.send(failure.status, failure.message)
            await self._close_queue()
        return rules.exit_code(failure)

    async def _close_queue(self) -> None:
        if self._group is None:  # never connected
            return
        if not await self.queue.flush(self.timings.flush_timeout):
            log.warning("queue: closing with frames not sent")
        await self.queue.close()

    # The queue.

    async def _connect(self) -> None:
        try:
            await self.queue.run(self._on_connect, self._on_message, self._on_disconnect)
        except QueueRejected as rejected:
            self.fail(rules.queue_refused(str(rejected)))
        except Exception as error:  # the socket task must never end the worker silently
            log.exception("queue connection failed")
            self.fail(rules.queue_failed(error))

    def _on_connect(self) -> list[OutboundFrame]:
        self._disconnected_since = None
        self._registered = True
        self._connections += 1
        if self._connections > 1:
            self.metrics.reconnected()
        return [command.frame for command in self.worker.connected() if isinstance(command, Send)]

    def _on_disconnect(self) -> None:
        self._disconnected_since = self.clock()
        self._registered = False
        self.worker.disconnected()

    def _on_message(self, message: str | bytes) -> None:
        try:
            frame = frames.parse_frame(message)
        except frames.MalformedFrame as malformed:
            self._warn("queue: skipped malformed frame (%s): %s", shown(malformed), shown(message))
            return
        if isinstance(frame, Job):
            self._execute(self.worker.receive(frame, self.clock()))
        elif isinstance(frame, frames.JobRevoked):
            self._execute(self.worker.revoke(frame.job_id, frame.reason))
        elif isinstance(frame, frames.BadJob):
            self._execute(self.worker.refuse_bad(frame))
        elif isinstance(frame, frames.QueueError):
            self._warn("queue reports an error: %s", shown(frame.message))
        elif (kind := shown(frame.type, 80)) not in self._unknown_types:
            if len(self._unknown_types) < UNKNOWN_TYPES_REMEMBERED:
                self._unknown_types.add(kind)
            self._warn("queue: ignoring frames of unknown type %s", kind)

    def _warn(self, message: str, *args: object) -> None:
        """Warnings about what the queue sent, at most a burst a minute: the queue cannot flood the log."""
        held_back = self._warnings.allow(self.clock())
        if held_back is None:
            return
        if held_back:
            log.warning("queue: %d more warnings were not written", held_back)
        log.warning(message, *args)

    def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Send):
                self.queue.send(command.frame)
                if isinstance(command.frame, frames.JobProgress):
                    self.metrics.lease_renewed()
            elif isinstance(command, StartJob):
                self._start(command.running)
            elif isinstance(command, CancelJob):
                log.info("job %s cancelled: %s", command.running.job.job_id, command.reason)
                if (started := self._jobs.get(id(command.running))) is not None:
                    task, started_at = started
                    self.runner.cancelled(command.running.job, command.outcome, started_at)
                    task.cancel()
            elif isinstance(command, Ignored):
                log.info("job %s: %s", command.job_id, command.reason)

    # Jobs.

    def _start(self, running: RunningJob) -> None:
        assert self._group is not None
        job = running.job
        log.debug("job %s started (%s, fence %d)", job.job_id, job.mode, job.fence_token)  # info: one line a job
        started_at = self.clock()
        self._jobs[id(running)] = (self._group.create_task(self._run_job(running, started_at)), started_at)

    async def _run_job(self, running: RunningJob, started_at: float) -> None:
        current_job_id.set(running.job.job_id)  # this task's log lines carry the job's id
        outcome = None
        try:
            outcome = await self.runner.outcome(running.job)
        finally:
            self._jobs.pop(id(running), None)
            if self.worker.finish(running) and outcome is not None:
                self.queue.send(await self.runner.report(running.job, running.fence_token, outcome, started_at))

    def _job_tasks(self) -> list["asyncio.Task[None]"]:
        return [task for task, _ in self._jobs.values()]

    # Background loops.

    async def _heartbeat_loop(self) -> None:
        while True:
            status = rules.heartbeat(self.health.healthy, self._disconnected_since, self.clock(), self.thresholds)
            await self.heartbeats.send(*status)
            await asyncio.sleep(self.settings.CASOLA_HEARTBEAT_INTERVAL)

    async def _lease_loop(self) -> None:
        tick = min(1.0, self.settings.renew_lease_after / 4)
        while True:
            await asyncio.sleep(tick)
            self._execute(self.worker.renewals(self.clock()))

    async def _backpressure_loop(self) -> None:
        """vLLM's waiting requests: above the pause threshold the queue is told to pause, at or below resume."""
        while True:
            await asyncio.sleep(self.settings.CASOLA_BACKPRESSURE_CHECK_INTERVAL)
            try:
                waiting = gauge(await self.probe.metrics(), "vllm:num_requests_waiting")
            except (InferenceUnavailable, InferenceRejected):
                continue  # a failed read changes nothing
            verdict = self.backpressure.verdict(waiting, PauseReason.BACKPRESSURE in self.worker.pause_reasons)
            if verdict is None:
                continue
            change = "pausing dispatch" if verdict else "resuming dispatch"
            log.warning("backpressure: %g requests waiting in vLLM: %s", waiting or 0, change)
            reason = PauseReason.BACKPRESSURE
            self._execute(self.worker.pause(reason) if verdict else self.worker.resume(reason))

    async def _vllm_watch(self) -> None:
        while not self.health.down:
            await asyncio.sleep(self.timings.health_interval)
            healthy = await self.probe.health()
            if self.health.observe(healthy):
                log.warning("vLLM /health %s", "answers again" if healthy else "does not answer: pausing dispatch")
                self._execute(self.worker.vllm_healthy() if healthy else self.worker.vllm_unhealthy())
        self.fail(self.health.failure())

"""The worker service: interprets the state machine's commands, owns the task group and the background loops."""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from application.heartbeat_loop import HeartbeatLoop
from application.job_context import current_job_id
from application.job_runner import JobRunner
from application.metrics import NO_METRICS
from application.ports import Heartbeats, QueueConnection, VllmProbe, WorkerMetrics
from application.queue_link import QueueLink
from application.readiness import VllmReadiness, sleep_unless
from application.settings import Settings
from application.signals import shutdown_signals
from application.timings import Timings
from application.vllm_watch import VllmWatch
from domain import frames, rules
from domain.errors import ErrorCategory
from domain.rules import Failure, HeartbeatStatus, ShutdownStep, Thresholds
from domain.untrusted import Masker, loggable
from domain.worker import CancelJob, Command, Ignored, PauseReason, RunningJob, Send, StartJob, Worker, WorkerState

log = logging.getLogger("worker")
SHUT_DOWN_MID_JOB = (ErrorCategory.SHUTTING_DOWN, "the worker shut down before the job finished")


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
        masker: Masker | None = None,
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
        self.failure: Failure | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}  # each running job's task, by job id
        # What the state machine asks, each to its handler.
        self._command_handlers: dict[type, Callable[[Any], None]] = {
            Send: self._send,
            StartJob: lambda start: self._start(start.running),
            CancelJob: self._cancel,
            Ignored: lambda ignored: log.info("job %s: %s", ignored.job_id, ignored.reason),
        }
        self._shutdown = asyncio.Event()
        self._hurry = asyncio.Event()
        self._failed = asyncio.Event()
        self._vllm_ready = False
        self.metrics = metrics
        self.masker = masker or Masker()  # the container's one masker: no secret leaves through /readyz
        self.vllm = VllmWatch(
            probe, self.worker, settings, self.thresholds, self._execute, self.fail, clock, metrics, runner.surface.read
        )
        self.link = QueueLink(queue, self.worker, clock, metrics, self._execute, self.fail)
        self.beats = HeartbeatLoop(
            heartbeats, self._beat, settings.CASOLA_HEARTBEAT_INTERVAL, self.timings.settle_timeout
        )
        self._observe(metrics)

    def _observe(self, metrics: WorkerMetrics) -> None:
        """The gauges, read at scrape time: nothing on the job path."""
        metrics.observe("running_jobs", lambda: len(self.worker.running))
        metrics.observe("capacity", lambda: self.worker.capacity)
        metrics.observe("queue_connected", lambda: self.link.registered)
        metrics.observe("outbox_depth", lambda: self.queue.outbox_depth)
        metrics.observe("paused", lambda: self.worker.paused)
        metrics.observe("backpressure", lambda: PauseReason.BACKPRESSURE in self.worker.pause_reasons)
        metrics.observe("vllm_healthy", lambda: self._vllm_ready and self.vllm.health.healthy)
        metrics.observe("ready", lambda: self.readiness()[0])

    def _beat(self) -> tuple[HeartbeatStatus, str | None]:
        """The periodic heartbeat due now: `running`, or `error` once vLLM or the queue is gone too long."""
        return rules.heartbeat(self.vllm.health.healthy, self.link.disconnected_since, self.clock(), self.thresholds)

    def readiness(self) -> tuple[bool, str]:
        """Whether the worker can take jobs (vLLM ready and registered with the queue), else why not."""
        if self.failure is not None:  # a vLLM log line can quote a secret: none leaves through /readyz
            return False, f"failed: {loggable(self.masker(self.failure.message), 300)}"
        if not self._vllm_ready:
            return False, "waiting for vLLM to be ready"
        if not self.vllm.health.healthy:
            return False, "vLLM does not answer /health"
        if self.worker.state in (WorkerState.DRAINING, WorkerState.STOPPED):
            return False, "draining: shutting down"
        if not self.link.registered:
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
            loops = [self.link.run(), self._beating(), self._lease_loop()]
            loops.append(self.vllm.health_loop(self.timings.health_interval))
            if self.settings.CASOLA_BACKPRESSURE_CHECK_INTERVAL > 0:
                loops.append(self.vllm.backpressure_loop())
            if self.settings.CASOLA_VLLM_STALL_TIMEOUT > 0:
                loops.append(self.vllm.stall_loop(lambda: (self.runner.in_flight, self.runner.finished)))
            background = [group.create_task(loop) for loop in loops]
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
        phase_beats = asyncio.create_task(self._starting_beats())
        ready = await readiness.wait(self._ended_while_waiting)
        self.vllm.started_up(ready is True)  # no phase after this; the last `starting` goes before any `running`
        await asyncio.wait([phase_beats], timeout=self.timings.settle_timeout)
        if ready is False:
            self.fail(rules.vllm_never_ready(timeout))
        if ready:
            self.runner.surface.begin_reading()  # while the worker registers; a job judged before waits for it
        return bool(ready) and not (self._shutdown.is_set() or self._failed.is_set())

    async def _beating(self) -> None:
        """`running` heartbeats, the first once the served vLLM's surface is read: each says its version."""
        await self.runner.surface.settled()
        await self.beats.run()

    async def _ended_while_waiting(self, seconds: float) -> bool:
        """Waits `seconds`, less when vLLM's output says it answers now; True when the worker must stop waiting."""
        await sleep_unless(self._shutdown, self._failed, self.vllm.said_ready, timeout=seconds)
        self.vllm.said_ready.clear()
        return self._shutdown.is_set() or self._failed.is_set()

    async def _starting_beats(self) -> None:
        """A `starting` heartbeat for each start-up phase vLLM's lines tell, its message saying which, until ready."""
        while (phase := await self.vllm.phases.get()) is not None:
            await self.heartbeats.send(HeartbeatStatus.STARTING, phase)

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
        failed = self.failure
        self._execute(self.worker.abandon(*(failed.category, failed.message) if failed else SHUT_DOWN_MID_JOB))
        if self._job_tasks():
            await asyncio.wait(self._job_tasks(), timeout=self.timings.settle_timeout)
        await self.beats.end()  # no `running` after this: the last heartbeat is the last the API gets
        failure = self.failure
        if failure is None:
            self.worker.transition(WorkerState.DRAINING)
            self.worker.stop()
            await self._close_queue()
            await self.beats.last(HeartbeatStatus.STOPPING)
            log.info("worker stopped")
        else:
            log.error("worker failed: %s", failure.message)
            self.worker.fail()
            await self.beats.last(failure.status, failure.message)
            await self._close_queue()
        return rules.exit_code(failure)

    async def _close_queue(self) -> None:
        if self._group is None:  # never connected
            return
        if not await self.queue.flush(self.timings.flush_timeout):
            log.warning("queue: closing with frames not sent")
        await self.queue.close()

    # What the state machine asks.

    def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            self._command_handlers[type(command)](command)

    def _send(self, command: Send) -> None:
        self.queue.send(command.frame)
        if isinstance(command.frame, frames.JobProgress):
            self.metrics.lease_renewed()

    def _cancel(self, command: CancelJob) -> None:
        log.info("job %s cancelled: %s", command.running.job.job_id, command.reason)
        if (task := self._tasks.get(command.running.job.job_id)) is not None:
            self.runner.cancelled(command.running, command.outcome)
            task.cancel()

    # Jobs.

    def _start(self, running: RunningJob) -> None:
        assert self._group is not None
        job = running.job
        log.debug("job %s started (%s, fence %d)", job.job_id, job.mode, job.fence_token)  # info: one line a job
        self.runner.begin(running)
        self._tasks[job.job_id] = self._group.create_task(self._run_job(running))

    async def _run_job(self, running: RunningJob) -> None:
        current_job_id.set(running.job.job_id)  # this task's log lines carry the job's id
        frame = None
        try:
            frame = await self.runner.run(running)
        finally:
            if self._tasks.get(running.job.job_id) is asyncio.current_task():
                del self._tasks[running.job.job_id]
            if self.worker.finish(running) and frame is not None:
                self.queue.send(frame)

    def _job_tasks(self) -> list["asyncio.Task[None]"]:
        return list(self._tasks.values())

    # Background loops.

    async def _lease_loop(self) -> None:
        tick = min(1.0, self.settings.renew_lease_after / 4)
        while True:
            await asyncio.sleep(tick)
            self._execute(self.worker.renewals(self.clock()))

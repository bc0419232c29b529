"""The worker service: drives the domain's state machine through the ports (the imperative shell)."""

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from application.ports import (
    Heartbeats,
    Inference,
    InferenceRejected,
    InferenceUnavailable,
    PayloadStore,
    PayloadTransferFailed,
    QueueConnection,
    QueueRejected,
)
from application.settings import Settings
from domain import frames, results
from domain.errors import ErrorCategory, JobFailed
from domain.jobs import ChatPayload, Job, resolve_kind, validate_payload
from domain.vllm import LogVerdict
from domain.worker import CancelJob, Command, Ignored, Send, StartJob, Worker, WorkerState

log = logging.getLogger("worker")

HEALTH_FAILURES_BEFORE_DOWN = 3
QUEUE_UNREACHABLE_AFTER = 300.0


@dataclass(frozen=True)
class Failure:
    """Why the worker must stop: the heartbeat status to report and the reason."""

    status: str
    message: str
    category: ErrorCategory = ErrorCategory.VLLM_UNAVAILABLE

    @property
    def exit_code(self) -> int:
        """1 for a failure another try may not have (`error`), 2 for a bad host or a refusal (`fatal`)."""
        return 2 if self.status == "fatal" else 1


@dataclass(frozen=True)
class Timings:
    """How often the service polls; tests shorten them."""

    health_interval: float = 1.0
    readiness_interval: float = 0.5
    flush_timeout: float = 3.0


class WorkerService:
    """Runs the worker from start to exit and returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        queue: QueueConnection,
        heartbeats: Heartbeats,
        inference: Inference,
        payloads: PayloadStore,
        timings: Timings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.heartbeats = heartbeats
        self.inference = inference
        self.payloads = payloads
        self.timings = timings or Timings()
        self.clock = clock
        self.worker = Worker(
            settings.CASOLA_INSTANCE_ID,
            settings.CASOLA_CONFIG_ID,
            settings.CASOLA_MAX_JOBS,
            settings.CASOLA_LEASE_SECONDS,
            settings.renew_lease_after,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._shutdown = asyncio.Event()
        self._hurry = asyncio.Event()
        self._failure: Failure | None = None
        self._failed = asyncio.Event()
        self._vllm_healthy = True
        self._disconnected_since: float | None = None
        self._unknown_types: set[str] = set()

    # Events from outside: signals, and the launcher watching vLLM.

    def request_shutdown(self) -> None:
        if self._shutdown.is_set():
            log.warning("second shutdown signal: giving up running jobs now")
            self._hurry.set()
        else:
            log.info("shutdown requested: draining")
        self._shutdown.set()

    def fail(self, failure: Failure) -> None:
        if self._failure is None:
            self._failure = failure
            self._failed.set()

    def on_vllm_log(self, verdict: LogVerdict | None, line: str) -> None:
        if verdict is LogVerdict.FATAL:
            self.fail(Failure("fatal", f"vLLM reports a bad host: {line.strip()[:300]}"))
        elif verdict is LogVerdict.RETRYABLE:
            log.error("vLLM failure: %s", line.strip()[:300])

    def on_vllm_exit(self, code: int) -> None:
        self.fail(Failure("error", f"vLLM exited with code {code}"))

    # The run.

    async def run(self) -> int:
        self._install_signal_handlers()
        try:
            return await self._run()
        finally:
            self._remove_signal_handlers()

    async def _run(self) -> int:
        await self.heartbeats.send("starting")
        self.worker.transition(WorkerState.WAITING_FOR_VLLM)
        if not await self._wait_for_vllm():
            return await self._stop_before_start()
        self.worker.transition(WorkerState.CONNECTING)
        async with asyncio.TaskGroup() as group:
            self._group = group
            background = [
                group.create_task(self._connect()),
                group.create_task(self._heartbeat_loop()),
                group.create_task(self._lease_loop()),
                group.create_task(self._vllm_watch()),
            ]
            await self._first(self._shutdown, self._failed)
            code = await self._drain() if self._failure is None else await self._give_up()
            for task in background:
                task.cancel()
        return code

    async def _stop_before_start(self) -> int:
        if self._failure is None and self._shutdown.is_set():
            self.worker.transition(WorkerState.DRAINING)
            self.worker.stop()
            await self.heartbeats.send("stopping")
            return 0
        failure = self._failure or Failure("error", "vLLM did not become ready")
        self.worker.fail()
        log.error("worker failed: %s", failure.message)
        await self.heartbeats.send(failure.status, failure.message)
        return failure.exit_code

    async def _wait_for_vllm(self) -> bool:
        timeout = self.settings.VLLM_STARTUP_TIMEOUT
        log.info("waiting for vLLM at %s (up to %.0f s)", self.settings.vllm_base_url, timeout)
        started = self.clock()
        next_note = started + 10
        while self.clock() - started < timeout:
            if self._shutdown.is_set() or self._failed.is_set():
                return False
            if await self._vllm_ready():
                log.info("vLLM ready after %.1f s", self.clock() - started)
                return True
            if self.clock() >= next_note:
                log.info("still waiting for vLLM (%.0f s of %.0f s)", self.clock() - started, timeout)
                next_note += 10
            await self._first(self._shutdown, self._failed, timeout=self.timings.readiness_interval)
        self.fail(Failure("error", f"vLLM did not become ready within {timeout:.0f} s (VLLM_STARTUP_TIMEOUT)"))
        return False

    async def _vllm_ready(self) -> bool:
        if not await self.inference.health():
            return False
        try:
            models = await self.inference.models()
        except (InferenceUnavailable, InferenceRejected):
            return False
        if self.settings.VLLM_SERVED_MODEL_NAME not in models:
            log.warning("vLLM serves %s, not %r", models, self.settings.VLLM_SERVED_MODEL_NAME)
        return True

    async def _first(self, *awaited: "asyncio.Event | asyncio.Future[Any]", timeout: float | None = None) -> None:
        """Returns when the first event is set or future done, or after `timeout`."""
        waits = [asyncio.ensure_future(item.wait()) if isinstance(item, asyncio.Event) else item for item in awaited]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    # Endings.

    async def _drain(self) -> int:
        self._execute(self.worker.drain())
        grace = self.settings.CASOLA_SHUTDOWN_GRACE_PERIOD
        running = list(self._tasks.values())
        log.info("draining: %d job(s) running, waiting up to %.1f s", len(running), grace)
        if running:
            waiting = asyncio.ensure_future(asyncio.wait(running))
            await self._first(waiting, self._hurry, self._failed, timeout=grace)
        self._execute(self.worker.abandon(ErrorCategory.SHUTTING_DOWN, "the worker shut down before the job finished"))
        await self._settle_jobs()
        if self._failure is not None:
            return await self._give_up()
        await self._close_queue()
        self.worker.stop()
        await self.heartbeats.send("stopping")
        log.info("worker stopped")
        return 0

    async def _give_up(self) -> int:
        failure = self._failure or Failure("error", "unknown failure")
        log.error("worker failed: %s", failure.message)
        self._execute(self.worker.abandon(failure.category, failure.message))
        self.worker.fail()
        await self._settle_jobs()
        await self.heartbeats.send(failure.status, failure.message)
        await self._close_queue()
        return failure.exit_code

    async def _settle_jobs(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=5.0)

    async def _close_queue(self) -> None:
        if not await self.queue.flush(self.timings.flush_timeout):
            log.warning("queue: closing with frames not sent")
        await self.queue.close()

    # The queue.

    async def _connect(self) -> None:
        try:
            await self.queue.run(self._on_connect, self._on_message, self._on_disconnect)
        except QueueRejected as rejected:
            self.fail(Failure("fatal", f"queue refused the worker: {rejected}", ErrorCategory.SHUTTING_DOWN))
        except Exception as error:  # the socket task must never end the worker silently
            log.exception("queue connection failed")
            self.fail(Failure("error", f"queue connection failed: {type(error).__name__}: {error}"))

    def _on_connect(self) -> list[dict[str, Any]]:
        self._disconnected_since = None
        return [command.frame for command in self.worker.connected() if isinstance(command, Send)]

    def _on_disconnect(self) -> None:
        self._disconnected_since = self.clock()
        self.worker.disconnected()

    def _on_message(self, message: str | bytes) -> None:
        try:
            frame = frames.parse_frame(message)
        except frames.MalformedFrame as malformed:
            log.warning("queue: skipped malformed frame (%s): %s", malformed, _shorten(message))
            return
        if isinstance(frame, Job):
            self._execute(self.worker.receive(frame, self.clock()))
        elif isinstance(frame, frames.JobRevoked):
            self._execute(self.worker.revoke(frame.job_id, frame.reason))
        elif isinstance(frame, frames.QueueError):
            log.warning("queue reports an error: %s", frame.message)
        elif frame.type not in self._unknown_types:
            self._unknown_types.add(frame.type)
            log.warning("queue: ignoring frames of unknown type %r", frame.type)

    def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Send):
                self.queue.send(command.frame)
            elif isinstance(command, StartJob):
                self._start(command.job)
            elif isinstance(command, CancelJob):
                log.info("job %s cancelled: %s", command.job_id, command.reason)
                task = self._tasks.get(command.job_id)
                if task is not None:
                    task.cancel()
            elif isinstance(command, Ignored):
                log.info("job %s: %s", command.job_id, command.reason)

    # Jobs.

    def _start(self, job: Job) -> None:
        assert self._group is not None
        log.info("job %s started (%s, fence %d)", job.job_id, job.mode, job.fence_token)
        self._tasks[job.job_id] = self._group.create_task(self._run_job(job))

    async def _run_job(self, job: Job) -> None:
        started = self.clock()
        outcome: dict[str, Any] | JobFailed | None = None
        try:
            async with asyncio.timeout(self.settings.CASOLA_JOB_TIMEOUT):
                outcome = await self._execute_job(job)
        except JobFailed as failed:
            outcome = failed
        except TimeoutError:
            limit = self.settings.CASOLA_JOB_TIMEOUT
            outcome = JobFailed(ErrorCategory.INFERENCE_TIMEOUT, f"no answer within {limit:g} s (CASOLA_JOB_TIMEOUT)")
        except Exception as error:
            log.exception("job %s: unexpected error", job.job_id)
            outcome = JobFailed(ErrorCategory.INFERENCE_ERROR, f"{type(error).__name__}: {error}")
        finally:
            self._tasks.pop(job.job_id, None)
            running = self.worker.finish(job.job_id)
            if running is not None and outcome is not None:
                await self._report(job, running.fence_token, outcome, self.clock() - started)

    async def _execute_job(self, job: Job) -> dict[str, Any]:
        payload = job.payload if job.payload_url is None else await self._fetch(job.payload_url)
        if not isinstance(payload, dict):
            raise JobFailed(
                ErrorCategory.INVALID_PAYLOAD, f"payload must be a JSON object, got {type(payload).__name__}"
            )
        kind, job_type = resolve_kind(job.job_type, payload)
        request = validate_payload(kind, payload)
        try:
            if isinstance(request, ChatPayload):
                output = await self.inference.chat(request, payload.get("extra_body"))
            else:
                output = await self.inference.embeddings(request)
        except InferenceUnavailable as error:
            raise JobFailed(ErrorCategory.VLLM_UNAVAILABLE, str(error)) from None
        except InferenceRejected as error:
            raise JobFailed(ErrorCategory.INFERENCE_ERROR, str(error)) from None
        return results.job_result(kind, job_type, job.config_id, output, datetime.now(UTC))

    async def _fetch(self, url: str) -> Any:
        try:
            return await self.payloads.fetch(url)
        except PayloadTransferFailed as error:
            raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"payload_url: {error}") from None

    async def _report(self, job: Job, fence_token: int, outcome: dict[str, Any] | JobFailed, took: float) -> None:
        if isinstance(outcome, JobFailed):
            log.warning("job %s failed after %.2f s: %s", job.job_id, took, outcome)
            self.queue.send(frames.job_error(job.job_id, fence_token, str(outcome)))
            return
        log.info("job %s done in %.2f s (%s)", job.job_id, took, _token_counts(outcome))
        if job.result_upload_url and await self._uploaded(job, outcome):
            self.queue.send(frames.job_result_ref(job.job_id, fence_token))
        else:
            self.queue.send(frames.job_result(job.job_id, fence_token, outcome))

    async def _uploaded(self, job: Job, result: dict[str, Any]) -> bool:
        body = json.dumps(result, separators=(",", ":")).encode()
        if len(body) <= results.RESULT_INLINE_LIMIT or job.result_upload_url is None:
            return False
        try:
            await self.payloads.upload(job.result_upload_url, body)
        except PayloadTransferFailed as error:
            log.warning("job %s: result upload failed, sending inline: %s", job.job_id, error)
            return False
        return True

    # Background loops.

    async def _heartbeat_loop(self) -> None:
        while True:
            status, message = self._heartbeat_status()
            await self.heartbeats.send(status, message)
            await asyncio.sleep(self.settings.CASOLA_HEARTBEAT_INTERVAL)

    def _heartbeat_status(self) -> tuple[str, str | None]:
        if not self._vllm_healthy:
            return "error", "vLLM is not answering /health"
        since = self._disconnected_since
        if since is not None and self.clock() - since > QUEUE_UNREACHABLE_AFTER:
            return "error", f"queue unreachable for {self.clock() - since:.0f} s"
        return "running", None

    async def _lease_loop(self) -> None:
        tick = min(1.0, self.settings.renew_lease_after / 4)
        while True:
            await asyncio.sleep(tick)
            self._execute(self.worker.renewals(self.clock()))

    async def _vllm_watch(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.timings.health_interval)
            healthy = await self.inference.health()
            failures = 0 if healthy else failures + 1
            if healthy != self._vllm_healthy:
                self._vllm_healthy = healthy
                log.warning("vLLM /health %s", "answers again" if healthy else "does not answer: pausing dispatch")
                self._execute(self.worker.vllm_healthy() if healthy else self.worker.vllm_unhealthy())
            if failures >= HEALTH_FAILURES_BEFORE_DOWN:
                self.fail(Failure("error", f"vLLM stopped answering /health ({failures} checks in a row)"))
                return

    # Signals.

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_shutdown)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def _token_counts(result: dict[str, Any]) -> str:
    usage = (result.get("completion") or result.get("embeddings") or {}).get("usage") or {}
    return f"prompt {usage.get('prompt_tokens', '?')}, completion {usage.get('completion_tokens', 0)} tokens"


def _shorten(message: str | bytes, limit: int = 200) -> str:
    text = message if isinstance(message, str) else repr(message)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"

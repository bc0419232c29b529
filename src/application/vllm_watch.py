"""vLLM as the running worker sees it: /health every interval, its waiting requests against the backpressure
thresholds, and its output lines; each says what the worker must do through the state machine's commands."""

import asyncio
import logging
from collections.abc import Callable

from application.ports import VllmProbe
from application.settings import Settings
from domain import rules
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.rules import Backpressure, Failure, HealthWatch, Thresholds
from domain.vllm import LogVerdict, classify_log_line, gauge
from domain.worker import Command, PauseReason, Worker

log = logging.getLogger("worker")
vllm_log = logging.getLogger("vllm")


class VllmWatch:
    def __init__(
        self,
        probe: VllmProbe,
        worker: Worker,
        settings: Settings,
        thresholds: Thresholds,
        execute: Callable[[list[Command]], None],
        fail: Callable[[Failure], None],
    ) -> None:
        self.probe, self.worker, self.settings = probe, worker, settings
        self.execute, self.fail = execute, fail
        self.health = HealthWatch(thresholds.health_failures_before_down)
        self.backpressure = Backpressure(
            settings.CASOLA_BACKPRESSURE_PAUSE_THRESHOLD, settings.CASOLA_BACKPRESSURE_RESUME_THRESHOLD
        )

    async def health_loop(self, interval: float) -> None:
        """A failed check pauses dispatch, a passed one resumes it; enough failures in a row fail the worker."""
        while not self.health.down:
            await asyncio.sleep(interval)
            healthy = await self.probe.health()
            if self.health.observe(healthy):
                log.warning("vLLM /health %s", "answers again" if healthy else "does not answer: pausing dispatch")
                self.execute(self.worker.vllm_healthy() if healthy else self.worker.vllm_unhealthy())
        self.fail(self.health.failure())

    async def backpressure_loop(self) -> None:
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
            self.execute(self.worker.pause(reason) if verdict else self.worker.resume(reason))

    def said(self, line: str) -> None:
        """One line of vLLM's output (launched by the worker, or relayed in the container): logged as vLLM's,
        and a line that tells a bad host or a dead engine fails the worker."""
        vllm_log.info("%s", line)
        verdict = classify_log_line(line)
        if verdict is LogVerdict.RETRYABLE:
            log.error("vLLM failure: %s", line.strip()[:300])
        failure = rules.on_vllm_log(verdict, line)
        if failure is not None:
            self.fail(failure)

    def exited(self, code: int) -> None:
        """vLLM, started by someone else (the container's entrypoint), exited with `code`."""
        self.fail(rules.on_vllm_exit(code))

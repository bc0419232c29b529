"""vLLM as the running worker sees it: /health every interval, its progress on the requests it holds, its waiting
requests against the backpressure thresholds, and its output lines; each says what the worker must do through the
state machine's commands."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from application.ports import VllmProbe, WorkerMetrics
from application.settings import Settings
from domain import rules
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.rules import Backpressure, Failure, HealthWatch, Thresholds
from domain.stall import TOKEN_COUNTERS, StallWatch
from domain.startup import ANSWERING, StartupPhases
from domain.vllm import REQUESTS_WAITING, LogVerdict, classify_log_line
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
        clock: Callable[[], float],
        metrics: WorkerMetrics,
        on_back: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.on_back = on_back  # vLLM answers again: it may be another vLLM, whose surface is read before dispatch
        self.startup: StartupPhases | None = StartupPhases(started=clock())  # its start-up, read until it is ready
        self.phases: asyncio.Queue[str | None] = asyncio.Queue()  # each phase said, then None once it is ready
        self.said_ready = asyncio.Event()  # its line for "ready": the wait for it asks at once, not at its interval
        self.probe, self.worker, self.settings = probe, worker, settings
        self.execute, self.fail, self.clock, self.metrics = execute, fail, clock, metrics
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
                if healthy and self.on_back is not None:
                    await self.on_back()
                self.execute(self.worker.vllm_healthy() if healthy else self.worker.vllm_unhealthy())
        self.fail(self.health.failure())

    async def backpressure_loop(self) -> None:
        """vLLM's waiting requests: above the pause threshold the queue is told to pause, at or below resume."""
        while True:
            await asyncio.sleep(self.settings.CASOLA_BACKPRESSURE_CHECK_INTERVAL)
            try:
                waiting = (await self.probe.load(REQUESTS_WAITING)).get(REQUESTS_WAITING)
            except (InferenceUnavailable, InferenceRejected):
                continue  # a failed read changes nothing
            verdict = self.backpressure.verdict(waiting, PauseReason.BACKPRESSURE in self.worker.pause_reasons)
            if verdict is None:
                continue
            change = "pausing dispatch" if verdict else "resuming dispatch"
            log.warning("backpressure: %g requests waiting in vLLM: %s", waiting or 0, change)
            reason = PauseReason.BACKPRESSURE
            self.execute(self.worker.pause(reason) if verdict else self.worker.resume(reason))

    async def stall_loop(self, progress: Callable[[], tuple[int, int]]) -> None:
        """`progress` says the worker's requests in flight and how many vLLM has finished; with vLLM's token
        counters they tell a hung engine, which /health does not: the worker then ends as for a vLLM that is down."""
        watch = StallWatch(self.settings.CASOLA_VLLM_STALL_TIMEOUT)
        while True:
            await asyncio.sleep(min(5.0, max(0.1, watch.timeout / 4)))
            in_flight, finished = progress()
            tokens = await self._tokens() if in_flight else None
            if watch.observe(self.clock(), in_flight, finished, tokens):
                log.error("vLLM stalled: %d request(s) held for %g s, none finished, no token generated; its "
                          "/health still answers: giving up on it", in_flight, watch.timeout)  # fmt: skip
                self.metrics.vllm_stalled()
                self.execute(self.worker.vllm_unhealthy())
                self.fail(rules.vllm_stalled(watch.timeout))
                return

    async def _tokens(self) -> float | None:
        """vLLM's prompt and generation tokens so far; None when /metrics cannot be read or does not show them."""
        try:
            counts = await self.probe.load(*TOKEN_COUNTERS)
        except (InferenceUnavailable, InferenceRejected):
            return None
        return sum(counts.values()) if counts else None

    def relayed(self, line: str) -> None:
        """A line the container's relay already wrote to the container's log: shipped and judged, not written again."""
        self.said(line, {"relayed": True})

    def launched(self, seconds_ago: float, held: list[tuple[str, float]]) -> None:
        """vLLM was started `seconds_ago` by the worker, which took its `held` lines (each with how long ago it
        came) before this watch existed: its start-up counts from then, and the lines are read as said then."""
        if self.startup is not None:
            self.startup = StartupPhases(started=self.clock() - seconds_ago)
        for line, ago in held:
            self.said(line, ago=ago)

    def said(self, line: str, extra: dict[str, object] | None = None, ago: float = 0.0) -> None:
        """One line of vLLM's output (launched by the worker, or relayed in the container): logged as vLLM's,
        and a line that tells a bad host or a dead engine fails the worker."""
        vllm_log.info("%s", line, extra=extra)
        if self.startup is not None and (phase := self.startup.observe(line, self.clock() - ago)) is not None:
            name, said = phase
            log.info("%s", said)
            self.phases.put_nowait(said)
            self.metrics.startup_phase(name, self.startup.seconds[name])
        if ANSWERING.search(line):
            self.said_ready.set()
        verdict = classify_log_line(line)
        if verdict is LogVerdict.RETRYABLE:
            log.error("vLLM failure: %s", line.strip()[:300])
        failure = rules.on_vllm_log(verdict, line)
        if failure is not None:
            self.fail(failure)

    def started_up(self, ready: bool) -> None:
        """The wait for vLLM is over: its lines are no longer phases; when it is `ready`, one line says where its
        start-up's seconds went."""
        if self.startup is None:
            return
        if ready:
            total = self.clock() - self.startup.started
            log.info("%s", self.startup.summary(total))
            self.metrics.startup_phase("total", total)
        self.startup = None
        self.phases.put_nowait(None)

    def exited(self, code: int) -> None:
        """vLLM, started by someone else (the container's entrypoint), exited with `code`."""
        self.fail(rules.on_vllm_exit(code))

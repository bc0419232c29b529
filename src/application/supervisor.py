"""vLLM launched by the worker: started through the `ProcessLauncher` port, its output and exit turned into failures."""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from application.ports import LaunchedProcess, ProcessLauncher
from domain import rules

if TYPE_CHECKING:  # the service is built after vLLM starts: this module is imported before it
    from application.service import WorkerService

log = logging.getLogger("worker")


class VllmSupervisor:
    """Runs the worker beside a vLLM it starts; vLLM is stopped (its whole group) when the worker ends."""

    def __init__(self, launcher: ProcessLauncher, argv: list[str], stop_timeout: float) -> None:
        self.launcher = launcher
        self.argv = argv
        self.stop_timeout = stop_timeout
        self.process: LaunchedProcess | None = None
        self.cannot_start: OSError | None = None
        self.started = 0.0  # when vLLM was started, on the monotonic clock
        self._held: list[tuple[str, float]] = []  # its lines before the service takes them, with when they came
        self._said: Callable[[str], None] | None = None

    async def start(self) -> None:
        """vLLM starts now; its lines are held until `run` hands them to the worker's service."""
        self.started = time.monotonic()
        try:
            self.process = await self.launcher.launch(self.argv, self._line)
        except OSError as error:
            self.cannot_start = error

    async def run(self, service: "WorkerService") -> int:
        if self.process is None and self.cannot_start is None:
            await self.start()
        if self.process is None:
            error = self.cannot_start or OSError("not started")
            service.fail(rules.vllm_cannot_start(self.argv[0], error.strerror or str(error)))
            return await service.run()
        now = time.monotonic()  # the service's clock may be another: it is told how long ago each thing was
        service.vllm.launched(now - self.started, [(line, now - when) for line, when in self._held])
        self._said, self._held = service.vllm.said, []
        watcher = asyncio.create_task(self._watch(self.process, service))
        try:
            return await service.run()
        finally:
            watcher.cancel()
            code = await self.process.stop(self.stop_timeout)
            log.info("vLLM stopped (exit code %d)", code)

    def _line(self, line: str) -> None:
        if self._said is None:
            self._held.append((line, time.monotonic()))
        else:
            self._said(line)

    async def _watch(self, process: LaunchedProcess, service: "WorkerService") -> None:
        service.fail(rules.on_vllm_exit(await process.wait()))

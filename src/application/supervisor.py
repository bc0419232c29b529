"""vLLM launched by the worker: started through the `ProcessLauncher` port, its output and exit turned into failures."""

import asyncio
import logging

from application.ports import LaunchedProcess, ProcessLauncher
from application.service import WorkerService
from domain import rules

log = logging.getLogger("worker")


class VllmSupervisor:
    """Runs the worker beside a vLLM it starts; vLLM is stopped (its whole group) when the worker ends."""

    def __init__(self, launcher: ProcessLauncher, argv: list[str], stop_timeout: float) -> None:
        self.launcher = launcher
        self.argv = argv
        self.stop_timeout = stop_timeout

    async def run(self, service: WorkerService) -> int:
        try:
            process = await self.launcher.launch(self.argv, service.vllm.said)
        except OSError as error:
            service.fail(rules.vllm_cannot_start(self.argv[0], error.strerror or str(error)))
            return await service.run()
        watcher = asyncio.create_task(self._watch(process, service))
        try:
            return await service.run()
        finally:
            watcher.cancel()
            code = await process.stop(self.stop_timeout)
            log.info("vLLM stopped (exit code %d)", code)

    async def _watch(self, process: LaunchedProcess, service: WorkerService) -> None:
        service.fail(rules.on_vllm_exit(await process.wait()))

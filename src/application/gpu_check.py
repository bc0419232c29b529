"""The GPU checks before vLLM starts (`run --launch-vllm`, `check-gpu`, the container): a bad host says so and exits."""

import logging

from application.ports import GpuInspector, Heartbeats
from domain import rules
from domain.gpu import GpuExpectations, failure_message, gpu_checks
from domain.rules import Failure, HeartbeatStatus

log = logging.getLogger("worker")


class GpuCheck:
    def __init__(self, inspector: GpuInspector, expected: GpuExpectations) -> None:
        self.inspector = inspector
        self.expected = expected

    async def failure(self) -> Failure | None:
        """None for a healthy host (or one without nvidia-smi: a warning, no check); else why it is not."""
        query = await self.inspector.query()
        if query.missing:
            log.warning("GPU check: nvidia-smi not found, no check made")
            return None
        checks = [(False, query.error)] if query.error else gpu_checks(query.rows, self.expected)
        for passed, found in checks:
            if passed:
                log.info("GPU check passed: %s", found)
            else:
                log.error("GPU check failed: %s", found)
        failures = [found for passed, found in checks if not passed]
        return Failure(HeartbeatStatus.FATAL, failure_message(failures)) if failures else None

    async def verify(self, heartbeats: Heartbeats | None) -> int | None:
        """None when vLLM may start; else the exit code, after a `fatal` heartbeat (if any) so the host is blocked."""
        failure = await self.failure()
        if failure is None:
            return None
        if heartbeats is not None:
            await heartbeats.send(failure.status, failure.message)
        return rules.exit_code(failure)

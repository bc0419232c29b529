"""The GPU checks before vLLM starts (`run --launch-vllm`, `check-gpu`, the container): a bad host says so and exits."""

import logging

from application.ports import GpuInspector, Heartbeats
from domain import rules
from domain.gpu import GpuExpectations, failure_message, gpu_failures
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
        failures = [query.error] if query.error else gpu_failures(query.rows, self.expected)
        if failures:
            for failure in failures:
                log.error("GPU check failed: %s", failure)
            return Failure(HeartbeatStatus.FATAL, failure_message(failures))
        log.info("GPU check passed: %s", "; ".join(row.strip() for row in query.rows.splitlines() if row.strip()))
        return None

    async def verify(self, heartbeats: Heartbeats | None) -> int | None:
        """None when vLLM may start; else the exit code, after a `fatal` heartbeat (if any) so the host is blocked."""
        failure = await self.failure()
        if failure is None:
            return None
        if heartbeats is not None:
            await heartbeats.send(failure.status, failure.message)
        return rules.exit_code(failure)

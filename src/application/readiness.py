"""Waiting for vLLM at start: `/health` answers 200, then `/v1/models`, within `VLLM_STARTUP_TIMEOUT`."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from application.ports import VllmProbe
from domain.errors import InferenceRejected, InferenceUnavailable

log = logging.getLogger("worker")


class VllmReadiness:
    def __init__(
        self,
        probe: VllmProbe,
        served_model: str,
        timeout: float,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.served_model = served_model
        self.timeout = timeout
        self.interval = interval
        self.clock = clock

    async def wait(self, interrupted: Callable[[float], Awaitable[bool]]) -> bool | None:
        """True once ready, False when `timeout` passed, None when `interrupted(seconds)` says to stop waiting."""
        started = self.clock()
        next_note = started + 10
        while self.clock() - started < self.timeout:
            if await self.ready():
                return True
            if self.clock() >= next_note:
                log.info("still waiting for vLLM (%.0f s of %.0f s)", self.clock() - started, self.timeout)
                next_note += 10
            if await interrupted(self.interval):
                return None
        return False

    async def ready(self) -> bool:
        if not await self.probe.health():
            return False
        try:
            models = await self.probe.models()
        except (InferenceUnavailable, InferenceRejected):
            return False
        if self.served_model not in models:
            log.warning("vLLM serves %s, not %r", models, self.served_model)
        return True


async def sleep_unless(*awaited: "asyncio.Event | asyncio.Future[Any]", timeout: float | None = None) -> bool:
    """Waits until one event is set or future done, or `timeout` passes; True unless the time ran out."""
    waits = [asyncio.ensure_future(item.wait()) if isinstance(item, asyncio.Event) else item for item in awaited]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return bool(done)

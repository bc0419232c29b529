"""Which model a job addresses: the served default, or a name vLLM serves (an alias, a LoRA adapter)."""

import asyncio
import time
from collections.abc import Callable

from application.ports import VllmProbe
from domain.errors import ErrorCategory, JobFailed
from domain.untrusted import loggable

DEFAULT_NAMES = (None, "default")


class ServedModels:
    """The names from vLLM's /v1/models, asked again (at most every `refresh_every` s) when a job names another."""

    def __init__(
        self,
        probe: VllmProbe,
        default: str,
        refresh_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.default = default
        self.refresh_every = refresh_every
        self.clock = clock
        self.names: frozenset[str] = frozenset({default})
        self.refreshed_at = float("-inf")
        self.lock = asyncio.Lock()

    async def resolve(self, requested: str | None) -> str:
        """The name to send to vLLM, or `invalid_payload` listing the served names."""
        if requested in DEFAULT_NAMES or requested == self.default:
            return self.default
        if requested not in self.names:
            await self._refresh()
        if requested in self.names:
            return requested
        served = loggable(", ".join(sorted(self.names)), 300)
        raise JobFailed(
            ErrorCategory.INVALID_PAYLOAD, f"model: {loggable(requested, 100)} is not served here; served: {served}"
        )

    async def _refresh(self) -> None:
        async with self.lock:
            if self.clock() - self.refreshed_at < self.refresh_every:
                return
            self.refreshed_at = self.clock()
            self.names = frozenset({self.default, *await self.probe.models()})

"""Which model a job addresses: the served default, a name vLLM serves (an alias, a LoRA adapter), or, with
CASOLA_LORA_ROOT, an adapter under the root, loaded into vLLM the first time a job names it."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from application.lora_adapters import LoraAdapters
from application.ports import VllmProbe
from application.served_surface import ServedSurface
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
        adapters: LoraAdapters | None = None,
    ) -> None:
        self.adapters = adapters
        self._loading: dict[str, asyncio.Lock] = {}  # one load at a time for each adapter
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
        if self.adapters is not None and requested is not None:
            return await self._loaded(requested)
        served = loggable(", ".join(sorted(self.names)), 300)
        raise JobFailed(
            ErrorCategory.INVALID_PAYLOAD, f"model: {loggable(requested, 100)} is not served here; served: {served}"
        )

    def is_adapter(self, name: str) -> bool:
        """Whether `name` is an adapter the worker loaded (the job's log line names it)."""
        return self.adapters is not None and name in self.adapters.loaded

    def adapters_loaded(self) -> int:
        """The adapters the worker loaded that vLLM still lists."""
        return 0 if self.adapters is None else len(self.adapters.loaded & self.names)

    async def _loaded(self, name: str) -> str:
        """The adapter `name`, loaded into vLLM unless another job loaded it meanwhile."""
        assert self.adapters is not None
        config = await self.adapters.check(name)  # only a name with a folder under the root gets a lock
        async with self._loading.setdefault(name, asyncio.Lock()):
            if name not in self.names:
                await self.adapters.load(name, config)
                self.names = self.names | {name}
        return name

    async def _refresh(self) -> None:
        async with self.lock:
            if self.clock() - self.refreshed_at < self.refresh_every:
                return
            self.refreshed_at = self.clock()
            self.names = frozenset({self.default, *await self.probe.models()})


def heartbeat_fields(surface: ServedSurface, models: ServedModels) -> Callable[[], dict[str, Any]]:
    """What heartbeats say of the served vLLM: its version and kinds, and with CASOLA_LORA_ROOT, how many adapters
    the worker loaded into it."""

    def fields() -> dict[str, Any]:
        loras = {} if models.adapters is None else {"loras_loaded": models.adapters_loaded()}
        return surface.heartbeat_fields() | loras

    return fields

"""LoRA adapters loaded on demand: a job names an adapter under CASOLA_LORA_ROOT, and the first job for it loads it
into vLLM (its /v1/load_lora_adapter); later jobs use it. vLLM keeps at most --max-loras of them at work and
evicts the least recently used, loading an evicted one again from its folder when a job asks for it."""

import logging
import time
from collections.abc import Callable

from application.metrics import NO_METRICS
from application.ports import AdapterLoader, AdapterShelf, WorkerMetrics
from domain.errors import ErrorCategory, InferenceRejected, JobFailed
from domain.lora import AdapterConfig, adapter_config, made_for, name_problem
from domain.untrusted import loggable

log = logging.getLogger("worker")


class LoraAdapters:
    def __init__(
        self,
        shelf: AdapterShelf,
        loader: AdapterLoader,
        served_model: str,
        metrics: WorkerMetrics = NO_METRICS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shelf, self.loader, self.served_model = shelf, loader, served_model
        self.metrics, self.clock = metrics, clock
        self.loaded: set[str] = set()  # loaded into this vLLM by the worker

    async def check(self, name: str) -> AdapterConfig:
        """The adapter `name`'s config; `invalid_payload` when the name is no adapter's under the root, or the
        adapter was made for another model."""
        if (problem := name_problem(name)) is not None:
            raise JobFailed(
                ErrorCategory.INVALID_PAYLOAD, f"model: {loggable(name, 100)} cannot name an adapter: {problem}"
            )
        text = await self.shelf.config_of(name)
        if text is None:
            raise JobFailed(
                ErrorCategory.INVALID_PAYLOAD,
                f"model: {name} is neither served nor an adapter under CASOLA_LORA_ROOT "
                f"(no {name}/adapter_config.json)",
            )
        try:
            config = adapter_config(text)
        except ValueError as error:
            raise JobFailed(ErrorCategory.INVALID_PAYLOAD, f"model: adapter {name}: {error}") from None
        if not made_for(config.base, self.served_model):
            raise JobFailed(
                ErrorCategory.INVALID_PAYLOAD,
                f"model: adapter {name} was made for {loggable(str(config.base), 200)}, not the served model "
                f"{self.served_model}",
            )
        return config

    async def load(self, name: str, config: AdapterConfig) -> None:
        """Loads the checked adapter `name` into vLLM; `inference_error` with vLLM's reason when it cannot."""
        started = self.clock()
        try:
            await self.loader.load_adapter(name, self.shelf.path_of(name))
        except InferenceRejected as rejected:
            self.metrics.lora_loaded(name, "failed", self.clock() - started)
            raise JobFailed(ErrorCategory.INFERENCE_ERROR, f"adapter {name}: vLLM cannot load it: {rejected}") from None
        took = self.clock() - started
        self.loaded.add(name)
        self.metrics.lora_loaded(name, "loaded", took)
        log.info("LoRA adapter %s loaded in %.2f s (rank %s)", name, took, config.rank)

"""What the served vLLM takes: read once it is ready and again when it answers after a silence (it may be another
vLLM then); a kind whose path it does not serve ends at once, and a job's fields are judged by its request."""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from application.metrics import NO_METRICS
from application.ports import VllmProbe, WorkerMetrics
from domain.errors import ErrorCategory, InferenceRejected, InferenceUnavailable, JobFailed
from domain.kinds import KINDS, RUNNER_FLAGS, JobKind
from domain.surface import BUILT_IN, BUILT_IN_VERSION, Taken, VllmSurface

log = logging.getLogger("worker")
ROUTES = tuple(dict.fromkeys(kind.route for kind in KINDS))


class ServedSurface:
    def __init__(
        self,
        probe: VllmProbe,
        served_model: str,
        metrics: WorkerMetrics = NO_METRICS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe, self.served_model, self.metrics, self.clock = probe, served_model, metrics, clock
        self.current: VllmSurface = BUILT_IN
        self.read_seconds = 0.0  # what the last read took
        self.warned = False  # the built-in lists' warning is given once
        self._reading: asyncio.Task[None] | None = None

    def begin_reading(self) -> None:
        """Reads in the background (vLLM 0.30 builds its document on the first request: about 1 s); a job judged
        meanwhile waits for it."""
        self._reading = asyncio.create_task(self.read())

    async def read(self) -> None:
        """The served vLLM's surface, from now on; the one before stays when vLLM cannot be asked."""
        started = self.clock()
        try:
            surface = await self.probe.surface(ROUTES)
        except (InferenceUnavailable, InferenceRejected) as error:
            log.warning("cannot read vLLM's surface (the fields and paths it takes), keeping the last: %s", error)
            return
        self.current, self.read_seconds = surface, self.clock() - started
        kinds = self.kinds_served()
        self.metrics.vllm_surface(surface.version, kinds, "built-in" if surface.built_in else "openapi")
        if not surface.built_in:
            log.info(
                "vLLM %s serves %d paths; job kinds served: %s (read in %.0f ms)",
                surface.version, len(surface.paths or ()), ", ".join(kinds or ()), self.read_seconds * 1000,
            )  # fmt: skip
        elif not self.warned:
            self.warned = True
            log.warning(
                "vLLM %s serves no /openapi.json (started with --disable-fastapi-docs?): a job's fields are judged by "
                "the built-in lists, copied from vLLM %s, and extra_body passes as given",
                surface.version, BUILT_IN_VERSION,
            )  # fmt: skip

    def kinds_served(self) -> list[str] | None:
        """The tasks of the kinds whose path vLLM serves; None when it does not say."""
        if self.current.paths is None:
            return None
        return [kind.task for kind in KINDS if self.current.serves(kind.route)]

    async def settled(self) -> None:
        """Once a read begun is over."""
        if self._reading is not None and not self._reading.done():
            await asyncio.shield(self._reading)

    async def judged(self, kind: JobKind) -> Taken | None:
        """`judge`, once a read begun is over."""
        await self.settled()
        return self.judge(kind)

    def judge(self, kind: JobKind) -> Taken | None:
        """The fields the served vLLM takes for `kind` (None: the built-in lists judge); `unsupported_job_type` when
        it does not serve the kind's path at all, before any request."""
        surface = self.current
        if not surface.serves(kind.route):
            raise JobFailed(
                ErrorCategory.UNSUPPORTED_JOB_TYPE,
                f"{kind.task}: this vLLM ({surface.version}, serving {self.served_model}) does not serve {kind.route}; "
                f"{kind.task} jobs need {RUNNER_FLAGS[kind.runner]}",
            )
        return surface.taken(kind.route)

    def heartbeat_fields(self) -> dict[str, Any]:
        """What heartbeats say of the served vLLM, once it was read: its version and the kinds it serves."""
        if self.current is BUILT_IN:
            return {}
        kinds = self.kinds_served()
        return {"vllm_version": self.current.version} | ({} if kinds is None else {"job_kinds": kinds})

"""Log shipping and system metrics shipping to the Casola API, in the reference worker's formats (README, "Log
shipping"): batched, bounded, retried, masked.

Nothing here can block a job: a log line is appended to a bounded buffer (the oldest dropped when full), and
a background task POSTs what is buffered every interval and once more at shutdown. A failed POST keeps its
batch for the next flush; a POST under way at shutdown is let finish, not cut (a cut one may still be taken in by
the API, and its batch would go again).
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from application.job_context import current_job_id
from application.metrics import NO_METRICS
from application.ports import GpuInspector, VllmProbe, WorkerMetrics
from application.readiness import sleep_unless
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.gpu import SNAPSHOT_QUERY, gpu_snapshot
from domain.untrusted import Masker
from domain.vllm import REQUESTS_RUNNING, REQUESTS_WAITING

log = logging.getLogger("worker.shipping")
LOG_BUFFER = 10_000
LOG_BATCH = 1_000
SNAPSHOT_BUFFER = 120
DROPPED_WARNING_EVERY = 60.0  # seconds: at most one warning about lost entries in this time, however many are lost


class BatchShipper:
    """Entries POSTed as `{**identity, key: [entries]}` in batches; what a failed POST carried stays first in line.

    An entry that finds the buffer full pushes the oldest out: each one lost is counted in the metrics
    (`worker_vllm_shipping_dropped{what=key}`), and a warning says how many, at most once a minute.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        token: str,
        identity: dict[str, str],
        key: str,
        buffer: int,
        batch: int,
        metrics: WorkerMetrics = NO_METRICS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.url, self.identity, self.key, self.batch = client, url, identity, key, batch
        self.metrics, self.clock = metrics, clock
        self.headers = {"Authorization": f"Bearer {token}"}
        self.entries: deque[dict[str, Any]] = deque(maxlen=buffer)
        self.dropped = 0
        self.warned = (0, -DROPPED_WARNING_EVERY)  # entries dropped when last warned, and when
        self.closing = asyncio.Event()  # set at shutdown: `run` returns between flushes

    def add(self, entry: dict[str, Any]) -> None:
        if len(self.entries) == self.entries.maxlen:
            self.dropped += 1
            self.metrics.shipping_dropped(self.key)
        self.entries.append(entry)

    def warn_of_dropped(self) -> None:
        """One warning for the entries lost since the last, unless one was given within DROPPED_WARNING_EVERY."""
        reported, at = self.warned
        if self.dropped > reported and self.clock() - at >= DROPPED_WARNING_EVERY:
            lost = self.dropped - reported
            log.warning(
                "shipping to %s: %d %s dropped since the last warning (%d in all): the buffer of %d was full",
                self.url, lost, self.key, self.dropped, self.entries.maxlen,
            )  # fmt: skip
            self.warned = (self.dropped, self.clock())

    async def flush(self) -> bool:
        """Sends every buffered entry, batch by batch; False (the rest kept) when a POST fails."""
        self.warn_of_dropped()
        while self.entries:
            batch = [self.entries[index] for index in range(min(self.batch, len(self.entries)))]
            if not await self._post(batch):
                return False
            for _ in batch:
                self.entries.popleft()
        return True

    async def _post(self, batch: list[dict[str, Any]]) -> bool:
        try:
            response = await self.client.post(self.url, json={**self.identity, self.key: batch}, headers=self.headers)
        except httpx.HTTPError as error:
            log.debug("shipping to %s failed: %s", self.url, type(error).__name__)
            return False
        return response.is_success

    async def run(self, interval: float, before_flush: Callable[[], Awaitable[None]] | None = None) -> None:
        """Flushes every `interval` seconds until `closing` is set; the caller flushes once more after."""
        while not await sleep_unless(self.closing, timeout=interval):
            if before_flush is not None:
                await before_flush()
            await self.flush()


class LogShipper(logging.Handler):
    """Every log line, the worker's and vLLM's, masked, into the shipping buffer."""

    def __init__(self, shipper: BatchShipper, masker: Masker, config_id: str) -> None:
        super().__init__()
        self.shipper, self.masker, self.config_id = shipper, masker, config_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("worker.shipping"):
            return  # its own troubles would feed the buffer they are about
        entry = {
            "timestamp": record.created,
            "level": record.levelname.lower(),
            "source": "vllm" if record.name == "vllm" else "worker",
            "message": self.masker(record.getMessage()),
            "config_id": self.config_id,
        }
        if (job_id := current_job_id.get()) is not None:
            entry["job_id"] = job_id
        self.shipper.add(entry)


class SystemMetrics:
    """Snapshots of the host and vLLM's load, every interval: `worker_uptime_s`, the first GPU, vLLM's queue."""

    def __init__(
        self,
        shipper: BatchShipper,
        probe: VllmProbe,
        gpu: GpuInspector,
        current_job: Callable[[], str | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shipper, self.probe, self.gpu, self.current_job, self.clock = shipper, probe, gpu, current_job, clock
        self.started = clock()

    async def snapshot(self) -> None:
        entry: dict[str, Any] = {"timestamp": time.time(), "worker_uptime_s": round(self.clock() - self.started, 1)}
        entry |= await self._gpu() | await self._vllm()
        if (job_id := self.current_job()) is not None:
            entry["current_job_id"] = job_id
        self.shipper.add(entry)

    async def _gpu(self) -> dict[str, float]:
        query = await self.gpu.query(SNAPSHOT_QUERY)
        return {} if query.missing or query.error else gpu_snapshot(query.rows)

    async def _vllm(self) -> dict[str, float]:
        try:
            load = await self.probe.load(REQUESTS_RUNNING, REQUESTS_WAITING)
        except (InferenceUnavailable, InferenceRejected):
            return {}
        shipped = {"vllm_running_requests": REQUESTS_RUNNING, "vllm_waiting_requests": REQUESTS_WAITING}
        return {name: load[gauge] for name, gauge in shipped.items() if gauge in load}

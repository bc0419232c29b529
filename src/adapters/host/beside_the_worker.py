"""What runs beside the worker service while it runs: its HTTP endpoint, vLLM's relayed lines in the container,
and the shipping of log lines and system metrics to the Casola API."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import httpx

from adapters.casola_api.shipping import LOG_BATCH, LOG_BUFFER, SNAPSHOT_BUFFER, BatchShipper, LogShipper, SystemMetrics
from adapters.operator.endpoint import WorkerEndpoint
from adapters.vllm import log_relay
from application.metrics import NO_METRICS
from application.ports import GpuInspector, VllmProbe, WorkerMetrics
from application.settings import Settings
from domain.untrusted import Masker

log = logging.getLogger("worker")
SHIPPING_FLUSH_TIMEOUT = 5.0
SNAPSHOTS = (SNAPSHOT_BUFFER, SNAPSHOT_BUFFER)  # buffer and batch: an hour of snapshots at the default 30 s


@contextlib.asynccontextmanager
async def worker_endpoint(
    host: str, port: int, metrics: Callable[[], bytes], readiness: Callable[[], tuple[bool, str]]
) -> AsyncIterator[None]:
    """/metrics, /healthz and /readyz on `host:port` (0: off) while the worker runs.

    A port that cannot be had is logged, and the worker runs on: jobs matter more than their gauges."""
    if port == 0:
        yield
        return
    endpoint = WorkerEndpoint(host, port, metrics, readiness)
    try:
        await endpoint.start()
    except OSError as error:
        log.error("no metrics and health endpoint: cannot listen on port %d: %s", endpoint.port, error.strerror)
    try:
        yield
    finally:
        await endpoint.stop()


@contextlib.asynccontextmanager
async def relayed_vllm_log(
    port: int, on_line: Callable[[str], None], on_exit: Callable[[int], None]
) -> AsyncIterator[None]:
    """In the container, vLLM's lines, and the news of its exit, come relayed on `port` (0: off)."""
    if port == 0:
        yield
        return
    transport = await log_relay.listen(port, on_line, on_exit)
    try:
        yield
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def shipping(
    settings: Settings,
    http: httpx.AsyncClient,
    probe: VllmProbe,
    gpu: GpuInspector,
    masker: Masker,
    current_job: Callable[[], str | None],
    metrics: WorkerMetrics = NO_METRICS,
) -> AsyncIterator[None]:
    """Log lines to CASOLA_LOGS_URL and system metrics to CASOLA_METRICS_URL (each only with the API token),
    flushed every interval in the background and once more at shutdown."""
    identity = {"instance_id": settings.CASOLA_INSTANCE_ID, "queue_id": settings.CASOLA_QUEUE_ID}
    token = settings.api_token
    shippers: list[BatchShipper] = []
    tasks: list[asyncio.Task[None]] = []
    handler: LogShipper | None = None
    if settings.CASOLA_LOGS_URL and token:
        logs = BatchShipper(http, settings.CASOLA_LOGS_URL, token, identity, "entries", LOG_BUFFER, LOG_BATCH, metrics)
        handler = LogShipper(logs, masker, settings.CASOLA_CONFIG_ID)
        logging.getLogger().addHandler(handler)
        shippers.append(logs)
        tasks.append(asyncio.create_task(logs.run(settings.CASOLA_LOG_FLUSH_INTERVAL)))
    if settings.CASOLA_METRICS_URL and token:
        identity = identity | {"config_id": settings.CASOLA_CONFIG_ID}
        snapshots = BatchShipper(http, settings.CASOLA_METRICS_URL, token, identity, "snapshots", *SNAPSHOTS, metrics)
        system = SystemMetrics(snapshots, probe, gpu, current_job)
        shippers.append(snapshots)
        tasks.append(asyncio.create_task(snapshots.run(settings.CASOLA_METRICS_INTERVAL, system.snapshot)))
    try:
        yield
    finally:
        await asyncio.gather(*(_close(shipper, task) for shipper, task in zip(shippers, tasks, strict=True)))
        if handler is not None:
            logging.getLogger().removeHandler(handler)


async def _close(shipper: BatchShipper, task: "asyncio.Task[None]") -> None:
    """The flush under way finishes (cut, its batch could reach the API and go again), then the last flush; each
    within SHIPPING_FLUSH_TIMEOUT, so an API that hangs does not hold the exit."""
    shipper.closing.set()
    await asyncio.wait([task], timeout=SHIPPING_FLUSH_TIMEOUT)
    task.cancel()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SHIPPING_FLUSH_TIMEOUT):
            await shipper.flush()

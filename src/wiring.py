"""The composition root: the container that wires each port to its adapter, and the worker's runs on it. The command
line (`main`) imports it only once vLLM, when the worker launches it, is already starting."""

from collections.abc import Awaitable, Callable

from dependency_injector import containers, providers

from adapters.casola_api.client import http_client
from adapters.casola_api.heartbeats import HttpHeartbeats
from adapters.host.beside_the_worker import relayed_vllm_log, shipping, worker_endpoint
from adapters.host.lora_root import LoraRoot
from adapters.host.nvidia_smi import NvidiaSmi
from adapters.operator.prometheus_metrics import PrometheusMetrics
from adapters.payload_urls.client import payload_client
from adapters.payload_urls.store import HttpPayloadStore
from adapters.queue.websocket import WebSocketQueue
from adapters.vllm.client import VllmClient, vllm_client
from adapters.vllm.inference import HttpInference
from adapters.vllm.lora_loader import HttpLoraLoader
from adapters.vllm.official_client import openai_client, openai_inference
from adapters.vllm.probe import HttpVllmProbe
from application.diagnostics import Diagnostics
from application.gpu_check import GpuCheck
from application.job_runner import JobRunner
from application.lora_adapters import LoraAdapters
from application.served_models import ServedModels, heartbeat_fields
from application.served_surface import ServedSurface
from application.service import WorkerService
from application.settings import Settings, VllmSettings
from application.supervisor import VllmSupervisor
from application.timings import Timings
from domain.rules import Failure
from domain.untrusted import Masker


def lora_adapters(
    root: str | None, client: VllmClient, served_model: str, metrics: PrometheusMetrics
) -> LoraAdapters | None:
    """With CASOLA_LORA_ROOT, the adapters under it, loaded into vLLM on demand; else None (no LoRA)."""
    return None if root is None else LoraAdapters(LoraRoot(root), HttpLoraLoader(client), served_model, metrics)


class Container(containers.DeclarativeContainer):
    """Wires the ports to their adapters; only this module and tests touch it."""

    settings = providers.Dependency(instance_of=VllmSettings)
    given = settings.provided  # the settings, as each provider takes them
    http = providers.Resource(http_client)
    vllm = providers.Resource(
        vllm_client, given.vllm_base_url, given.vllm_api_key, given.vllm_connections, given.vllm_read_timeout
    )
    inference = providers.Singleton(HttpInference, vllm)
    openai = providers.Resource(openai_client, given.vllm_base_url, given.vllm_api_key, given.request_timeout)
    typed_inference = providers.Singleton(openai_inference, openai)  # check-vllm: the official client's view
    probe = providers.Singleton(HttpVllmProbe, vllm)
    diagnostics = providers.Factory(Diagnostics, probe, typed_inference, given.VLLM_SERVED_MODEL_NAME)
    masker = providers.Singleton(Masker, given.secrets.call())  # every secret the worker knows, built once
    metrics = providers.Singleton(PrometheusMetrics)
    queue = providers.Singleton(
        WebSocketQueue, given.queue_url, given.api_token, keepalive=given.CASOLA_QUEUE_KEEPALIVE, masker=masker,
        metrics=metrics,
    )  # fmt: skip
    surface = providers.Singleton(ServedSurface, probe, given.VLLM_SERVED_MODEL_NAME, metrics)
    lora = providers.Singleton(lora_adapters, given.CASOLA_LORA_ROOT, vllm, given.VLLM_MODEL, metrics)
    models = providers.Singleton(ServedModels, probe, given.VLLM_SERVED_MODEL_NAME, adapters=lora)
    heartbeats = providers.Singleton(
        HttpHeartbeats,
        http,
        given.CASOLA_API_URL,
        given.api_token,
        given.CASOLA_INSTANCE_ID,
        given.CASOLA_QUEUE_ID,
        masker,
        metrics,
        providers.Callable(heartbeat_fields, surface, models),
    )
    payload_http = providers.Resource(payload_client, given.payload_policy)
    payloads = providers.Singleton(HttpPayloadStore, payload_http, given.CASOLA_PAYLOAD_TIMEOUT, metrics=metrics)
    runner = providers.Singleton(
        JobRunner,
        inference,
        payloads,
        models,
        given.CASOLA_JOB_TIMEOUT,
        given.payload_limits,
        metrics=metrics,
        surface=surface,
    )
    timings = providers.Object(Timings())
    service = providers.Singleton(
        WorkerService, settings, queue, heartbeats, probe, runner, timings, metrics=metrics, masker=masker
    )
    gpu = providers.Singleton(NvidiaSmi)
    gpu_check = providers.Factory(GpuCheck, gpu, given.gpu_expectations)


async def run_worker(settings: Settings, supervisor: VllmSupervisor | None) -> int:
    """The worker until it ends; beside the vLLM `supervisor` started, when it started one."""

    async def run_service(container: Container) -> int:
        service: WorkerService = await container.service()  # type: ignore[misc]
        http, probe = await container.http(), await container.probe()  # type: ignore[misc]
        relay_port = 0 if supervisor else settings.WORKER_VLLM_LOG_PORT  # launched: vLLM's output is the worker's
        async with (
            worker_endpoint(
                settings.WORKER_HTTP_HOST, settings.WORKER_HTTP_PORT, container.metrics().text, service.readiness
            ),
            shipping(
                settings, http, probe, container.gpu(), container.masker(), service.current_job, container.metrics()
            ),
            relayed_vllm_log(relay_port, service.vllm.relayed, service.vllm.exited),
        ):
            return await (supervisor.run(service) if supervisor else service.run())

    return await in_container(settings, run_service)


async def report_bad_host(settings: Settings, failure: Failure) -> None:
    """The `fatal` heartbeat of a failed GPU check, so the API blocks the host."""

    async def send(container: Container) -> int:
        heartbeats = await container.heartbeats()  # type: ignore[misc]
        await heartbeats.send(failure.status, failure.message)
        return 0

    await in_container(settings, send)


async def check_gpu_reporting(settings: Settings) -> int:
    """`check-gpu` with the worker's settings: a failure also sends the `fatal` heartbeat."""

    async def check(container: Container) -> int:
        heartbeats = await container.heartbeats()  # type: ignore[misc]
        return int(await container.gpu_check().verify(heartbeats) or 0)

    return await in_container(settings, check)


async def check_vllm(settings: VllmSettings, timeout: float, echo: Callable[[str], None]) -> int:
    async def diagnose(container: Container) -> int:
        diagnostics: Diagnostics = await container.diagnostics(timeout=timeout)  # type: ignore[misc]
        return await diagnostics.report(echo)

    return await in_container(settings, diagnose)


async def serve_dev(settings: VllmSettings, host: str, port: int, http_port: int, timeout: float) -> int:
    from adapters.dev.openai_front import OpenAIFront  # the REST front: only `dev` loads it

    async def serve(container: Container) -> int:
        probe: HttpVllmProbe = await container.probe()  # type: ignore[misc]
        return await OpenAIFront(host, port, host, http_port, probe.models, timeout).serve_until_signal()

    return await in_container(settings, serve)


async def in_container(settings: VllmSettings, use: Callable[[Container], Awaitable[int]]) -> int:
    """Runs `use`, then closes the clients it opened (each opens on first use: check-vllm needs only vLLM's)."""
    container = Container(settings=settings)
    try:
        return await use(container)
    finally:
        await container.shutdown_resources()  # type: ignore[misc]

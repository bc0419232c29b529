"""The composition root and the `worker-vllm` command line."""

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from dependency_injector import containers, providers
from pydantic_settings import BaseSettings

from adapters.casola_api.client import http_client
from adapters.casola_api.heartbeats import HttpHeartbeats
from adapters.dev.local_queue import LocalQueue
from adapters.dev.one_shot_job import chat_test_job, one_shot_job
from adapters.host.beside_the_worker import relayed_vllm_log, shipping, worker_endpoint
from adapters.host.event_loop import run_async
from adapters.host.nvidia_smi import NvidiaSmi
from adapters.operator.log_format import configure_logging
from adapters.operator.prometheus_metrics import PrometheusMetrics
from adapters.payload_urls.client import payload_client
from adapters.payload_urls.store import HttpPayloadStore
from adapters.queue.websocket import WebSocketQueue
from adapters.vllm.client import vllm_client
from adapters.vllm.inference import HttpInference
from adapters.vllm.launcher import SubprocessLauncher
from adapters.vllm.official_client import openai_client, openai_inference
from adapters.vllm.probe import HttpVllmProbe
from application.diagnostics import Diagnostics
from application.gpu_check import GpuCheck
from application.job_runner import JobRunner
from application.served_models import ServedModels
from application.served_surface import ServedSurface
from application.service import WorkerService
from application.settings import (
    ConfigurationError,
    Settings,
    VllmSettings,
    load_gpu_settings,
    load_settings,
    load_vllm_settings,
    worker_version,
)
from application.supervisor import VllmSupervisor
from application.timings import Timings
from domain.payloads import PayloadLimits
from domain.untrusted import Masker

log = logging.getLogger("worker")
EXIT_CONFIGURATION = 78
T = TypeVar("T", bound=BaseSettings)


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
    heartbeats = providers.Singleton(
        HttpHeartbeats,
        http,
        given.CASOLA_API_URL,
        given.api_token,
        given.CASOLA_INSTANCE_ID,
        given.CASOLA_QUEUE_ID,
        masker,
        metrics,
        surface.provided.heartbeat_fields,
    )
    payload_http = providers.Resource(payload_client, given.payload_policy)
    payloads = providers.Singleton(HttpPayloadStore, payload_http, given.CASOLA_PAYLOAD_TIMEOUT, metrics=metrics)
    models = providers.Singleton(ServedModels, probe, given.VLLM_SERVED_MODEL_NAME)
    limits = providers.Factory(PayloadLimits, given.CASOLA_MAX_CHOICES, given.CASOLA_MAX_AUDIO_BYTES)
    runner = providers.Singleton(
        JobRunner, inference, payloads, models, given.CASOLA_JOB_TIMEOUT, limits, metrics=metrics, surface=surface
    )
    timings = providers.Object(Timings())
    service = providers.Singleton(
        WorkerService, settings, queue, heartbeats, probe, runner, timings, metrics=metrics, masker=masker
    )
    gpu = providers.Singleton(NvidiaSmi)
    gpu_check = providers.Factory(GpuCheck, gpu, given.gpu_expectations)
    launcher = providers.Singleton(SubprocessLauncher, given.vllm_environment)
    supervisor = providers.Singleton(VllmSupervisor, launcher, given.vllm_command, given.VLLM_STOP_TIMEOUT)


app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command()
def run(
    launch_vllm: Annotated[bool, typer.Option("--launch-vllm", help="Start and supervise vLLM too.")] = False,
    log_format: Annotated[str, typer.Option(help="text or json")] = "text",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the worker: wait for vLLM, connect to the queue, run jobs until SIGTERM."""
    configure_logging(log_format, log_level)
    settings = settings_or_exit(load_settings)
    log.info("worker-vllm %s starting", worker_version())
    log.info("configuration: %s", json.dumps(settings.masked(), default=str))
    raise typer.Exit(run_async(run_worker(settings, launch_vllm)))


async def run_worker(settings: Settings, launch_vllm: bool) -> int:
    async def run_service(container: Container) -> int:
        if launch_vllm:  # the GPU first: a bad host exits before vLLM loads a model on it
            heartbeats = await container.heartbeats()  # type: ignore[misc]
            if (code := await container.gpu_check().verify(heartbeats)) is not None:
                return int(code)
        service: WorkerService = await container.service()  # type: ignore[misc]
        http, probe = await container.http(), await container.probe()  # type: ignore[misc]
        relay_port = 0 if launch_vllm else settings.WORKER_VLLM_LOG_PORT  # launched: vLLM's output is the worker's
        async with (
            worker_endpoint(
                settings.WORKER_HTTP_HOST, settings.WORKER_HTTP_PORT, container.metrics().text, service.readiness
            ),
            shipping(
                settings, http, probe, container.gpu(), container.masker(), service.current_job, container.metrics()
            ),
            relayed_vllm_log(relay_port, service.vllm.relayed, service.vllm.exited),
        ):
            return await (container.supervisor().run(service) if launch_vllm else service.run())

    return await in_container(settings, run_service)


async def in_container(settings: VllmSettings, use: Callable[[Container], Awaitable[int]]) -> int:
    """Runs `use`, then closes the clients it opened (each opens on first use: check-vllm needs only vLLM's)."""
    container = Container(settings=settings)
    try:
        return await use(container)
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


@app.command("check-gpu")
def check_gpu() -> None:
    """The GPU checks that run before vLLM starts: exit 0 for a healthy host (or no nvidia-smi), else 2."""
    configure_logging()
    raise typer.Exit(run_async(gpu_check_alone()))


async def gpu_check_alone() -> int:
    """With the worker's settings, a failure also sends the `fatal` heartbeat; without them, the checks only."""
    try:
        settings = load_settings()
    except ConfigurationError:
        expected = settings_or_exit(load_gpu_settings).gpu_expectations
        return await GpuCheck(NvidiaSmi(), expected).verify(None) or 0

    async def check(container: Container) -> int:
        heartbeats = await container.heartbeats()  # type: ignore[misc]
        return int(await container.gpu_check().verify(heartbeats) or 0)

    return await in_container(settings, check)


@app.command("launch-vllm")
def launch_vllm(dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command only.")] = False) -> None:
    """Replace this process with `vllm serve`, built from the same variables as `run --launch-vllm`."""
    configure_logging()
    settings = settings_or_exit(load_settings)
    argv, environment = settings.vllm_command, settings.vllm_environment
    if dry_run:
        typer.echo(json.dumps(argv))
        return
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], argv, environment)
    except OSError as error:
        log.error("cannot start vLLM with %r: %s", argv[0], error)
        raise typer.Exit(127) from None


@app.command("check-vllm")
def check_vllm(timeout: Annotated[float, typer.Option(help="Seconds for the test completion.")] = 60.0) -> None:
    """Check the vLLM at VLLM_HOST:VLLM_PORT: /health, /v1/models, one tiny chat completion, its load in /metrics."""
    configure_logging(level="warning")

    async def diagnose(container: Container) -> int:
        diagnostics: Diagnostics = await container.diagnostics(timeout=timeout)  # type: ignore[misc]
        return await diagnostics.report(typer.echo)

    raise typer.Exit(run_async(in_container(settings_or_exit(load_vllm_settings), diagnose)))


@app.command("send-test-job")
def send_test_job(
    message: Annotated[list[str] | None, typer.Option("--message", "-m", help="A user message (repeatable).")] = None,
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: int = 64,
    temperature: float = 0.7,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker and its result.")] = 300.0,
) -> None:
    """Act as a one-shot local queue: wait for a worker, push one chat job, print the result."""
    configure_logging(level="warning")
    job = chat_test_job(message or ["What is the capital of France?"], system, max_tokens, temperature)
    raise typer.Exit(
        run_async(one_shot_job(LocalQueue(host, port), job, timeout, lambda text: typer.echo(text, err=True)))
    )


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Address of the queue socket and the REST front.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The queue socket's port: point CASOLA_WS_URL at it.")] = 8765,
    http_port: Annotated[int, typer.Option(help="The OpenAI-compatible REST front's port.")] = 8090,
    timeout: Annotated[float, typer.Option(help="Seconds a request waits for its job's answer.")] = 600.0,
) -> None:
    """A local queue with an OpenAI-compatible REST front: workers connect to it, any OpenAI client calls it."""
    configure_logging(level="info")
    raise typer.Exit(run_async(serve_dev(settings_or_exit(load_vllm_settings), host, port, http_port, timeout)))


async def serve_dev(settings: VllmSettings, host: str, port: int, http_port: int, timeout: float) -> int:
    from adapters.dev.openai_front import OpenAIFront  # the REST front: only `dev` loads it

    async def serve(container: Container) -> int:
        probe: HttpVllmProbe = await container.probe()  # type: ignore[misc]
        return await OpenAIFront(host, port, host, http_port, probe.models, timeout).serve_until_signal()

    return await in_container(settings, serve)


def settings_or_exit(load: Callable[[], T]) -> T:
    try:
        return load()
    except ConfigurationError as error:
        log.error("configuration error: %s", error)
        raise typer.Exit(EXIT_CONFIGURATION) from None


if __name__ == "__main__":
    app()

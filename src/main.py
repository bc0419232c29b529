"""The composition root and the `worker-vllm` command line."""

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import httpx
import openai
import typer
from dependency_injector import containers, providers

from adapters.http_heartbeats import HttpHeartbeats
from adapters.http_payloads import HttpPayloadStore
from adapters.local_queue import LocalQueue, chat_job
from adapters.log_format import configure_logging
from adapters.openai_inference import OpenAIInference
from adapters.subprocess_launcher import SubprocessLauncher
from adapters.websocket_queue import WebSocketQueue
from application.ports import InferenceRejected, InferenceUnavailable
from application.service import Failure, Timings, WorkerService
from application.settings import ConfigurationError, Settings, load_settings
from domain.jobs import ChatPayload
from domain.vllm import classify_log_line, serve_command

log = logging.getLogger("worker")
vllm_log = logging.getLogger("vllm")

EXIT_CONFIGURATION = 78
LOAD_GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting")


def worker_version() -> str:
    try:
        return version("worker-vllm")
    except PackageNotFoundError:
        return "unknown"


async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
        yield client


async def openai_client(base_url: str, api_key: str | None, job_timeout: float) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=f"{base_url}/v1",
        api_key=api_key or "EMPTY",
        max_retries=0,
        timeout=openai.Timeout(job_timeout + 5.0, connect=5.0),
    )
    try:
        yield client
    finally:
        await client.close()


class Container(containers.DeclarativeContainer):
    """Wires the ports to their adapters; only this module and tests touch it."""

    settings = providers.Dependency(instance_of=Settings)

    http = providers.Resource(http_client)
    openai = providers.Resource(
        openai_client,
        base_url=settings.provided.vllm_base_url,
        api_key=settings.provided.vllm_api_key,
        job_timeout=settings.provided.CASOLA_JOB_TIMEOUT,
    )
    queue = providers.Singleton(WebSocketQueue, url=settings.provided.queue_url, token=settings.provided.api_token)
    heartbeats = providers.Singleton(
        HttpHeartbeats,
        client=http,
        api_url=settings.provided.CASOLA_API_URL,
        token=settings.provided.api_token,
        instance_id=settings.provided.CASOLA_INSTANCE_ID,
        queue_id=settings.provided.CASOLA_QUEUE_ID,
    )
    inference = providers.Singleton(
        OpenAIInference,
        client=openai,
        http=http,
        base_url=settings.provided.vllm_base_url,
        served_model=settings.provided.VLLM_SERVED_MODEL_NAME,
    )
    payloads = providers.Singleton(HttpPayloadStore, client=http)
    launcher = providers.Singleton(SubprocessLauncher)
    timings = providers.Object(Timings())
    service = providers.Singleton(
        WorkerService,
        settings=settings,
        timings=timings,
        queue=queue,
        heartbeats=heartbeats,
        inference=inference,
        payloads=payloads,
    )


app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, help="A Casola queue worker for vLLM."
)

LogFormat = Annotated[str, typer.Option("--log-format", help="text or json")]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")]


@app.command()
def run(
    launch_vllm: Annotated[bool, typer.Option("--launch-vllm", help="Start and supervise vLLM too.")] = False,
    log_format: LogFormat = "text",
    log_level: LogLevel = "info",
) -> None:
    """Run the worker: wait for vLLM, connect to the queue, run jobs until SIGTERM."""
    configure_logging(log_format, log_level)
    settings = settings_or_exit()
    log.info("worker-vllm %s starting", worker_version())
    log.info("configuration: %s", json.dumps(settings.masked(), default=str))
    raise typer.Exit(asyncio.run(run_worker(settings, launch_vllm)))


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as error:
        log.error("configuration error: %s", error)
        raise typer.Exit(EXIT_CONFIGURATION) from None


async def run_worker(settings: Settings, launch_vllm: bool) -> int:
    container = Container(settings=settings)
    await container.init_resources()  # type: ignore[misc]
    try:
        service: WorkerService = await container.service()  # type: ignore[misc]
        if not launch_vllm:
            return await service.run()
        return await run_with_vllm(service, container.launcher(), settings)
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def run_with_vllm(service: WorkerService, launcher: SubprocessLauncher, settings: Settings) -> int:
    def on_line(line: str) -> None:
        vllm_log.info("%s", line)
        service.on_vllm_log(classify_log_line(line), line)

    argv = vllm_command(settings)
    try:
        process = await launcher.launch(argv, on_line)
    except OSError as error:
        service.fail(Failure("error", f"cannot start vLLM with {argv[0]!r}: {error.strerror or error}"))
        return await service.run()

    async def watch() -> None:
        service.on_vllm_exit(await process.wait())

    watcher = asyncio.create_task(watch())
    try:
        return await service.run()
    finally:
        watcher.cancel()
        code = await process.stop(settings.VLLM_STOP_TIMEOUT)
        log.info("vLLM stopped (exit code %d)", code)


def vllm_command(settings: Settings) -> list[str]:
    return serve_command(
        settings.VLLM_SERVE_COMMAND,
        settings.VLLM_MODEL,
        settings.VLLM_HOST,
        settings.VLLM_PORT,
        settings.VLLM_SERVED_MODEL_NAME,
        settings.VLLM_EXTRA_ARGS,
    )


@app.command("launch-vllm")
def launch_vllm_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command instead of running it.")] = False,
) -> None:
    """Replace this process with `vllm serve`, built from the same variables as `run --launch-vllm`."""
    configure_logging()
    settings = settings_or_exit()
    argv = vllm_command(settings)
    if dry_run:
        typer.echo(json.dumps(argv))
        return
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as error:
        log.error("cannot start vLLM with %r: %s", argv[0], error)
        raise typer.Exit(127) from None


@app.command("check-vllm")
def check_vllm(
    host: Annotated[str, typer.Option(envvar="VLLM_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="VLLM_PORT")] = 8000,
    model: Annotated[str, typer.Option(envvar="VLLM_SERVED_MODEL_NAME", help="The served model name.")] = "default",
    timeout: Annotated[float, typer.Option(help="Seconds for the test completion.")] = 60.0,
) -> None:
    """Check a running vLLM: /health, /v1/models, one tiny chat completion, and its load in /metrics."""
    configure_logging(level="warning")
    passed = asyncio.run(check(f"http://{host}:{port}", model, timeout))
    raise typer.Exit(0 if passed else 1)


async def check(base_url: str, model: str, timeout: float) -> bool:
    typer.echo(f"vLLM at {base_url}, served model {model!r}")
    async with httpx.AsyncClient() as http:
        async for client in openai_client(base_url, os.environ.get("VLLM_API_KEY"), timeout):
            inference = OpenAIInference(client, http, base_url, model)
            results = [await step() for step in check_steps(inference, model)]
    passed = all(results)
    typer.echo("all checks passed" if passed else "some checks failed")
    return passed


def check_steps(inference: OpenAIInference, model: str) -> list[Any]:
    async def health() -> bool:
        return report("health", await inference.health(), "GET /health")

    async def models() -> bool:
        try:
            served = await inference.models()
        except (InferenceUnavailable, InferenceRejected) as error:
            return report("models", False, str(error))
        return report("models", model in served, f"serves {served}")

    async def chat() -> bool:
        payload = ChatPayload.model_validate({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})
        started = time.monotonic()
        try:
            completion = await inference.chat(payload)
        except (InferenceUnavailable, InferenceRejected) as error:
            return report("chat", False, str(error))
        choice = completion["choices"][0]
        usage = completion.get("usage", {})
        detail = (
            f"{(time.monotonic() - started) * 1000:.0f} ms, finish {choice.get('finish_reason')}, "
            f"{usage.get('prompt_tokens')}+{usage.get('completion_tokens')} tokens"
        )
        return report("chat", True, detail)

    async def load() -> bool:
        try:
            text = await inference.metrics()
        except (InferenceUnavailable, InferenceRejected) as error:
            return report("metrics", False, str(error))
        gauges = [line for line in text.splitlines() if line.startswith(LOAD_GAUGES)]
        return report("metrics", bool(gauges), "; ".join(gauges) or "no vllm:num_requests_* gauges")

    return [health, models, chat, load]


def report(step: str, passed: bool, detail: str) -> bool:
    typer.echo(f"  {step:<8}{'ok' if passed else 'FAILED':<8}{detail}")
    return passed


@app.command("send-test-job")
def send_test_job(
    message: Annotated[list[str], typer.Option("--message", "-m", help="A user message (repeatable).")] = [  # noqa: B006
        "What is the capital of France?"
    ],
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int, typer.Option()] = 64,
    temperature: Annotated[float, typer.Option()] = 0.7,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker and its result.")] = 300.0,
) -> None:
    """Act as a one-shot local queue: wait for a worker, push one chat job, print the result."""
    configure_logging(level="warning")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text} for text in message
    ]
    job = chat_job("test-job-1", messages, max_tokens=max_tokens, temperature=temperature)
    raise typer.Exit(asyncio.run(one_test_job(host, port, job, timeout)))


async def one_test_job(host: str, port: int, job: dict[str, Any], timeout: float) -> int:
    queue = LocalQueue(host, port)
    try:
        await queue.start()
    except OSError as error:
        note(f"cannot listen on {host}:{port}: {error.strerror or error}")
        return 1
    async with queue:
        note(f"listening on {queue.url}: start a worker with CASOLA_WS_URL={queue.url}")
        try:
            register = await queue.wait_for_type("register", timeout=timeout)
            note(f"worker {register.get('worker_id')} registered (capacity {register.get('capacity')}); sending job")
            await queue.push(job)
            answer = await queue.wait_for(
                lambda frame: frame.get("type") in ("job_result", "job_error") and frame.get("job_id") == job["job_id"],
                timeout=timeout,
            )
        except TimeoutError:
            note(f"no answer within {timeout:.0f} s")
            return 1
    if answer["type"] == "job_error":
        note(f"job failed: {answer.get('error')}")
        return 1
    print_result(answer["result"])
    return 0


def print_result(result: dict[str, Any]) -> None:
    completion = result.get("completion", {})
    choice = (completion.get("choices") or [{}])[0]
    usage = completion.get("usage", {})
    note(f"completion: {choice.get('message', {}).get('content')!r}")
    note(
        f"finish reason: {choice.get('finish_reason')}; tokens: prompt {usage.get('prompt_tokens')}, "
        f"completion {usage.get('completion_tokens')}, total {usage.get('total_tokens')}"
    )
    typer.echo(json.dumps(result, indent=2))


def note(text: str) -> None:
    typer.echo(text, err=True)


if __name__ == "__main__":
    app()

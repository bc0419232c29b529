"""The `worker-vllm` command line. It imports what a command needs when it runs: `run --launch-vllm` and
`launch-vllm` start vLLM before the worker's own heavy imports (the composition root, `wiring`), so vLLM's start, the
longest wait of all, begins first."""

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from pydantic_settings import BaseSettings

from adapters.host.event_loop import run_async
from adapters.host.nvidia_smi import NvidiaSmi
from adapters.operator.log_format import configure_logging
from adapters.vllm.launcher import SubprocessLauncher
from application.gpu_check import GpuCheck
from application.settings import (
    ConfigurationError,
    Settings,
    load_gpu_settings,
    load_settings,
    load_vllm_settings,
    worker_version,
)
from application.supervisor import VllmSupervisor
from domain import rules

log = logging.getLogger("worker")
EXIT_CONFIGURATION = 78
T = TypeVar("T", bound=BaseSettings)


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
    """With `launch_vllm`: the GPU checked (a bad host exits before vLLM loads a model on it), vLLM started, and only
    then the worker's own imports and set-up, while vLLM imports its own."""
    supervisor = None
    if launch_vllm:
        if (failure := await GpuCheck(NvidiaSmi(), settings.gpu_expectations).failure()) is not None:
            from wiring import report_bad_host

            await report_bad_host(settings, failure)
            return rules.exit_code(failure)
        supervisor = VllmSupervisor(SubprocessLauncher(settings.vllm_environment), settings.vllm_command,
                                    settings.VLLM_STOP_TIMEOUT)  # fmt: skip
        await supervisor.start()
    from wiring import run_worker as run_beside

    return await run_beside(settings, supervisor)


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
    from wiring import check_gpu_reporting

    return await check_gpu_reporting(settings)


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

    from wiring import check_vllm as diagnose

    raise typer.Exit(run_async(diagnose(settings_or_exit(load_vllm_settings), timeout, typer.echo)))


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
    from adapters.dev.local_queue import LocalQueue
    from adapters.dev.one_shot_job import chat_test_job, one_shot_job

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
    from wiring import serve_dev

    raise typer.Exit(run_async(serve_dev(settings_or_exit(load_vllm_settings), host, port, http_port, timeout)))


def settings_or_exit(load: Callable[[], T]) -> T:
    try:
        return load()
    except ConfigurationError as error:
        log.error("configuration error: %s", error)
        raise typer.Exit(EXIT_CONFIGURATION) from None


if __name__ == "__main__":
    app()

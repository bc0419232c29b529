"""The container tier: the real image (`make image`), run by testcontainers on this machine's Docker daemon.

Skipped (or, with WORKER_IMAGE_REQUIRE=1 as in CI, failed) when no daemon answers. Containers use the host's
network, so the fake queue, the fake API and vLLM's port all stay on 127.0.0.1.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.dev.local_queue import LocalQueue
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import ROOT, TOKEN, free_port
from tests.integration.real_vllm import TINY_MODEL, VLLM_ARGS, require_real_vllm

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled here

from docker.models.containers import Container
from testcontainers.core.container import DockerContainer

STARTUP = 400.0  # vLLM compiles its CPU kernels at start: about a minute here, more on a busy machine
SECOND = 1_000_000_000  # Docker counts health-check times in nanoseconds
QUICK_HEALTHCHECK = {"interval": SECOND, "timeout": 4 * SECOND, "retries": 2, "start_period": 0}


def require_image() -> str:
    """Builds `worker-vllm:cpu` (the base once, then the worker's layers) and returns its tag."""
    require_real_vllm()  # the tiny model the containers mount
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh")], capture_output=True, text=True)
    if done.returncode == 0:
        return done.stdout.strip().splitlines()[-1]
    message = f"the container tier needs a Docker daemon and the image:\n{done.stderr[-3000:]}"
    if os.environ.get("WORKER_IMAGE_REQUIRE") == "1":
        pytest.fail(message)
    pytest.skip(message)


def readable_model(directory: Path) -> Path:
    """A copy of the tiny model that any user can read (safetensors files may be written 0600)."""
    copy = directory / "model"
    shutil.copytree(TINY_MODEL, copy)
    for path in (copy, *copy.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copy


def environment(queue: LocalQueue, api: FakeApi, **overrides: Any) -> dict[str, str]:
    """The worker's and vLLM's variables for a container on the host's network, every port a free one."""
    variables = {
        "CASOLA_WS_URL": queue.url,
        "CASOLA_CONFIG_ID": "image-test",
        "CASOLA_INSTANCE_ID": "image-worker",
        "CASOLA_API_URL": api.url,
        "CASOLA_API_TOKEN": TOKEN,
        "CASOLA_HEARTBEAT_INTERVAL": "1",
        "VLLM_MODEL": "/model",
        "VLLM_PORT": free_port(),
        "VLLM_EXTRA_ARGS": VLLM_ARGS,
        # vLLM on core 0, every process and thread of it (taskset, inherited), its CPU kernels too; the worker
        # and this test's queue and API on the host free to run on core 1, as beside a GPU. An engine on both
        # cores held the worker's event loop back for seconds, and later the host's queue and API for 15 s (a
        # heartbeat timed out, the queue socket's pings went unanswered), so a running job was seen only as it
        # ended.
        "VLLM_SERVE_COMMAND": "taskset -c 0 vllm",
        "VLLM_CPU_OMP_THREADS_BIND": "0",
        "VLLM_STARTUP_TIMEOUT": STARTUP,
        "WORKER_HTTP_PORT": free_port(),
        "WORKER_VLLM_LOG_PORT": free_port(),
    }
    variables.update(overrides)
    return {name: str(value) for name, value in variables.items()}


@dataclass
class RunningContainer:
    """One container of the image, and the figures a test measured on it."""

    testcontainer: DockerContainer
    started: float = field(default_factory=time.monotonic)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def docker(self) -> Container:
        return self.testcontainer.get_wrapped_container()

    def logs(self) -> str:
        return self.docker.logs().decode(errors="replace")

    def run(self, *command: str) -> tuple[int, str]:
        """A command inside the running container."""
        code, output = self.docker.exec_run(list(command))
        return code, output.decode(errors="replace")

    def health(self) -> str:
        self.docker.reload()
        return str(self.docker.attrs["State"]["Health"]["Status"])

    def wait_for_health(self, status: str, timeout: float) -> float:
        """Seconds until Docker's health status is `status`."""
        deadline = time.monotonic() + timeout
        begun = time.monotonic()
        while (now := self.health()) != status:
            assert time.monotonic() < deadline, f"health still {now!r} after {timeout} s, not {status!r}"
            time.sleep(0.2)
        return time.monotonic() - begun

    def stop(self, timeout: int) -> int:
        """`docker stop` (SIGTERM, then SIGKILL after `timeout`), then the exit code."""
        self.docker.stop(timeout=timeout)
        return self.exit_code(10)

    def exit_code(self, timeout: float) -> int:
        """The container's exit code, once it has exited by itself within `timeout` seconds."""
        return int(self.docker.wait(timeout=timeout)["StatusCode"])


@contextmanager
def worker_container(
    image: str,
    model: Path,
    variables: dict[str, str],
    cache_volume: str | None = None,
    show_log: bool = True,
    model_at: str = "/model",
    read_only: dict[Path, str] | None = None,
    **options: Any,
) -> Iterator[RunningContainer]:
    """The image run as the README says (host network, room in /dev/shm, the model read-only, and the named
    `cache_volume` at /cache when given), `options` for Docker's run (`user`, `shm_size`, ...); removed after."""
    kwargs = {"network_mode": "host", "shm_size": "1g", "healthcheck": QUICK_HEALTHCHECK, **options}
    testcontainer = (
        DockerContainer(image)
        .with_kwargs(**kwargs)
        .with_volume_mapping(str(model), model_at, "ro")
        .with_envs(**variables)
    )
    for host, inside in (read_only or {}).items():  # more folders, read-only (`model_at` for the model)
        testcontainer.with_volume_mapping(str(host), inside, "ro")
    if cache_volume is not None:
        testcontainer.with_volume_mapping(cache_volume, "/cache", "rw")
    testcontainer.start()
    running = RunningContainer(testcontainer)
    try:
        yield running
    finally:
        if show_log:
            print(f"\n--- {image} container log (last 4000 characters) ---\n{running.logs()[-4000:]}")
        testcontainer.stop()

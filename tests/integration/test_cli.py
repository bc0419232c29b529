"""The `worker-vllm` command line as real subprocesses: run, SIGTERM, --launch-vllm, send-test-job, check-vllm."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue, chat_job
from tests.conftest import eventually
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import (
    TOKEN,
    alive,
    chat,
    cli,
    cli_environment,
    free_port,
    spawn,
    terminate,
    worker_environment,
)

pytestmark = pytest.mark.slow


async def test_sigterm_mid_job_drains_finishes_the_job_and_exits_zero(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    fake_vllm.behaviour.delay = 1.0
    environment = worker_environment(queue, fake_vllm, fake_api, CASOLA_SHUTDOWN_GRACE_PERIOD=5)
    worker = spawn(cli("run", "--log-format", "json"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        await queue.push(chat_job("j1", chat()))
        await eventually(lambda: fake_vllm.record.running == 1, what="request running")
        worker.send_signal(signal.SIGTERM)
        await queue.wait_for_type("drain")
        result = await queue.wait_for_type("job_result", "j1")
        code = await asyncio.to_thread(worker.wait, 15)
    finally:
        terminate(worker)
    assert code == 0
    assert result["result"]["status"] == "success"
    assert queue.received.index(queue.frames_of("drain")[0]) < queue.received.index(result)
    assert fake_api.statuses()[0] == "starting" and fake_api.statuses()[-1] == "stopping"
    logs = worker.stderr.read() if worker.stderr else ""
    assert TOKEN not in logs
    assert '"message": "worker stopped"' in logs


async def test_a_running_heartbeat_on_its_way_is_answered_before_the_last_one_is_sent(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    """Two heartbeats in flight at once may reach the API in either order: the worker's `stopping` waits for the
    `running` the API is still taking in, so `stopping` is the last status the API records."""
    worker = spawn(cli("run"), worker_environment(queue, fake_vllm, fake_api))
    try:
        await queue.wait_for_type("register", timeout=20)
        fake_api.slow_running = 1.0
        fake_api.holding.clear()
        assert await asyncio.to_thread(fake_api.holding.wait, 10), "no running heartbeat reached the API"
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 15)
        assert await asyncio.to_thread(fake_api.held.wait, 10), "the slow heartbeat was never recorded"
    finally:
        terminate(worker)
    assert code == 0
    assert fake_api.statuses()[-1] == "stopping", fake_api.statuses()[-3:]


async def test_launch_vllm_supervises_it_and_leaves_no_process_behind(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    fake_vllm.stop()  # the worker starts its own
    port = free_port()
    serve = f"{sys.executable} -m testbed.fake_vllm"
    environment = worker_environment(
        queue, fake_vllm, fake_api, VLLM_PORT=port, VLLM_SERVE_COMMAND=serve, VLLM_STOP_TIMEOUT=1,
        VLLM_EXTRA_ARGS=f"--spawn-child --ignore-sigterm --pid-file {pid_file}",
    )  # fmt: skip
    worker = spawn(cli("run", "--launch-vllm"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        await queue.push(chat_job("j1", chat()))
        await queue.wait_for_type("job_result", "j1")
        pids = [int(pid) for pid in pid_file.read_text().split()]
        assert all(alive(pid) for pid in pids)
        assert os.getpgid(pids[0]) == pids[0] != os.getpgid(worker.pid)  # a process group of its own...
        assert os.getsid(pids[0]) == os.getsid(worker.pid)  # ...in the worker's session (autogroup scheduling)
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
    finally:
        terminate(worker)
    logs = worker.stderr.read() if worker.stderr else ""
    assert code == 0, logs
    await eventually(lambda: not any(alive(pid) for pid in pids), what="vLLM and its child gone")
    assert "vllm: fake vLLM serving tiny as default" in logs
    assert "ignored SIGTERM" in logs


async def test_a_fatal_vllm_log_line_stops_the_worker_with_a_fatal_heartbeat(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    fake_vllm.stop()
    serve = f"{sys.executable} -m testbed.fake_vllm"
    line = "RuntimeError: CUDA driver version is insufficient for CUDA runtime version"
    environment = worker_environment(
        queue, fake_vllm, fake_api, VLLM_PORT=free_port(), VLLM_SERVE_COMMAND=serve,
        VLLM_EXTRA_ARGS=f"--startup-delay 30 --say '{line}'",
    )  # fmt: skip
    worker = spawn(cli("run", "--launch-vllm"), environment)
    try:
        code = await asyncio.to_thread(worker.wait, 60)
    finally:
        terminate(worker)
    assert code == 2
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "fatal" and "CUDA driver version is insufficient" in beat["error_message"]


async def test_vllm_exiting_fails_the_worker_with_an_error_heartbeat(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    fake_vllm.stop()
    serve = f"{sys.executable} -m testbed.fake_vllm"
    environment = worker_environment(
        queue, fake_vllm, fake_api, VLLM_PORT=free_port(), VLLM_SERVE_COMMAND=serve,
        VLLM_EXTRA_ARGS="--exit-after 2 --delay 30",
    )  # fmt: skip
    worker = spawn(cli("run", "--launch-vllm"), environment)
    try:
        await queue.wait_for_type("register", timeout=20)
        await queue.push(chat_job("j1", chat()))
        error = await queue.wait_for_type("job_error", "j1", timeout=20)
        code = await asyncio.to_thread(worker.wait, 30)
    finally:
        terminate(worker)
    assert code == 1
    assert error["error"].startswith("vllm_unavailable:")
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "error" and "vLLM exited with code 3" in beat["error_message"]


async def test_a_vllm_command_that_cannot_start_is_reported(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    environment = worker_environment(queue, fake_vllm, fake_api, VLLM_SERVE_COMMAND="/nonexistent/vllm")
    worker = spawn(cli("run", "--launch-vllm"), environment)
    try:
        code = await asyncio.to_thread(worker.wait, 30)
    finally:
        terminate(worker)
    assert code == 1
    assert fake_api.statuses() == ["starting", "error"]
    assert (
        "cannot start vLLM with '/nonexistent/vllm': No such file or directory"
        in fake_api.heartbeats[-1]["error_message"]
    )


def test_a_missing_variable_stops_the_worker_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        cli("run"), env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 78
    assert "CASOLA_WS_URL: required, not set" in done.stderr
    assert "VLLM_MODEL: required, not set" in done.stderr


def test_a_malformed_allowed_host_stops_the_worker_naming_the_entry() -> None:
    environment = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
        "CASOLA_WS_URL": "ws://127.0.0.1:1", "CASOLA_CONFIG_ID": "c", "VLLM_MODEL": "m",
        "CASOLA_PAYLOAD_ALLOWED_HOSTS": "files.internal, host:80:81",
    }  # fmt: skip
    done = subprocess.run(cli("run"), env=environment, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 78
    assert "CASOLA_PAYLOAD_ALLOWED_HOSTS='files.internal, host:80:81': 'host:80:81' is not host[:port]" in done.stderr


async def test_send_test_job_against_a_running_worker(fake_vllm: FakeVllm, fake_api: FakeApi) -> None:
    port = free_port()
    sender = spawn(cli("send-test-job", "--port", str(port), "-m", "Hello there", "--max-tokens", "4"), {})
    queue = LocalQueue(port=port)
    environment = worker_environment(queue, fake_vllm, fake_api)
    worker = spawn(cli("run"), environment)
    try:
        out, err = await asyncio.to_thread(sender.communicate, timeout=60)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
    finally:
        terminate(sender)
        terminate(worker)
    assert sender.returncode == 0, err
    assert "finish reason: length; tokens: prompt 6, completion 4, total 10" in err
    assert '"status": "success"' in out
    assert fake_vllm.record.requests[0]["messages"] == [{"role": "user", "content": "Hello there"}]


def test_check_vllm_reports_each_step(fake_vllm: FakeVllm) -> None:
    environment = {"VLLM_HOST": "127.0.0.1", "VLLM_PORT": str(fake_vllm.port)}
    done = subprocess.run(
        cli("check-vllm"), env=cli_environment(environment), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "health  ok" in done.stdout and "models  ok" in done.stdout and "chat    ok" in done.stdout
    assert 'metrics ok      vllm:num_requests_running{model_name="default"} 0' in done.stdout
    fake_vllm.behaviour.status = 500
    failed = subprocess.run(
        cli("check-vllm"), env=cli_environment(environment), capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1
    assert "chat    FAILED  vLLM answered HTTP 500" in failed.stdout


def test_launch_vllm_builds_the_serve_command_once() -> None:
    environment = {
        "CASOLA_WS_URL": "wss://q",
        "CASOLA_CONFIG_ID": "c",
        "VLLM_MODEL": "org/m",
        "VLLM_EXTRA_ARGS": "--x 'a b'",
    }
    done = subprocess.run(
        cli("launch-vllm", "--dry-run"), env=cli_environment(environment), capture_output=True, text=True
    )
    assert done.stdout.strip() == (
        '["vllm", "serve", "org/m", "--host", "127.0.0.1", "--port", "8000", '
        '"--served-model-name", "default", "--x", "a b"]'
    )


HEAVY = ("wiring", "dependency_injector", "aiohttp", "openai", "websockets", "httpx")


def test_the_command_line_alone_imports_none_of_the_workers_heavy_modules() -> None:
    """`launch-vllm` (the container's) replaces itself with vLLM after these imports: the fewer, the sooner."""
    check = f"import main, sys; print(sorted(name for name in {HEAVY!r} if name in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], env=cli_environment({}), capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


async def test_run_launch_vllm_starts_vllm_before_the_workers_heavy_imports(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    """The stand-in for vLLM reads, as it starts, which of the worker's libraries its parent has loaded."""
    probe = "echo loaded: $(grep -c -e dependency_injector -e aiohttp /proc/$PPID/maps); exit 3"
    environment = worker_environment(queue, fake_vllm, fake_api, VLLM_SERVE_COMMAND=f'sh -c "{probe}"')
    worker = spawn(cli("run", "--launch-vllm"), environment)
    stdout, stderr = await asyncio.to_thread(worker.communicate, timeout=60)
    assert worker.returncode == 1, stderr
    assert "loaded: 0" in stdout + stderr  # on a worker that imported first: its mapped .so pages, counted
    assert queue.frames_of("register") == []

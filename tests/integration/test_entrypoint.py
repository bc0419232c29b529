"""entrypoint.sh under bash with stand-in processes: exit codes, signal order, grace periods, no survivors."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import (
    ROOT,
    alive,
    cli_environment,
    free_port,
    stand_in_nvidia_smi,
    worker_environment,
)

pytestmark = pytest.mark.slow

ENTRYPOINT = ROOT / "entrypoint.sh"
STANDIN = f"{sys.executable} -m tests.fakes.standin"


@dataclass
class Events:
    path: Path

    def lines(self) -> list[list[str]]:
        text = self.path.read_text() if self.path.exists() else ""
        return [line.split(" ", 2)[1:] for line in text.splitlines()]

    def names(self) -> list[str]:
        return [f"{name} {event.split()[0]}" for name, event in self.lines()]

    def pids(self) -> list[int]:
        return [int(event.split()[1]) for _, event in self.lines() if event.split()[0] in ("start", "child")]

    def time_of(self, wanted: str) -> float:
        for line in self.path.read_text().splitlines():
            stamp, name, event = line.split(" ", 2)
            if f"{name} {event.split()[0]}" == wanted:
                return float(stamp)
        raise AssertionError(f"no {wanted!r} in {self.names()}")

    def wait_for(self, wanted: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.names():
            assert time.monotonic() < deadline, f"no {wanted!r} in {self.names()}"
            time.sleep(0.02)


GPU_CHECK = f"{sys.executable} -m main check-gpu"  # the real one: without nvidia-smi it warns and passes


def entrypoint(
    vllm: str, worker: str, path: str = "/usr/bin:/bin", merged: bool = False, **environment: str | float
) -> subprocess.Popen[str]:
    """The entrypoint with these commands; its stderr piped (with its stdout, the whole log, if `merged`)."""
    env = cli_environment({"ENTRYPOINT_VLLM_COMMAND": vllm, "ENTRYPOINT_WORKER_COMMAND": worker})
    env["ENTRYPOINT_GPU_CHECK_COMMAND"] = GPU_CHECK
    env.update({name: str(value) for name, value in environment.items()})
    env["PATH"] = path  # by default no nvidia-smi
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if merged else {"stderr": subprocess.PIPE}
    return subprocess.Popen(["bash", str(ENTRYPOINT)], env=env, cwd=ROOT, text=True, **output)  # type: ignore[call-overload]


@pytest.fixture
def events(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def standin(name: str, events: Events, *flags: str) -> str:
    return f"{STANDIN} {name} --record {events.path} {' '.join(flags)}"


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr if stderr is not None else stdout


def assert_none_survive(events: Events) -> None:
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in events.pids()):
        assert time.monotonic() < deadline, f"still alive: {[pid for pid in events.pids() if alive(pid)]}"
        time.sleep(0.02)


def test_the_worker_exiting_stops_vllm_and_passes_on_its_code(events: Events) -> None:
    process = entrypoint(
        standin("vllm", events, "--spawn-child"), standin("worker", events, "--exit-after 1 --exit-code 3")
    )
    code, stderr = finish(process)
    assert code == 3
    assert events.names()[-2:] == ["vllm TERM", "vllm exit"]
    assert "nvidia-smi not found" in stderr
    assert_none_survive(events)


def test_a_failed_gpu_check_ends_the_container_before_vllm_starts(events: Events, tmp_path: Path) -> None:
    busy = stand_in_nvidia_smi(tmp_path, "NVIDIA A100-SXM4-80GB, 81920, 30000, 97, 0, 400, 400")
    process = entrypoint(standin("vllm", events), standin("worker", events), path=f"{busy}:/usr/bin:/bin")
    code, stderr = finish(process)
    assert code == 2
    assert "GPU check failed: GPU 0 (NVIDIA A100-SXM4-80GB): busy" in stderr
    assert "GPU check failed (exit 2): not starting vLLM" in stderr
    assert events.names() == []


def test_vllm_and_the_worker_each_get_a_process_group_but_stay_in_the_session(events: Events) -> None:
    """A new session is a scheduling group of its own under autogroup: vLLM ran 4x slower that way."""
    process = entrypoint(standin("vllm", events), standin("worker", events))
    try:
        events.wait_for("vllm start")
        events.wait_for("worker start")
        vllm, worker = events.pids()
        assert os.getpgid(vllm) == vllm and os.getpgid(worker) == worker
        assert os.getsid(vllm) == os.getsid(worker) == os.getsid(process.pid)
        process.send_signal(signal.SIGTERM)
        code, _ = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0
    assert_none_survive(events)


@pytest.mark.parametrize(("sig", "worker_code"), [(signal.SIGTERM, 0), (signal.SIGINT, 0), (signal.SIGTERM, 5)])
def test_a_signal_stops_the_worker_first_then_vllm(events: Events, sig: signal.Signals, worker_code: int) -> None:
    process = entrypoint(standin("vllm", events), standin("worker", events, f"--exit-code {worker_code}"))
    events.wait_for("worker start")
    events.wait_for("vllm start")
    process.send_signal(sig)
    code, stderr = finish(process)
    assert code == worker_code
    order = [name for name in events.names() if name.endswith(("TERM", "exit"))]
    assert order == ["worker TERM", "worker exit", "vllm TERM", "vllm exit"]
    assert f"{sig.name}: shutting down" in stderr
    assert_none_survive(events)


def test_a_worker_ignoring_sigterm_is_killed_after_its_grace_period(events: Events) -> None:
    process = entrypoint(
        standin("vllm", events),
        standin("worker", events, "--ignore-sigterm"),
        CASOLA_SHUTDOWN_GRACE_PERIOD=1,
        ENTRYPOINT_SHUTDOWN_MARGIN=1,
    )
    events.wait_for("worker start")
    events.wait_for("vllm start")
    process.send_signal(signal.SIGTERM)
    code, stderr = finish(process)
    assert code == 137
    assert "the worker did not exit within 2s: SIGKILL" in stderr
    waited = events.time_of("vllm TERM") - events.time_of("worker TERM")
    assert 2.0 <= waited < 8.0, waited  # the grace period plus the margin was honoured, then no longer
    assert "worker exit" not in events.names()
    assert_none_survive(events)


def test_vllm_ignoring_sigterm_is_killed_after_its_stop_timeout(events: Events) -> None:
    process = entrypoint(
        standin("vllm", events, "--ignore-sigterm --spawn-child"),
        standin("worker", events, "--exit-after 0.5 --exit-code 0"),
        VLLM_STOP_TIMEOUT=1,
    )
    code, stderr = finish(process)
    assert code == 0
    assert "vLLM ignored SIGTERM for 1s: SIGKILL" in stderr
    assert_none_survive(events)


def test_a_stopped_vllm_is_killed_at_once_not_waited_on(events: Events) -> None:
    """A SIGSTOPped vLLM (as a hung engine can be) cannot act on SIGTERM: its group gets SIGKILL at once."""
    process = entrypoint(
        standin("vllm", events, "--spawn-child"),
        standin("worker", events, "--exit-after 2 --exit-code 0"),
        VLLM_STOP_TIMEOUT=600,
    )
    events.wait_for("vllm start")
    events.wait_for("vllm child")
    for name, event in events.lines():
        if name == "vllm" and event.split()[0] in ("start", "child"):
            os.kill(int(event.split()[1]), signal.SIGSTOP)
    code, stderr = finish(process, 60)  # not the 600 s SIGTERM would be given
    assert code == 0
    assert "vLLM has stopped processes" in stderr and "ignored SIGTERM" not in stderr
    assert "nothing left running" in stderr
    assert_none_survive(events)


def test_vllm_exiting_gives_the_worker_its_grace_period_then_exits_non_zero(events: Events) -> None:
    process = entrypoint(
        standin("vllm", events, "--exit-after 0.5 --exit-code 0"),
        standin("worker", events, "--exit-code 0"),
        CASOLA_SHUTDOWN_GRACE_PERIOD=1,
        ENTRYPOINT_SHUTDOWN_MARGIN=1,
    )
    code, stderr = finish(process)
    assert code == 1  # vLLM and the (stopped) worker both said 0: vLLM dying is still a failure
    assert "vLLM exited with 0: the worker has 1s (+1s) to report it" in stderr
    assert events.time_of("worker TERM") - events.time_of("vllm exit") >= 2.0
    assert_none_survive(events)


async def test_vllm_death_is_reported_by_the_real_worker(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi, tmp_path: Path
) -> None:
    fake_vllm.stop()
    port = fake_vllm.port
    environment = worker_environment(queue, fake_vllm, fake_api, VLLM_PORT=port, CASOLA_SHUTDOWN_GRACE_PERIOD=5)
    vllm = f"{sys.executable} -m testbed.fake_vllm serve tiny --port {port} --exit-after 3"
    process = entrypoint(vllm, f"{sys.executable} -m main run", **environment)
    await queue.wait_for_type("register", timeout=30)
    code, stderr = await asyncio.to_thread(finish, process)
    assert code == 1, stderr
    beat = fake_api.heartbeats[-1]
    assert beat["status"] == "error" and "vLLM stopped answering /health" in beat["error_message"]
    assert "worker exited with 1" in stderr


async def test_vllm_exiting_before_it_was_ready_is_reported_by_the_worker_itself(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    """vLLM that fails at start (a bad model, a bad flag) never answered: the entrypoint tells the worker, which
    sends its `error` heartbeat and exits 1 by itself, long before its startup timeout or the entrypoint's grace."""
    fake_vllm.stop()
    environment = worker_environment(
        queue, fake_vllm, fake_api, VLLM_STARTUP_TIMEOUT=600, WORKER_VLLM_LOG_PORT=free_port(),
        ENTRYPOINT_LOG_RELAY_COMMAND=f"{sys.executable} -m adapters.vllm.log_relay",
        CASOLA_SHUTDOWN_GRACE_PERIOD=30,
    )  # fmt: skip
    process = entrypoint("false", f"{sys.executable} -m main run", **environment)
    code, stderr = await asyncio.to_thread(finish, process, 60)
    assert code == 1, stderr
    assert fake_api.heartbeats[-1] == {**fake_api.heartbeats[-1], "status": "error"}
    assert fake_api.heartbeats[-1]["error_message"] == "vLLM exited with code 1"
    assert "stopping the worker" not in stderr, "the worker exited by itself"
    assert "worker exited with 1" in stderr and "nothing left running" in stderr


async def test_vllms_lines_reach_the_worker_which_ships_them_and_stops_on_a_fatal_one(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    fake_vllm.stop()
    port, log_port = fake_vllm.port, free_port()
    environment = worker_environment(
        queue, fake_vllm, fake_api, VLLM_PORT=port, WORKER_VLLM_LOG_PORT=log_port,
        CASOLA_LOGS_URL=f"{fake_api.url}/api/logs", CASOLA_LOG_FLUSH_INTERVAL=0.2,
        ENTRYPOINT_LOG_RELAY_COMMAND=f"{sys.executable} -m adapters.vllm.log_relay",
    )  # fmt: skip
    fatal = "RuntimeError: CUDA driver version is insufficient for CUDA runtime version"
    vllm = f"{sys.executable} -m testbed.fake_vllm serve tiny --port {port} --startup-delay 3"
    process = entrypoint(vllm, f"{sys.executable} -m main run", FAKE_VLLM_SAY_LATE=fatal, **environment)
    code, stderr = await asyncio.to_thread(finish, process)
    assert code == 2, stderr
    assert fake_api.heartbeats[-1]["status"] == "fatal" and fatal in fake_api.heartbeats[-1]["error_message"]
    shipped = [entry for batch in fake_api.posts.get("/api/logs", []) for entry in batch["entries"]]
    assert any(entry["source"] == "vllm" and fatal in entry["message"] for entry in shipped)


async def test_a_relayed_vllm_line_is_in_the_containers_log_once_and_shipped(
    queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    fake_vllm.stop()
    port = fake_vllm.port
    environment = worker_environment(
        queue, fake_vllm, fake_api, VLLM_PORT=port, WORKER_VLLM_LOG_PORT=free_port(),
        CASOLA_LOGS_URL=f"{fake_api.url}/api/logs", CASOLA_LOG_FLUSH_INTERVAL=0.2,
        ENTRYPOINT_LOG_RELAY_COMMAND=f"{sys.executable} -m adapters.vllm.log_relay",
    )  # fmt: skip
    marker, fatal = "INFO a line of vLLM's, 7431", "RuntimeError: CUDA driver version is insufficient"
    vllm = f"{sys.executable} -m testbed.fake_vllm serve tiny --port {port} --startup-delay 3"
    lines = f"{marker}\n{fatal}"
    process = entrypoint(vllm, f"{sys.executable} -m main run", merged=True, FAKE_VLLM_SAY_LATE=lines, **environment)
    code, log = await asyncio.to_thread(finish, process)
    assert code == 2, log
    assert log.count(marker) == 1, log  # written by the relay; the worker ships it and does not write it again
    shipped = [entry for batch in fake_api.posts.get("/api/logs", []) for entry in batch["entries"]]
    assert any(entry["source"] == "vllm" and entry["message"] == marker for entry in shipped)


def test_gpu_diagnostic_with_nvidia_smi(events: Events, tmp_path: Path) -> None:
    fake_smi = tmp_path / "nvidia-smi"
    fake_smi.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *driver_version*) echo "550.54.15";;\n'
        '  *index,name*) echo "0, NVIDIA A100-SXM4-80GB, 81920 MiB";;\n'
        '  *gpu_name,memory.total*) echo "NVIDIA A100-SXM4-80GB, 81920, 3, 0, 0, 400, 400";;\n'
        '  *) echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |";;\n'
        "esac\n"
    )
    fake_smi.chmod(0o755)
    env = cli_environment(
        {
            "ENTRYPOINT_VLLM_COMMAND": standin("vllm", events),
            "ENTRYPOINT_WORKER_COMMAND": standin("worker", events, "--exit-after 0.2"),
            "ENTRYPOINT_GPU_CHECK_COMMAND": GPU_CHECK,
            "PATH": f"{tmp_path}:/usr/bin:/bin",
        }
    )
    done = subprocess.run(["bash", str(ENTRYPOINT)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "GPU driver: 550.54.15, CUDA Version: 12.4" in done.stderr
    assert "GPU 0, NVIDIA A100-SXM4-80GB, 81920 MiB" in done.stderr
    assert "GPU check passed: GPU 0 (NVIDIA A100-SXM4-80GB): idle (3 MiB used, 0% utilization)" in done.stderr


SHELL_SCRIPTS = [
    "entrypoint.sh",
    "build.sh",
    *sorted(f"scripts/{path.name}" for path in (ROOT / "scripts").glob("*.sh")),
]


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_scripts_pass_shellcheck(script: str) -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    done = subprocess.run([str(shellcheck), "-x", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout


def test_entrypoint_and_build_are_executable() -> None:
    assert os.access(ENTRYPOINT, os.X_OK) and os.access(ROOT / "build.sh", os.X_OK)

"""GPU checks before vLLM starts, against stand-in `nvidia-smi` scripts: `check-gpu` and `run --launch-vllm`."""

import asyncio
import sys
from pathlib import Path

import pytest
from testbed.fake_vllm import FakeVllm

from adapters.dev.local_queue import LocalQueue
from adapters.host.nvidia_smi import NvidiaSmi
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import cli, spawn, stand_in_nvidia_smi, worker_environment

pytestmark = pytest.mark.slow
HEALTHY = "NVIDIA A100-SXM4-80GB, 81920, 3, 0, 0, 400.00, 400.00"
DRIVER_GONE = "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver."


def check_gpu(path: Path | None, **environment: object) -> tuple[int, str]:
    """`worker-vllm check-gpu` with `path` (a stand-in nvidia-smi, or none) first in PATH."""
    variables = {name: str(value) for name, value in environment.items()}
    variables["PATH"] = f"{path}:/usr/bin:/bin" if path else "/usr/bin:/bin"
    process = spawn(cli("check-gpu"), variables)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_a_healthy_gpu_passes(tmp_path: Path) -> None:
    code, log = check_gpu(stand_in_nvidia_smi(tmp_path, HEALTHY, HEALTHY), CASOLA_EXPECTED_GPU_NAME="A100")
    assert code == 0, log
    checks = (
        "is the expected A100",
        "idle (3 MiB used, 0% utilization)",
        "0 uncorrected ECC errors",
        "power limit 400.00 W",
    )
    for check in checks:  # one line a check, for each GPU
        assert f"GPU check passed: GPU 1 (NVIDIA A100-SXM4-80GB): {check}" in log


def test_no_nvidia_smi_is_a_warning_not_a_failure() -> None:
    code, log = check_gpu(None)
    assert code == 0
    assert "GPU check: nvidia-smi not found, no check made" in log


@pytest.mark.parametrize(
    ("rows", "exit_code", "expected", "failure"),
    [
        (
            ["NVIDIA H100 80GB HBM3, 81559, 3, 0, 0, 700, 700"],
            0,
            {"CASOLA_EXPECTED_GPU_NAME": "A100"},
            "not the expected",
        ),
        (["NVIDIA A100-SXM4-40GB, 40960, 3, 0, 0, 400, 400"], 0, {"CASOLA_EXPECTED_VRAM_GB": 80}, "40960 MiB"),
        (["NVIDIA A100-SXM4-80GB, 81920, 40000, 99, 0, 400, 400"], 0, {}, "busy (40000 MiB used, 99% utilization)"),
        (["NVIDIA A100-SXM4-80GB, 81920, 3, 0, 7, 400, 400"], 0, {}, "7 uncorrected ECC errors"),
        (["NVIDIA A100-SXM4-80GB, 81920, 3, 0, 0, 150, 400"], 0, {}, "power limited to 150 W of 400 W"),
        ([DRIVER_GONE], 9, {}, "nvidia-smi failed (exit 9): NVIDIA-SMI has failed"),
    ],
)
def test_a_bad_host_sends_a_fatal_heartbeat_and_exits_2(
    tmp_path: Path, queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi,
    rows: list[str], exit_code: int, expected: dict[str, object], failure: str,
) -> None:  # fmt: skip
    environment = worker_environment(queue, fake_vllm, fake_api, **expected)
    code, log = check_gpu(stand_in_nvidia_smi(tmp_path, *rows, exit_code=exit_code), **environment)
    assert code == 2, log
    assert "GPU check failed: " in log and failure in log
    beat = fake_api.wait_for_status("fatal")
    assert beat["error_message"].startswith("gpu_health_check failed: ") and failure in beat["error_message"]


async def test_an_nvidia_smi_that_hangs_is_a_failure_within_its_time_limit(tmp_path: Path) -> None:
    slow = stand_in_nvidia_smi(tmp_path, HEALTHY, delay=30)
    query = await NvidiaSmi(str(slow / "nvidia-smi"), time_limit=0.5).query()
    assert query.error == "nvidia-smi did not answer within 0.5 s"


async def test_run_launch_vllm_checks_the_gpu_before_starting_vllm(
    tmp_path: Path, queue: LocalQueue, fake_vllm: FakeVllm, fake_api: FakeApi
) -> None:
    marker = tmp_path / "vllm-started"
    serve = f"{sys.executable} -c \"open('{marker}', 'w')\""
    environment = worker_environment(queue, fake_vllm, fake_api, VLLM_SERVE_COMMAND=serve)
    environment["PATH"] = f"{stand_in_nvidia_smi(tmp_path, 'Tesla T4, 15360, 3, 0, 3, 70, 70')}:/usr/bin:/bin"
    worker = spawn(cli("run", "--launch-vllm"), environment)
    code = await asyncio.to_thread(worker.wait, 60)
    assert code == 2
    assert fake_api.wait_for_status("fatal")["error_message"] == (
        "gpu_health_check failed: GPU 0 (Tesla T4): 3 uncorrected ECC errors"
    )
    assert not marker.exists()
    assert queue.frames_of("register") == []

"""Real vLLM for the `vllm` tier: skipped (or, in CI, failed) until `make vllm-env` has run; reading its load."""

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from testbed.real_vllm import (
    OLDER_VLLM_COMMAND,
    ROOT,
    TINY_MODEL,
    TINY_WHISPER,
    VLLM_ARGS,
    VLLM_COMMAND,
    is_set_up,
    start_vllm,
    stop_group,
    vllm_python,
    wait_until_ready,
)

__all__ = [
    "OLDER_VLLM_COMMAND",
    "TINY_MODEL",
    "TINY_WHISPER",
    "VLLM_ARGS",
    "VLLM_COMMAND",
    "start_vllm",
    "stop_group",
    "wait_until_ready",
]
LONG = {"max_tokens": 6000, "extra_body": {"ignore_eos": True}}  # about 15 s on the CPU build


def require_real_vllm(model: Path = TINY_MODEL, command: Path = VLLM_COMMAND) -> None:
    """Skips (or, with WORKER_VLLM_REQUIRE=1 as in CI, fails) when `make vllm-env` has not run."""
    if is_set_up(model, command):
        return
    message = "real vLLM is not set up: run `make vllm-env`"
    if os.environ.get("WORKER_VLLM_REQUIRE") == "1":
        pytest.fail(message)
    pytest.skip(message)


async def requests_running(client: httpx.AsyncClient, port: int) -> float | None:
    """vLLM's `vllm:num_requests_running` from /metrics; None when vLLM did not say (a busy 2-core machine)."""
    try:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=30)).text
    except httpx.TimeoutException:
        return None
    match = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def generation_tokens(client: httpx.AsyncClient, port: int) -> float:
    """vLLM's `vllm:generation_tokens_total`: every token it generated since it started."""
    text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=60)).text
    match = re.search(r"^vllm:generation_tokens_total\{[^}]*\} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, "vLLM's /metrics has no vllm:generation_tokens_total"
    return float(match.group(1))


def worker_in_vllm_environment() -> Path:
    """The worker installed into vLLM's Python as the image installs it (`docker/install_worker.py`: vLLM's
    packages kept at their versions, only what is missing added), over a copy-free overlay of vLLM's
    environment (a venv whose .pth adds vLLM's site-packages), so the cached vLLM itself is never changed.
    Returns the overlay's `worker-vllm`."""
    overlay = ROOT / ".cache" / "worker-in-vllm-env"
    python = overlay / "bin" / "python"
    if not python.exists():
        subprocess.run([vllm_python(), "-m", "venv", str(overlay)], check=True)
        site = run_python(str(python), "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        vllm_site = run_python(vllm_python(), "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        (Path(site) / "vllm-environment.pth").write_text(f"{vllm_site}\n")
    subprocess.run(
        [str(python), str(ROOT / "docker" / "install_worker.py"), str(ROOT)],
        check=True, capture_output=True, env=without_pythonpath(),
    )  # fmt: skip
    return overlay / "bin" / "worker-vllm"


def run_python(python: str, code: str) -> str:
    return subprocess.run(
        [python, "-c", code], check=True, capture_output=True, text=True, env=without_pythonpath()
    ).stdout.strip()


def without_pythonpath() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def spawn_installed(command: list[str], environment: dict[str, str]) -> subprocess.Popen[str]:
    """An installed command, importing only what its own Python has installed (no checkout on PYTHONPATH)."""
    env = {**without_pythonpath(), **environment}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

"""Real vLLM for the `vllm` tier: skipped (or, in CI, failed) until `make vllm-env` has run; reading its load."""

import hashlib
import os
import re
import shutil
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


def worker_as_in_the_image() -> Path:
    """The worker in an environment of its own, made as the Dockerfile makes it: a venv with no pip, filled by vLLM's
    Python's pip from requirements.lock with --require-hashes (and the worker itself, editable here, so the checkout's
    code runs). Made once per lock; vLLM's own environment is never changed. Returns its `worker-vllm`."""
    lock = ROOT / "requirements.lock"
    venv = ROOT / ".cache" / f"worker-env-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    if not (venv / "bin" / "worker-vllm").exists():
        shutil.rmtree(venv, ignore_errors=True)
        pip = [vllm_python(), "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-deps"]
        for command in (
            [vllm_python(), "-m", "venv", "--without-pip", str(venv)],
            [*pip, "--require-hashes", "-r", str(lock)],
            [*pip, "-e", str(ROOT)],
        ):
            subprocess.run(command, check=True, capture_output=True, env=without_pythonpath())
    return venv / "bin" / "worker-vllm"


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

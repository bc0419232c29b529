"""Real vLLM for the `vllm` tier: skipped (or, in CI, failed) until `make vllm-env` has run; reading its load."""

import os
import re

import httpx
import pytest
from testbed.real_vllm import TINY_MODEL, VLLM_ARGS, VLLM_COMMAND, is_set_up, start_vllm, stop_group, wait_until_ready

__all__ = ["TINY_MODEL", "VLLM_ARGS", "VLLM_COMMAND", "start_vllm", "stop_group", "wait_until_ready"]
LONG = {"max_tokens": 6000, "extra_body": {"ignore_eos": True}}  # about 15 s on the CPU build


def require_real_vllm() -> None:
    """Skips (or, with WORKER_VLLM_REQUIRE=1 as in CI, fails) when `make vllm-env` has not run."""
    if is_set_up():
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

"""`check-vllm`: vLLM's health, models, one tiny chat completion and its load, each a step that passes or fails."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from application.ports import Inference, VllmProbe
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.exchange import VllmRequest
from domain.kinds import CHAT
from domain.request_body import request_body, validate_payload
from domain.vllm import REQUESTS_RUNNING, REQUESTS_WAITING

LOAD_GAUGES = (REQUESTS_RUNNING, REQUESTS_WAITING)  # shown as vLLM writes them
TEST_CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}


@dataclass(frozen=True)
class Check:
    step: str
    passed: bool
    detail: str


class Diagnostics:
    def __init__(self, probe: VllmProbe, inference: Inference, served_model: str, timeout: float) -> None:
        self.probe = probe
        self.inference = inference
        self.served_model = served_model
        self.timeout = timeout

    async def report(self, say: Callable[[str], None]) -> int:
        """Says each step as it ends; the exit code: 0 when every step passed."""
        say(f"vLLM at {self.probe.base_url}, served model {self.served_model!r}")
        passed = True
        async for check in self.checks():
            say(f"  {check.step:<8}{'ok' if check.passed else 'FAILED':<8}{check.detail}")
            passed &= check.passed
        say("all checks passed" if passed else "some checks failed")
        return 0 if passed else 1

    async def checks(self) -> AsyncIterator[Check]:
        yield Check("health", await self.probe.health(), "GET /health")
        for name, step in (("models", self._models), ("chat", self._chat), ("metrics", self._load)):
            try:
                yield await step()
            except (InferenceUnavailable, InferenceRejected) as error:
                yield Check(name, False, str(error))
            except TimeoutError:
                yield Check(name, False, f"no answer within {self.timeout:g} s")

    async def _models(self) -> Check:
        served = await self.probe.models()
        return Check("models", self.served_model in served, f"serves {served}")

    async def _chat(self) -> Check:
        body = request_body(validate_payload(CHAT.payload, TEST_CHAT), self.served_model)
        started = time.monotonic()
        async with asyncio.timeout(self.timeout):
            completion = await self.inference.exchange(VllmRequest(CHAT.route, body))
        choice = completion["choices"][0]
        usage = completion.get("usage", {})
        detail = (
            f"{(time.monotonic() - started) * 1000:.0f} ms, finish {choice.get('finish_reason')}, "
            f"{usage.get('prompt_tokens')}+{usage.get('completion_tokens')} tokens"
        )
        return Check("chat", True, detail)

    async def _load(self) -> Check:
        gauges = [line for line in (await self.probe.metrics()).splitlines() if line.startswith(LOAD_GAUGES)]
        return Check("metrics", bool(gauges), "; ".join(gauges) or "no vllm:num_requests_* gauges")

"""The vLLM probe over `VllmClient`: /health, /v1/models, /metrics (read by prometheus-client's parser), and vLLM's
surface (/version and /openapi.json)."""

import asyncio
from collections.abc import Iterable

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from adapters.vllm.client import Answer, BrokenAnswer, NoAnswer, VllmClient
from adapters.vllm.openapi import NotOpenApi, surface_of
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.surface import VllmSurface

HEALTH_TIMEOUT = 5.0
FRESH_ANSWER = 1.0  # a job answered within this many seconds proves vLLM's engine as well as /health would
QUERY_TIMEOUT = 25.0  # /metrics answers slowly while the CPU build generates


class HttpVllmProbe:
    def __init__(self, http: VllmClient, fresh_answer: float = FRESH_ANSWER) -> None:
        self.http = http
        self.base_url = http.base_url
        self.fresh_answer = fresh_answer

    async def health(self) -> bool:
        """vLLM's /health answers 200, or a job just got a successful answer (no request while jobs flow)."""
        if self.http.clock() - self.http.answered_at < self.fresh_answer:
            return True
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                answer = await self.http.get("/health")
        except (NoAnswer, BrokenAnswer, TimeoutError):
            return False
        return answer.status == 200

    async def models(self) -> list[str]:
        answer = await self._get("/v1/models")
        try:
            listing = msgspec.json.decode(answer.body)
            return [str(model["id"]) for model in listing.get("data", [])]
        except (msgspec.DecodeError, AttributeError, KeyError, TypeError) as error:
            raise InferenceRejected(f"GET /v1/models answered with no list of models: {error}") from None

    async def metrics(self) -> str:
        return (await self._get("/metrics")).body.decode("utf-8", "replace")

    async def load(self, *names: str) -> dict[str, float]:
        return totals(await self.metrics(), names)

    async def surface(self, routes: Iterable[str]) -> VllmSurface:
        """vLLM's version and what /openapi.json says of `routes`; the built-in surface (with the version) when vLLM
        serves no /openapi.json. Fails as `models` does when vLLM cannot be reached."""
        try:
            version = str(msgspec.json.decode((await self._get("/version")).body).get("version") or "unknown")
        except (InferenceRejected, msgspec.DecodeError, AttributeError):
            version = "unknown"
        try:
            return surface_of(msgspec.json.decode((await self._get("/openapi.json")).body), version, routes)
        except (InferenceRejected, msgspec.DecodeError, NotOpenApi):
            return VllmSurface(version)

    async def _get(self, path: str) -> Answer:
        try:
            async with asyncio.timeout(QUERY_TIMEOUT):
                answer = await self.http.get(path)
        except (NoAnswer, BrokenAnswer, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise InferenceUnavailable(f"cannot reach vLLM at {self.http.base_url}: {reason}") from None
        if not 200 <= answer.status < 300:
            raise InferenceRejected(f"GET {path} answered HTTP {answer.status}")
        return answer


def totals(metrics_text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Each of `names` summed over its label sets; a name the text does not show is left out.

    Only the lines that start with one of the names go to the parser: all of vLLM's /metrics (about 600 lines,
    histograms most of them) takes it 7.5 ms of the event loop, those lines 0.15 ms. A sample is one line (the
    format escapes a newline in a label's value), so no sample asked for is cut."""
    lines = "\n".join(line for line in metrics_text.splitlines() if line.startswith(names))
    found: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(lines):
            for sample in family.samples:
                if sample.name in names:
                    found[sample.name] = found.get(sample.name, 0.0) + sample.value
    except ValueError as error:
        raise InferenceRejected(f"GET /metrics answered with no Prometheus text: {error}") from None
    return found

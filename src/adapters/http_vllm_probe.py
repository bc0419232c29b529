"""The vLLM probe over httpx: /health, /v1/models and /metrics."""

import httpx

from domain.errors import InferenceRejected, InferenceUnavailable

HEALTH_TIMEOUT = 5.0
QUERY_TIMEOUT = 25.0  # /metrics answers slowly while the CPU build generates


class HttpVllmProbe:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def health(self) -> bool:
        try:
            response = await self.http.get(f"{self.base_url}/health", timeout=HEALTH_TIMEOUT)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def models(self) -> list[str]:
        response = await self._get("/v1/models")
        return [model["id"] for model in response.json().get("data", [])]

    async def metrics(self) -> str:
        return (await self._get("/metrics")).text

    async def _get(self, path: str) -> httpx.Response:
        try:
            response = await self.http.get(f"{self.base_url}{path}", timeout=QUERY_TIMEOUT)
        except httpx.HTTPError as error:
            raise InferenceUnavailable(f"cannot reach vLLM at {self.base_url}: {type(error).__name__}") from None
        if not response.is_success:
            raise InferenceRejected(f"GET {path} answered HTTP {response.status_code}")
        return response

"""The inference port over `openai.AsyncOpenAI` pointed at vLLM, plus httpx for /health and /metrics."""

import json
import logging
from typing import Any

import httpx
import openai

from application.ports import InferenceRejected, InferenceUnavailable
from domain.jobs import ChatPayload, EmbeddingsPayload

log = logging.getLogger("worker.inference")

HEALTH_TIMEOUT = 5.0


class OpenAIInference:
    """Every request names the served model; no retries, so nothing outlives a lease or a revoke."""

    def __init__(self, client: openai.AsyncOpenAI, http: httpx.AsyncClient, base_url: str, served_model: str) -> None:
        self.client = client
        self.http = http
        self.base_url = base_url
        self.served_model = served_model

    async def chat(self, payload: ChatPayload, extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
        body = payload.model_dump(exclude_none=True) | (extra_body or {}) | {"model": self.served_model}
        return await self._post("/chat/completions", body)

    async def embeddings(self, payload: EmbeddingsPayload) -> dict[str, Any]:
        return await self._post("/embeddings", {"model": self.served_model, "input": payload.input})

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The body is already validated, so the client's own request transformation is skipped (half its CPU).

        One immediate second try, only when the connection failed before any answer: vLLM's server closes
        idle keep-alive connections after 5 s, and a request can meet one as it closes. Timeouts and error
        answers are never tried again, so nothing outlives the job's deadline or a revoke.
        """
        try:
            try:
                content = await self.client.post(path, body=body, cast_to=bytes)
            except openai.APIConnectionError as error:
                if isinstance(error, openai.APITimeoutError):
                    raise
                log.info("vLLM connection failed before an answer (%s): trying once more", error)
                content = await self.client.post(path, body=body, cast_to=bytes)
        except openai.APIError as error:
            raise _translated(error, self.base_url) from None
        return _json(content)

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
            response = await self.http.get(f"{self.base_url}{path}", timeout=HEALTH_TIMEOUT * 5)
        except httpx.HTTPError as error:
            raise InferenceUnavailable(f"cannot reach vLLM at {self.base_url}: {type(error).__name__}") from None
        if not response.is_success:
            raise InferenceRejected(f"GET {path} answered HTTP {response.status_code}")
        return response


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError as error:
        raise InferenceRejected(f"vLLM answered with a body that is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise InferenceRejected("vLLM answered with JSON that is not an object")
    return parsed


def _translated(error: openai.APIError, base_url: str) -> Exception:
    if isinstance(error, openai.APIConnectionError):
        return InferenceUnavailable(f"cannot reach vLLM at {base_url}: {type(error).__name__}")
    if isinstance(error, openai.APIStatusError):
        reason = _reason(error)
        if error.status_code == 503 or "EngineDead" in reason:
            return InferenceUnavailable(f"vLLM answered HTTP {error.status_code}: {reason}")
        return InferenceRejected(f"vLLM answered HTTP {error.status_code}: {reason}")
    return InferenceRejected(f"{type(error).__name__}: {error}")


def _reason(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:1000]
    return str(error.message)[:1000]

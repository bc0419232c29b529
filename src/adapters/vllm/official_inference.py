"""The inference port over `openai.AsyncOpenAI` pointed at vLLM: `check-vllm`'s view through the official client.

The job path uses `HttpInference` (a fifth of the CPU); importing openai costs 20 MB, so only check-vllm does.
"""

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

from adapters.vllm.refusals import refusal, result_of
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.exchange import VllmRequest
from domain.untrusted import header_safe

log = logging.getLogger("worker.inference")


async def openai_client(base_url: str, api_key: str | None, timeout: float) -> AsyncIterator[openai.AsyncOpenAI]:
    """No hidden retries: one could outlive a lease or a revoke."""
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=openai.Timeout(timeout, connect=5.0)
    )
    try:
        yield client
    finally:
        await client.close()


class OpenAIInference:
    """A JSON request is tried once more when the connection failed before any answer; a form never is. Nothing
    outlives a lease or a revoke."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.base_url = str(client.base_url).rstrip("/")

    async def exchange(self, request: VllmRequest) -> dict[str, Any]:
        """The body is already validated, so the client's own request transformation is skipped (half its CPU); a
        form is the client's own multipart form (a list field as `name[]`, as vLLM's form reads it).

        One immediate second try of a JSON request, only when the connection failed before any answer: vLLM's
        server closes idle keep-alive connections after 5 s, and a request can meet one as it closes. Timeouts and
        error answers are never tried again, so nothing outlives the job's deadline or a revoke.
        """
        options = _request_options(request.request_id)
        file = request.file
        files = None if file is None else [("file", (file.filename, file.data, file.content_type))]
        try:
            try:
                response = await self.client.post(
                    request.route, body=request.body, files=files, cast_to=httpx.Response, options=options
                )
            except openai.APIConnectionError as error:
                if isinstance(error, openai.APITimeoutError) or request.sent == "form":
                    raise
                log.info("vLLM connection failed before an answer (%s): trying once more", error)
                response = await self.client.post(
                    request.route, body=request.body, cast_to=httpx.Response, options=options
                )
        except openai.APIError as error:
            raise _translated(error, self.base_url) from None
        if request.answered == "bytes":
            content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0]
            return {"content": response.content, "content_type": content_type}
        return result_of(response.content)


def _translated(error: openai.APIError, base_url: str) -> Exception:
    if isinstance(error, openai.APIConnectionError):
        return InferenceUnavailable(f"cannot reach vLLM at {base_url}: {type(error).__name__}")
    if isinstance(error, openai.APIStatusError):
        return refusal(error.status_code, error.response.content)
    return InferenceRejected(f"{type(error).__name__}: {error}")


def _request_options(request_id: str | None) -> Any:
    """The job's id as vLLM's own request id, in the official client's per-request options."""
    return {"headers": {"X-Request-Id": header_safe(request_id)}} if request_id else {}

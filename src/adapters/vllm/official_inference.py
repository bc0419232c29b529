"""The inference port over `openai.AsyncOpenAI` pointed at vLLM: `check-vllm`'s view through the official client.

The job path uses `HttpInference` (a fifth of the CPU); importing openai costs 20 MB, so only check-vllm does.
"""

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai

from adapters.vllm.refusals import refusal, result_of
from domain.audio_payloads import AudioFile
from domain.errors import InferenceRejected, InferenceUnavailable
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
    """`infer` tries once more when the connection failed before any answer; `transcribe` and `synthesize` never do.
    Nothing outlives a lease or a revoke."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.base_url = str(client.base_url).rstrip("/")

    async def infer(self, route: str, body: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        """The body is already validated, so the client's own request transformation is skipped (half its CPU).

        One immediate second try, only when the connection failed before any answer: vLLM's server closes
        idle keep-alive connections after 5 s, and a request can meet one as it closes. Timeouts and error
        answers are never tried again, so nothing outlives the job's deadline or a revoke.
        """
        options = _request_options(request_id)
        try:
            try:
                content = await self.client.post(route, body=body, cast_to=bytes, options=options)
            except openai.APIConnectionError as error:
                if isinstance(error, openai.APITimeoutError):
                    raise
                log.info("vLLM connection failed before an answer (%s): trying once more", error)
                content = await self.client.post(route, body=body, cast_to=bytes, options=options)
        except openai.APIError as error:
            raise _translated(error, self.base_url) from None
        return result_of(content)

    async def transcribe(
        self, route: str, body: dict[str, Any], audio: AudioFile, request_id: str | None = None
    ) -> dict[str, Any]:
        """The official client's own multipart form (a list field as `name[]`, as vLLM's form reads it)."""
        options = _request_options(request_id)
        files = [("file", (audio.filename, audio.data, audio.content_type))]
        try:
            content = await self.client.post(route, body=body, files=files, cast_to=bytes, options=options)
        except openai.APIError as error:
            raise _translated(error, self.base_url) from None
        return result_of(content)

    async def synthesize(self, route: str, body: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        options = _request_options(request_id)
        try:
            response = await self.client.post(route, body=body, cast_to=httpx.Response, options=options)
        except openai.APIError as error:
            raise _translated(error, self.base_url) from None
        content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0]
        audio = base64.b64encode(response.content).decode()
        return {"audio_base64": audio, "content_type": content_type, "format": body.get("response_format") or "wav"}


def _translated(error: openai.APIError, base_url: str) -> Exception:
    if isinstance(error, openai.APIConnectionError):
        return InferenceUnavailable(f"cannot reach vLLM at {base_url}: {type(error).__name__}")
    if isinstance(error, openai.APIStatusError):
        return refusal(error.status_code, error.response.content)
    return InferenceRejected(f"{type(error).__name__}: {error}")


def _request_options(request_id: str | None) -> Any:
    """The job's id as vLLM's own request id, in the official client's per-request options."""
    return {"headers": {"X-Request-Id": header_safe(request_id)}} if request_id else {}

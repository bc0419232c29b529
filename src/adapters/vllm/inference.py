"""The inference port over `VllmClient`: vLLM's OpenAI-compatible routes, its answers and refusals.

The body is validated before it gets here, so it is encoded once and sent as is.
"""

import base64
from typing import Any

import aiohttp
import msgspec

from adapters.vllm.client import Answer, BrokenAnswer, NoAnswer, VllmClient
from adapters.vllm.refusals import refusal, result_of
from domain.audio_payloads import AudioFile, form_fields
from domain.errors import InferenceRejected, InferenceUnavailable

_encode = msgspec.json.Encoder().encode


class HttpInference:
    def __init__(self, client: VllmClient) -> None:
        self.client = client

    async def infer(self, route: str, body: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        """vLLM's answer to `body` at `route`.

        The client tries a second time, on a fresh connection, only when the first got no byte of an answer
        (vLLM, or a proxy in front of it, closes idle keep-alive connections). Timeouts and error answers are
        never tried again, so nothing outlives the job's deadline or a revoke (cancelling the call closes the
        connection, and vLLM aborts the request).
        """
        return await self._post(route, _encode(body), _request_headers(request_id))

    async def transcribe(
        self, route: str, body: dict[str, Any], audio: AudioFile, request_id: str | None = None
    ) -> dict[str, Any]:
        """The form is made by aiohttp's own multipart writer, once, so the second try sends the same bytes."""
        form = aiohttp.FormData(quote_fields=False)  # the filename as given: the payload allows no quote or newline
        for name, value in form_fields(body):
            form.add_field(name, value)
        form.add_field("file", audio.data, filename=audio.filename, content_type=audio.content_type)
        multipart = form()
        headers = {"Content-Type": multipart.content_type} | _request_headers(request_id)
        return await self._post(route, await multipart.as_bytes(), headers)

    async def synthesize(self, route: str, body: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        """The answer is the audio's bytes (vLLM-Omni), returned base64 with its content type and format."""
        answer = await self._answer(route, _encode(body), _request_headers(request_id))
        if not answer.content_type.startswith(("audio/", "application/octet-stream")):
            raise InferenceRejected(f"vLLM answered {answer.content_type}, not audio")
        return {
            "audio_base64": base64.b64encode(answer.body).decode(),
            "content_type": answer.content_type,
            "format": body.get("response_format") or "wav",  # vLLM-Omni's default
        }

    async def _post(self, route: str, content: bytes, headers: dict[str, str]) -> dict[str, Any]:
        return result_of((await self._answer(route, content, headers)).body)

    async def _answer(self, route: str, content: bytes, headers: dict[str, str]) -> Answer:
        try:
            answer = await self.client.post(route, content, headers or None)
        except NoAnswer as error:
            raise InferenceUnavailable(f"cannot reach vLLM at {self.client.base_url}: {error}") from None
        except BrokenAnswer as error:
            raise InferenceUnavailable(f"vLLM's answer broke off: {error}") from None
        if answer.status >= 400:
            raise refusal(answer.status, answer.body)
        return answer


def _request_headers(request_id: str | None) -> dict[str, str]:
    """The job's id as vLLM's own request id, so its log names the job."""
    return {"X-Request-Id": request_id} if request_id else {}

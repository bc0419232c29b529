"""The inference port over `VllmClient`: vLLM's OpenAI-compatible routes, its answers and refusals.

The body is validated before it gets here, so it is encoded once and sent as is.
"""

from typing import Any

import aiohttp
import msgspec

from adapters.vllm.client import Answer, BrokenAnswer, NoAnswer, VllmClient
from adapters.vllm.refusals import refusal, result_of
from domain.audio_payloads import form_fields
from domain.errors import InferenceUnavailable
from domain.exchange import VllmRequest

_encode = msgspec.json.Encoder().encode


class HttpInference:
    def __init__(self, client: VllmClient) -> None:
        self.client = client

    async def exchange(self, request: VllmRequest) -> dict[str, Any]:
        """vLLM's answer to `request`.

        The client tries a second time, on a fresh connection, only when the first got no byte of an answer
        (vLLM, or a proxy in front of it, closes idle keep-alive connections): a form is made once, by aiohttp's own
        multipart writer, so the second try sends the same bytes. Timeouts and error answers are never tried
        again, so nothing outlives the job's deadline or a revoke (cancelling the call closes the connection, and
        vLLM aborts the request).
        """
        headers = _request_headers(request.request_id)
        if request.sent == "form":
            content, content_type = await _form(request)
            headers["Content-Type"] = content_type
        else:
            content = _encode(request.body)
        answer = await self._answer(request.route, content, headers)
        if request.answered == "bytes":
            return {"content": answer.body, "content_type": answer.content_type}
        return result_of(answer.body)

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


async def _form(request: VllmRequest) -> tuple[bytes, str]:
    """The body's fields and the file as a multipart form, and its content type."""
    form = aiohttp.FormData(quote_fields=False)  # the filename as given: the payload allows no quote or newline
    for name, value in form_fields(request.body):
        form.add_field(name, value)
    if request.file is not None:
        form.add_field(
            "file", request.file.data, filename=request.file.filename, content_type=request.file.content_type
        )
    multipart = form()
    return await multipart.as_bytes(), multipart.content_type


def _request_headers(request_id: str | None) -> dict[str, str]:
    """The job's id as vLLM's own request id, so its log names the job."""
    return {"X-Request-Id": request_id} if request_id else {}

"""The inference port over `VllmHttp`: vLLM's OpenAI-compatible routes, its answers and refusals.

The body is validated before it gets here, so it is encoded once and sent as is.
"""

import logging
from typing import Any

import msgspec

from adapters.vllm_http import BrokenAnswer, NoAnswer, VllmHttp
from domain.errors import InferenceRejected, InferenceUnavailable
from domain.untrusted import header_safe

log = logging.getLogger("worker.inference")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class HttpInference:
    def __init__(self, http: VllmHttp) -> None:
        self.http = http

    async def infer(self, route: str, body: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        """vLLM's answer to `body` at `route`.

        One immediate second try, only when the connection failed before any answer: vLLM's server closes
        idle keep-alive connections after 5 s, and a request can meet one as it closes. Timeouts and error
        answers are never tried again, so nothing outlives the job's deadline or a revoke (cancelling the
        call closes the connection, and vLLM aborts the request).
        """
        data = _encode(body)
        headers = {"X-Request-Id": header_safe(request_id)} if request_id else None
        try:
            try:
                answer = await self.http.post(route, data, headers)
            except NoAnswer as error:
                log.info("vLLM connection failed before an answer (%s): trying once more", error)
                answer = await self.http.post(route, data, headers)
        except NoAnswer as error:
            raise InferenceUnavailable(f"cannot reach vLLM at {self.http.base_url}: {error}") from None
        except BrokenAnswer as error:
            raise InferenceUnavailable(f"vLLM's answer broke off: {error}") from None
        if answer.status >= 400:
            raise _refusal(answer.status, answer.body)
        return _answer(answer.body)


def _answer(content: bytes) -> dict[str, Any]:
    try:
        answer = _decode(content)
    except (msgspec.DecodeError, RecursionError) as error:
        raise InferenceRejected(f"vLLM answered with a body that is not JSON: {error}") from None
    if not isinstance(answer, dict):
        raise InferenceRejected("vLLM answered with JSON that is not an object")
    return answer


def _refusal(status: int, content: bytes) -> Exception:
    reason = _reason(content)
    if status == 503 or "EngineDead" in reason:
        return InferenceUnavailable(f"vLLM answered HTTP {status}: {reason}")
    return InferenceRejected(f"vLLM answered HTTP {status}: {reason}", status)


def _reason(content: bytes) -> str:
    """vLLM's message: `{"error": {"message"}}`, `{"message"}` or FastAPI's `{"detail"}`; else the body."""
    try:
        body = _decode(content)
    except (msgspec.DecodeError, RecursionError):
        return content[:1000].decode("utf-8", "replace")
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict):
        for key in ("message", "detail"):
            if inner.get(key):
                return str(inner[key])[:1000]
    return str(body)[:1000]

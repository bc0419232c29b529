"""vLLM's answers that are not results, as the worker's errors: the one place that reads vLLM's refusals."""

from typing import Any

import msgspec

from domain.errors import InferenceRejected, InferenceUnavailable

_decode = msgspec.json.Decoder().decode


def refusal(status: int, content: bytes) -> Exception:
    """A 503 or a dead engine means vLLM cannot serve now; any other error status refuses this request."""
    reason = reason_of(content)
    if status == 503 or "EngineDead" in reason:
        return InferenceUnavailable(f"vLLM answered HTTP {status}: {reason}")
    return InferenceRejected(f"vLLM answered HTTP {status}: {reason}", status)


def reason_of(content: bytes) -> str:
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


def result_of(content: bytes) -> dict[str, Any]:
    """A success's body, which must be a JSON object."""
    try:
        answer = _decode(content)
    except (msgspec.DecodeError, RecursionError) as error:
        raise InferenceRejected(f"vLLM answered with a body that is not JSON: {error}") from None
    if not isinstance(answer, dict):
        raise InferenceRejected("vLLM answered with JSON that is not an object")
    return answer

"""Job kinds as one table: each kind's names, payload model, vLLM route and runner, how its request is sent and
its answer comes back, and its result fields.

Adding a kind is one entry in `KINDS` and its payload model: nothing else branches on a kind. The runner makes one
`VllmRequest` from the kind and the payload (`exchange.py`), whatever the kind.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from domain.audio_payloads import TranscriptionPayload, TranslationPayload, transcript_response, transcript_result
from domain.conversation_payloads import AnthropicMessagesPayload, ResponsesPayload
from domain.errors import ErrorCategory, InferenceRejected, JobFailed
from domain.exchange import Answered, FilePart, Sent, VllmRequest
from domain.generation_payloads import ChatBatchPayload, ChatPayload, CompletionPayload
from domain.payloads import ClassifyPayload, EmbeddingsPayload, JobPayload, RerankPayload, ScorePayload
from domain.speech_payloads import SpeechPayload, speech_response, speech_result
from domain.token_payloads import DetokenizePayload, TokenizePayload

Runner = Literal["generate", "pooling", "classify", "speech", "omni", "any"]
RUNNER_FLAGS: dict[Runner, str] = {
    "generate": "a generate model (without --runner pooling)",
    "pooling": "a pooling model (--runner pooling --convert embed in VLLM_EXTRA_ARGS)",
    "classify": "a classification model (--runner pooling --convert classify in VLLM_EXTRA_ARGS)",
    "any": "a vLLM that serves its tokenizer routes (any model)",
    "omni": "vLLM-Omni serving a text-to-speech model (VLLM_SERVE_COMMAND=vllm-omni, e.g. Qwen/Qwen3-TTS-12Hz-1.7B-"
    "CustomVoice; vLLM-Omni runs on CUDA, ROCm, NPU, XPU or MUSA GPUs only)",
    "speech": "a speech-to-text model (a Whisper-family VLLM_MODEL such as openai/whisper-large-v3, and vLLM with "
    "its audio extras: pip install 'vllm[audio]')",
}
TOOL_FLAGS = "--enable-auto-tool-choice --tool-call-parser <the model's parser, e.g. hermes>"


@dataclass(frozen=True)
class JobKind:
    task: str  # the kind's own name, sent back as the result's `task`
    names: frozenset[str]  # what a job may call it: `job_type`, `payload.task` or `payload.job_type`
    payload: type[JobPayload]
    route: str  # vLLM's OpenAI-compatible route
    runner: Runner  # how vLLM must be started to serve the route
    result_field: str  # the result field that holds vLLM's answer
    # The result's fields from vLLM's answer and the body sent, when the queue reads another shape than the answer
    result_fields: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    openai_response: Callable[[dict[str, Any], str], dict[str, Any]] | None = None  # the way back from that shape
    sent: Sent = "json"  # "form": a multipart form, the payload's file (`JobPayload.attachment`) its `file` part
    answered: Answered = "json"  # "bytes": vLLM answers with audio, not JSON; `result_fields` makes it the result

    def request(self, body: dict[str, Any], request_id: str | None, file: FilePart | None) -> VllmRequest:
        """The exchange with vLLM for a job of this kind."""
        return VllmRequest(self.route, body, request_id, self.sent, self.answered, file)

    def result(self, output: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The result's kind-specific fields, from vLLM's answer to `body`."""
        return self.result_fields(output, body) if self.result_fields else {self.result_field: output}

    def job_result(
        self, job_type: str, config_id: str, output: dict[str, Any], body: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """The result the worker returns (the seed's format); `output` is the OpenAI object vLLM returned."""
        return {
            "status": "success",
            "job_type": job_type,
            "task": self.task,
            "config_id": config_id,
            "processed_at": processed_at(now),
        } | self.result(output, body)  # the kind's fields never name the envelope's (see transcript_result)

    def response(self, result: dict[str, Any], model: str) -> dict[str, Any]:
        """The OpenAI response a REST front answers with, from this kind's result."""
        return self.openai_response(result, model) if self.openai_response else dict(result[self.result_field])

    def explained(self, rejected: InferenceRejected, body: dict[str, Any]) -> Exception:
        """vLLM's refusal, with what the operator must change when vLLM lacks the capability; an audio job's 400 is
        the payload's fault, named by its field."""
        if rejected.status == 400 and (self.sent == "form" or self.answered == "bytes"):
            return JobFailed(ErrorCategory.INVALID_PAYLOAD, f"{refused_field(str(rejected), body)}: {rejected}")
        if rejected.status == 404:
            hint = f"this vLLM does not serve {self.route}: {self.task} jobs need {RUNNER_FLAGS[self.runner]}"
            return InferenceRejected(hint, rejected.status)
        if rejected.status == 400 and body.get("tools") and "tool-call-parser" in str(rejected):
            hint = f"{rejected}; tool calling needs vLLM started with {TOOL_FLAGS}: add both to VLLM_EXTRA_ARGS"
            return InferenceRejected(hint, rejected.status)
        return rejected


def refused_field(reason: str, body: dict[str, Any]) -> str:
    """The payload field vLLM's 400 is about: one it names, the audio when it speaks of audio, else the payload."""
    named = next((name for name in body if name != "model" and name in reason), None)
    return named or ("audio" if "audio" in reason.lower() or "file" in reason.lower() else "payload")


def processed_at(now: datetime) -> str:
    """ISO 8601 with milliseconds and a `Z`, as in the seed: 2024-01-29T12:00:00.000Z."""
    return f"{now.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='milliseconds')}Z"


def embeddings_result(output: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The queue's embeddings format: `[{index, embedding}]` with the token counts beside it."""
    data, usage = output.get("data"), output.get("usage") or {}
    if not isinstance(data, list) or not all(isinstance(item, dict) and "embedding" in item for item in data):
        raise InferenceRejected("vLLM's embeddings answer has no list of embeddings")
    return {
        "embeddings": [{"index": item.get("index", i), "embedding": item["embedding"]} for i, item in enumerate(data)],
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
    }


def embeddings_response(result: dict[str, Any], model: str) -> dict[str, Any]:
    """The OpenAI embeddings list the queue's REST front builds from the result."""
    return {
        "object": "list",
        "data": [{"object": "embedding", **item} for item in result["embeddings"]],
        "model": model,
        "usage": {"prompt_tokens": result["prompt_tokens"], "total_tokens": result["total_tokens"]},
    }


CHAT = JobKind(
    task="openai/chat-completion",
    names=frozenset({"chat_completion", "llm_inference", "openai/chat-completion"}),
    payload=ChatPayload,
    route="/v1/chat/completions",
    runner="generate",
    result_field="completion",
)
COMPLETION = JobKind(
    task="openai/completion",
    names=frozenset({"openai/completion"}),
    payload=CompletionPayload,
    route="/v1/completions",
    runner="generate",
    result_field="completion",
)
EMBEDDINGS = JobKind(
    task="openai/embeddings",
    names=frozenset({"openai/embeddings"}),
    payload=EmbeddingsPayload,
    route="/v1/embeddings",
    runner="pooling",
    result_field="embeddings",
    result_fields=embeddings_result,
    openai_response=embeddings_response,
)
SCORE = JobKind(
    task="vllm/score",
    names=frozenset({"vllm/score"}),
    payload=ScorePayload,
    route="/v1/score",
    runner="pooling",
    result_field="score",
)
RERANK = JobKind(
    task="vllm/rerank",
    names=frozenset({"vllm/rerank"}),
    payload=RerankPayload,
    route="/v1/rerank",
    runner="pooling",
    result_field="rerank",
)
TRANSCRIPTION = JobKind(
    task="openai/audio-transcription",
    names=frozenset({"openai/audio-transcription"}),
    payload=TranscriptionPayload,
    route="/v1/audio/transcriptions",
    runner="speech",
    result_field="text",
    result_fields=transcript_result,
    openai_response=transcript_response,
    sent="form",
)
TRANSLATION = JobKind(
    task="openai/audio-translation",
    names=frozenset({"openai/audio-translation"}),
    payload=TranslationPayload,
    route="/v1/audio/translations",
    runner="speech",
    result_field="text",
    result_fields=transcript_result,
    openai_response=transcript_response,
    sent="form",
)
SPEECH = JobKind(
    task="openai/audio-speech",
    names=frozenset({"openai/audio-speech"}),
    payload=SpeechPayload,
    route="/v1/audio/speech",
    runner="omni",
    result_field="audio_base64",
    result_fields=speech_result,
    openai_response=speech_response,
    answered="bytes",
)
RESPONSES = JobKind(
    task="openai/responses",
    names=frozenset({"openai/responses"}),
    payload=ResponsesPayload,
    route="/v1/responses",
    runner="generate",
    result_field="response",
)
MESSAGES = JobKind(
    task="anthropic/messages",
    names=frozenset({"anthropic/messages"}),
    payload=AnthropicMessagesPayload,
    route="/v1/messages",
    runner="generate",
    result_field="message",
)
CHAT_BATCH = JobKind(
    task="openai/chat-batch",
    names=frozenset({"openai/chat-batch"}),
    payload=ChatBatchPayload,
    route="/v1/chat/completions/batch",
    runner="generate",
    result_field="completion",
)
TOKENIZE = JobKind(
    task="vllm/tokenize",
    names=frozenset({"vllm/tokenize"}),
    payload=TokenizePayload,
    route="/tokenize",
    runner="any",
    result_field="tokenized",
)
DETOKENIZE = JobKind(
    task="vllm/detokenize",
    names=frozenset({"vllm/detokenize"}),
    payload=DetokenizePayload,
    route="/detokenize",
    runner="any",
    result_field="detokenized",
)
CLASSIFY = JobKind(
    task="vllm/classify",
    names=frozenset({"vllm/classify"}),
    payload=ClassifyPayload,
    route="/classify",
    runner="classify",
    result_field="classification",
)
KINDS = (
    CHAT, COMPLETION, EMBEDDINGS, SCORE, RERANK, TRANSCRIPTION, TRANSLATION, SPEECH,
    RESPONSES, MESSAGES, CHAT_BATCH, TOKENIZE, DETOKENIZE, CLASSIFY,
)  # fmt: skip
DEFAULT_KIND, DEFAULT_NAME = CHAT, "chat_completion"  # a job that names no kind

_BY_NAME = {name: kind for kind in KINDS for name in kind.names}
SUPPORTED_NAMES = ", ".join(sorted(_BY_NAME))


def kind_name(job_type: str | None, payload: dict[str, Any]) -> str | None:
    """The first of the frame's `job_type`, `payload.task`, `payload.job_type`."""
    for name in (job_type, payload.get("task"), payload.get("job_type")):
        if name is not None:
            return str(name)
    return None


def resolve_kind(job_type: str | None, payload: dict[str, Any]) -> tuple[JobKind, str]:
    """The job's kind and the name it was given (the seed's `job_type` in results)."""
    name = kind_name(job_type, payload)
    if name is None:
        return DEFAULT_KIND, DEFAULT_NAME
    kind = _BY_NAME.get(name)
    if kind is None:
        raise JobFailed(ErrorCategory.UNSUPPORTED_JOB_TYPE, f"{name!r} is not supported; supported: {SUPPORTED_NAMES}")
    return kind, name

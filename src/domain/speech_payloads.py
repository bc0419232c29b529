"""The speech kind's payload: text to speech on vLLM-Omni's `/v1/audio/speech`, each field of its request model
(`OpenAICreateSpeechRequest`) typed and checked; the answer is the audio itself, returned base64 in the result."""

import base64
import math
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator

from domain.errors import InferenceRejected
from domain.payloads import JobPayload, Options

MAX_EMBEDDING = 8192  # vLLM-Omni's own bound on a speaker embedding


class SpeechPayload(JobPayload):
    """vLLM-Omni's speech request: the text, the voice, and the model's own knobs; streaming refused."""

    INPUTS = frozenset({"input"})

    input: Annotated[str, Field(min_length=1)]
    voice: str | None = Field(default=None, validation_alias=AliasChoices("voice", "speaker"))
    instructions: str | None = None
    response_format: Literal["wav", "pcm", "flac", "mp3", "aac", "opus"] | None = None
    speed: Annotated[float, Field(ge=0.25, le=4.0)] | None = None
    stream_format: Literal["audio"] | None = None  # vLLM-Omni refuses "sse"; "audio" only matters when streaming
    task_type: Literal["CustomVoice", "VoiceDesign", "Base"] | None = None
    language: str | None = None
    ref_audio: str | None = None
    ref_text: str | None = None
    x_vector_only_mode: bool | None = None
    speaker_embedding: Annotated[list[float], Field(min_length=1, max_length=MAX_EMBEDDING)] | None = None
    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    initial_codec_chunk_frames: Annotated[int, Field(ge=0)] | None = None
    extra_params: Options | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_voice_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "voice" in data and "speaker" in data:
            raise ValueError("give voice or speaker (the same field), not both")
        return data

    @field_validator("speaker_embedding")
    @classmethod
    def _finite(cls, embedding: list[float] | None) -> list[float] | None:
        if embedding is not None and not all(math.isfinite(value) for value in embedding):
            raise ValueError("every value must be finite")
        return embedding

    @model_validator(mode="after")
    def _embedding_or_reference(self) -> Self:
        if self.speaker_embedding is not None and self.ref_audio is not None:
            raise ValueError("speaker_embedding and ref_audio exclude each other")
        return self


def speech_result(output: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The result the queue's speech route reads, from vLLM-Omni's answer (the audio's bytes): the audio base64, its
    format (the one asked for, else vLLM-Omni's default, wav) and content type."""
    content_type = str(output["content_type"])
    if not content_type.startswith(("audio/", "application/octet-stream")):
        raise InferenceRejected(f"vLLM answered {content_type}, not audio")
    audio = base64.b64encode(output["content"]).decode()
    return {"audio_base64": audio, "format": body.get("response_format") or "wav", "content_type": content_type}


def speech_response(result: dict[str, Any], model: str) -> dict[str, Any]:
    """What a REST front answers with: the same fields, whose audio it sends back as bytes."""
    return {name: result[name] for name in ("audio_base64", "format", "content_type")}

"""A stand-in for vLLM-Omni's `/v1/audio/speech` (vLLM-Omni runs on GPUs only): its request model
(`vllm_omni.entrypoints.openai.protocol.audio.OpenAICreateSpeechRequest`) copied field by field, its 400 for a
request that fails it, and audio bytes in the asked format for one that passes."""

import io
import json
import math
import wave
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator, model_validator

MEDIA_TYPES = {
    "wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "mp3": "audio/mpeg", "aac": "audio/aac",
    "opus": "audio/ogg",
}  # fmt: skip


class OpenAICreateSpeechRequest(BaseModel):
    """vLLM-Omni's own model (its extra keys are ignored, as pydantic's default does)."""

    input: str
    model: str | None = None
    voice: str | None = Field(default=None, validation_alias=AliasChoices("voice", "speaker"))
    instructions: str | None = None
    response_format: Literal["wav", "pcm", "flac", "mp3", "aac", "opus"] = "wav"
    speed: float | None = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["sse", "audio"] | None = "audio"
    stream: bool = False
    task_type: Literal["CustomVoice", "VoiceDesign", "Base"] | None = None
    language: str | None = None
    ref_audio: str | None = None
    ref_text: str | None = None
    x_vector_only_mode: bool | None = None
    speaker_embedding: list[float] | None = Field(default=None, max_length=8192)
    max_new_tokens: int | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    initial_codec_chunk_frames: int | None = Field(default=None, ge=0)
    extra_params: dict[str, Any] | None = None

    @field_validator("stream_format")
    @classmethod
    def _no_sse(cls, value: str) -> str:
        if value == "sse":
            raise ValueError("'sse' is not a supported stream_format yet. Please use 'audio'.")
        return value

    @field_validator("speaker_embedding")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(math.isfinite(x) for x in value):
            raise ValueError("'speaker_embedding' values must be finite (no NaN or Inf)")
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> "OpenAICreateSpeechRequest":
        if self.speaker_embedding is not None and self.ref_audio is not None:
            raise ValueError("'speaker_embedding' and 'ref_audio' are mutually exclusive")
        return self


FIELDS = frozenset({*OpenAICreateSpeechRequest.model_fields, "speaker"})


def omni_speech(body: dict[str, Any]) -> tuple[int, bytes, str]:
    """vLLM-Omni's answer: 400 with its error object, or the audio (a WAV of silence, a second a 20 characters)."""
    try:
        request = OpenAICreateSpeechRequest.model_validate(body)
    except ValidationError as error:
        message = json.dumps({"error": {"message": str(error), "type": "BadRequestError", "code": 400}})
        return 400, message.encode(), "application/json"
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(24000)
        audio.writeframes(b"\0\0" * 24000 * max(1, len(request.input) // 20))
    return 200, out.getvalue(), MEDIA_TYPES[request.response_format]

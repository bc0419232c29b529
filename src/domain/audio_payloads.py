"""The audio kinds' payloads: transcription and translation, as vLLM's speech-to-text routes take them (a multipart
form: the audio as its `file`, each other field a form field), with the audio given inline (`audio_base64`) or by
URL (`audio_url`, under the same address rules and deadline as `payload_url`)."""

import base64
import binascii
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from domain.errors import InferenceRejected
from domain.exchange import Attachment, FilePart
from domain.payloads import Int64, JobPayload, Penalty, choices_within_cap, limits_of
from domain.urls import http_url

FORMATS_REFUSED = {
    "srt": "vLLM answers 400 to srt; ask for verbose_json, whose segments carry the times",
    "vtt": "vLLM answers 400 to vtt; ask for verbose_json, whose segments carry the times",
    "diarized_json": "Whisper models do not diarize (vLLM answers 400)",
}
STREAMING = "the queue returns one result, so streaming is refused"
FORM_REFUSED = {
    "stream_include_usage": STREAMING,
    "stream_continuous_usage_stats": STREAMING,
    "vllm_xargs": "vLLM reads its speech routes as a form, and a form field cannot carry an object",
}
# A file name as a form carries it: no path, quote, backslash or control character, nor space at either end.
FILENAME = r'^[^/\\"\x00-\x1f\x7f\s](?:[^/\\"\x00-\x1f\x7f]{0,253}[^/\\"\x00-\x1f\x7f\s])?$'
FORM_NAMES = {"timestamp_granularities": "timestamp_granularities[]"}  # vLLM's alias in its form

# The formats vLLM decodes (soundfile or PyAV), by their first bytes: a file's content type when the payload gives none.
SIGNATURES: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"RIFF", "audio/wav", "wav"),
    (0, b"fLaC", "audio/flac", "flac"),
    (0, b"OggS", "audio/ogg", "ogg"),
    (0, b"ID3", "audio/mpeg", "mp3"),
    (0, b"\xff\xfb", "audio/mpeg", "mp3"),
    (0, b"\xff\xf3", "audio/mpeg", "mp3"),
    (0, b"\xff\xf2", "audio/mpeg", "mp3"),
    (0, b"\x1a\x45\xdf\xa3", "audio/webm", "webm"),
    (4, b"ftyp", "audio/mp4", "m4a"),
)
EXTENSIONS = {content_type: extension for _, _, content_type, extension in SIGNATURES}


def audio_file(data: bytes, filename: str | None, content_type: str | None) -> FilePart:
    """The file part for `data`: the payload's filename and content type, else what its first bytes say."""
    sniffed = next(((kind, ext) for at, magic, kind, ext in SIGNATURES if data[at : at + len(magic)] == magic), None)
    kind = content_type or (sniffed[0] if sniffed else "application/octet-stream")
    return FilePart(data, filename or f"audio.{EXTENSIONS.get(kind, 'bin')}", kind)


def form_fields(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The request body as vLLM's form fields: a list repeated under its form name, true and false as JSON."""
    fields: list[tuple[str, str]] = []
    for name, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            fields.append((FORM_NAMES.get(name, name), text))
    return fields


class TranslationPayload(JobPayload):
    """vLLM's translation request (into English, or `to_language`), with the audio inline or by URL."""

    INPUTS = frozenset({"audio_base64", "audio_url"})
    NOT_SENT = JobPayload.NOT_SENT | {"audio_base64", "audio_url", "filename", "content_type"}
    RULED_OWN = frozenset(FORM_REFUSED)
    WIRE_NAMES = FORM_NAMES

    audio_base64: Annotated[str, Field(min_length=1)] | None = None
    audio_url: Annotated[str, AfterValidator(http_url)] | None = None
    filename: Annotated[str, Field(pattern=FILENAME)] | None = None
    content_type: Annotated[str, Field(pattern=r"^(audio|video)/[a-z0-9.+-]{1,64}$")] | None = None
    language: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    hotwords: str | None = None
    to_language: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "verbose_json"] | None = None
    use_beam_search: bool | None = None
    n: Annotated[int, Field(ge=1)] | None = None
    length_penalty: float | None = None
    include_stop_str_in_output: bool | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    watermarking: bool | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    seed: Int64 | None = None
    frequency_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] | None = None
    presence_penalty: Penalty | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None

    _audio: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _form_refusals(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refused = [f"{name}: {why}" for name, why in FORM_REFUSED.items() if data.get(name)]
            if data.get("stream"):  # named with the rest: the shared refusals come after this check
                refused.insert(0, f"stream: {STREAMING}")
            if data.get("response_format") in FORMATS_REFUSED:
                refused.append(f"response_format: {FORMATS_REFUSED[data['response_format']]}")
            if refused:
                raise ValueError("; ".join(refused))
        return data

    @field_validator("n")
    @classmethod
    def _choices_capped(cls, n: int | None, info: ValidationInfo) -> int | None:
        return choices_within_cap(n, info)

    @model_validator(mode="after")
    def _one_audio(self, info: ValidationInfo) -> Self:
        if (self.audio_base64 is None) == (self.audio_url is None):
            raise ValueError("give the audio once: audio_base64 or audio_url")
        cap = limits_of(info).max_audio_bytes
        if self.audio_base64 is not None:
            if len(self.audio_base64) // 4 * 3 > cap + 2:  # judged before decoding: a huge string is not decoded
                raise ValueError(f"audio_base64: the audio is over {cap} bytes (CASOLA_MAX_AUDIO_BYTES)")
            try:
                self._audio = base64.b64decode(self.audio_base64, validate=True)
            except binascii.Error as error:
                raise ValueError(f"audio_base64: not base64 ({error})") from None
            if len(self._audio) > cap:
                raise ValueError(f"audio_base64: the audio is over {cap} bytes (CASOLA_MAX_AUDIO_BYTES)")
            if not self._audio:
                raise ValueError("audio_base64: the audio is empty")
        return self

    @property
    def inline_audio(self) -> bytes | None:
        """The audio given in the payload, decoded; None when it is given by URL."""
        return self._audio

    def attachment(self) -> Attachment:
        return Attachment(self._audio, None if self.audio_url is None else str(self.audio_url), "audio_url")

    def file_part(self, data: bytes) -> FilePart:
        return audio_file(data, self.filename, self.content_type)


class TranscriptionPayload(TranslationPayload):
    """vLLM's transcription request: a translation's fields and the timestamps asked for."""

    timestamp_granularities: Annotated[list[Literal["word", "segment"]], Field(max_length=2)] | None = None

    @model_validator(mode="after")
    def _timestamps_in_verbose_json(self) -> Self:
        if self.timestamp_granularities and self.response_format != "verbose_json":
            raise ValueError("timestamp_granularities: needs response_format verbose_json")
        return self


ENVELOPE = frozenset({"status", "job_type", "task", "config_id", "processed_at"})  # the result's own fields


def transcript_result(output: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result the queue's front reads: the transcript under `text` at the top level, vLLM's other answer fields
    (`language`, `duration`, `segments`, `words`, `usage`) beside it. vLLM's `task` ("transcribe") is left out: the
    result's own `task` names the kind."""
    if not isinstance(output.get("text"), str):
        raise InferenceRejected("vLLM's speech-to-text answer has no text")
    return {name: value for name, value in output.items() if name not in ENVELOPE}


def transcript_response(result: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI's transcription or translation object, from the result: its fields less the result's own."""
    return transcript_result(result)

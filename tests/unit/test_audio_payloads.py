"""The audio kinds' payloads: one audio source, checked and capped before vLLM sees it; the file part and the form."""

import asyncio
import base64
import email.parser
import email.policy

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.audio_payloads import EXTENSIONS, TranscriptionPayload, TranslationPayload, audio_file, form_fields
from domain.errors import JobFailed
from domain.payloads import PayloadLimits
from domain.request_body import request_body, validate_payload
from domain.speech_payloads import SpeechPayload

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


def inline(data: bytes = WAV) -> str:
    return base64.b64encode(data).decode()


def refused(payload: dict[str, object], limits: PayloadLimits | None = None) -> str:
    with pytest.raises(JobFailed) as failed:
        validate_payload(TranscriptionPayload, payload, limits=limits)
    return failed.value.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "give the audio once: audio_base64 or audio_url"),
        ({"audio_base64": inline(), "audio_url": "https://a.example/x.wav"}, "give the audio once"),
        ({"audio_base64": "not base64!"}, "audio_base64: not base64"),
        ({"audio_base64": ""}, "audio_base64"),
        ({"audio_url": "file:///etc/passwd"}, "audio_url"),
        ({"audio_base64": inline(), "response_format": "srt"}, "response_format: vLLM answers 400 to srt"),
        ({"audio_base64": inline(), "response_format": "diarized_json"}, "Whisper models do not diarize"),
        ({"audio_base64": inline(), "vllm_xargs": {"a": 1}}, "vllm_xargs: vLLM reads its speech routes as a form"),
        ({"audio_base64": inline(), "stream": True, "stream_include_usage": True}, "stream: the queue returns one"),
        ({"audio_base64": inline(), "timestamp_granularities": ["word"]}, "needs response_format verbose_json"),
        ({"audio_base64": inline(), "filename": 'a"b.wav'}, "filename"),
        ({"audio_base64": inline(), "n": 9}, "at most 8 choices per job (CASOLA_MAX_CHOICES)"),
        ({"audio_base64": inline(), "user": "u"}, "user"),  # the text routes' field: vLLM's speech routes lack it
    ],
)
def test_a_bad_audio_payload_is_refused_naming_the_field(payload: dict[str, object], reason: str) -> None:
    assert reason in refused(payload)


def test_the_audio_is_capped_before_and_after_decoding() -> None:
    limits = PayloadLimits(max_audio_bytes=10)
    assert "over 10 bytes (CASOLA_MAX_AUDIO_BYTES)" in refused({"audio_base64": inline(b"x" * 11)}, limits)
    assert "over 10 bytes" in refused({"audio_base64": "A" * 10_000}, limits)
    valid = validate_payload(TranslationPayload, {"audio_base64": inline(b"x" * 10)}, limits=limits)
    assert isinstance(valid.request, TranslationPayload) and valid.request.inline_audio == b"x" * 10


def test_the_form_holds_every_field_given_but_the_audio_and_names_the_list_as_vllm_does() -> None:
    payload = {
        "audio_base64": inline(), "filename": "a.wav", "language": "en", "temperature": 0.0, "use_beam_search": False,
        "response_format": "verbose_json", "timestamp_granularities": ["word", "segment"], "extra_body": {"top_k": 5},
    }  # fmt: skip
    body = request_body(validate_payload(TranscriptionPayload, payload), "whisper")
    assert form_fields(body) == [
        ("language", "en"),
        ("temperature", "0.0"),
        ("use_beam_search", "false"),
        ("response_format", "verbose_json"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
        ("top_k", "5"),
        ("model", "whisper"),
    ]


@pytest.mark.parametrize(
    ("head", "content_type", "filename"),
    [
        (WAV, "audio/wav", "audio.wav"),
        (b"fLaC\x00", "audio/flac", "audio.flac"),
        (b"OggS\x00", "audio/ogg", "audio.ogg"),
        (b"ID3\x04", "audio/mpeg", "audio.mp3"),
        (b"\x1a\x45\xdf\xa3", "audio/webm", "audio.webm"),
        (b"\x00\x00\x00\x20ftypM4A ", "audio/mp4", "audio.m4a"),
        (b"plain text", "application/octet-stream", "audio.bin"),
    ],
)
def test_the_file_part_is_sniffed_when_the_payload_names_none(head: bytes, content_type: str, filename: str) -> None:
    assert audio_file(head, None, None)[1:] == (filename, content_type)
    assert audio_file(head, "mine.ogg", "audio/ogg")[1:] == ("mine.ogg", "audio/ogg")


@given(st.binary(max_size=64))
def test_any_bytes_make_a_file_part(data: bytes) -> None:
    part = audio_file(data, None, None)
    assert part.data == data
    assert part.content_type in {*EXTENSIONS, "application/octet-stream"}
    assert part.filename.startswith("audio.")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": "hi", "speed": 5}, "speed"),
        ({"input": "hi", "response_format": "ogg"}, "response_format"),
        ({"input": "hi", "stream_format": "sse"}, "stream_format"),
        ({"input": "hi", "seed": -1}, "seed"),
        ({"input": "hi", "speaker_embedding": [0.1], "ref_audio": "x"}, "speaker_embedding and ref_audio exclude"),
        ({"input": "hi", "speaker_embedding": [0.0] * 8193}, "speaker_embedding"),
        ({"input": "hi", "voice": "a", "speaker": "b"}, "give voice or speaker"),
        ({"input": "hi", "stream": True}, "stream: the queue returns one result"),
        ({"input": "hi", "user": "u"}, "user"),
    ],
)
def test_a_bad_speech_payload_is_refused_naming_the_field(payload: dict[str, object], reason: str) -> None:
    with pytest.raises(JobFailed) as failed:
        validate_payload(SpeechPayload, payload)
    assert reason in failed.value.reason


def test_a_speech_body_is_the_payload_as_given_with_the_served_model() -> None:
    payload = {"input": "Hello", "speaker": "ryan", "response_format": "mp3", "extra_params": {"a": 1}}
    assert request_body(validate_payload(SpeechPayload, payload), "tts") == payload | {"model": "tts"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_a_filename_that_passes_cannot_break_the_form(name: str) -> None:
    """The queue is untrusted: a file name the payload allows is sent as is and read back as is, in one part."""
    try:
        valid = validate_payload(TranscriptionPayload, {"audio_base64": inline(), "filename": name})
    except JobFailed:
        return
    assert isinstance(valid.request, TranscriptionPayload) and valid.request.filename == name
    form = aiohttp.FormData(quote_fields=False)  # as the vLLM adapter writes it
    form.add_field("model", "m")
    form.add_field("file", WAV, filename=name, content_type="audio/wav")
    writer = form()
    content = asyncio.run(writer.as_bytes())
    head = f"Content-Type: {writer.content_type}\r\n\r\n".encode()
    parts = list(email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + content).iter_parts())
    assert [part.get_param("name", header="content-disposition") for part in parts] == ["model", "file"]
    assert parts[1].get_filename() == name and parts[1].get_payload(decode=True) == WAV

"""Audio jobs through the real worker: transcription and translation (the queue's payload to vLLM's multipart form
and back), and speech (vLLM-Omni's audio back base64), against the fake vLLM's audio routes on 127.0.0.1."""

import base64
import io
import logging
import wave

import pytest
from testbed.fake_vllm import FakeVllm
from testbed.omni_speech import FIELDS as OMNI_FIELDS
from testbed.scripted_queue import ScriptedQueue

from domain.speech_payloads import SpeechPayload
from tests.fakes.audio import audio_job, wav
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import StartWorker


async def test_a_transcription_job_sends_the_audio_as_vllms_form_and_returns_its_answer(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    await start_worker()
    audio = wav(2.0)
    await queue.push(
        audio_job(
            "t1", audio_base64=base64.b64encode(audio).decode(), language="en", temperature=0.2,
            max_completion_tokens=3, response_format="verbose_json", timestamp_granularities=["word", "segment"],
        )
    )  # fmt: skip
    frame = await queue.wait_for_type("job_result", "t1")
    result = frame["result"]
    assert (result["task"], result["job_type"], result["status"]) == (
        "openai/audio-transcription",
        "openai/audio-transcription",
        "success",
    )
    # PROTOCOL.md: the transcript at the top level, where the queue's front reads it, vLLM's other fields beside it
    assert result["text"] == "word word word" and result["duration"] == 2 and result["language"] == "en"
    assert result["segments"][0]["end"] == 2.0 and result["words"][0]["word"] == "word"
    assert set(result) == {"status", "job_type", "task", "config_id", "processed_at", "text", "language", "duration",
                           "segments", "words"}  # fmt: skip
    form = fake_vllm.record.requests[0]
    assert form["file"] == {"filename": "audio.wav", "content_type": "audio/wav", "data": audio}
    assert (form["model"], form["language"], form["temperature"]) == ("default", "en", "0.2")
    assert form["timestamp_granularities"] == ["word", "segment"]  # sent as timestamp_granularities[]
    assert not {"audio_base64", "audio_url", "filename", "content_type"} & set(form)
    assert fake_vllm.record.request_ids == ["t1"]
    assert any(line.startswith("job t1 done in") and line.endswith("(2 s of audio)") for line in caplog.messages)


async def test_a_translation_job_by_audio_url_with_the_callers_file_name(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    audio = wav()
    fake_api.documents["/audio/1"] = (200, audio, {"Content-Type": "audio/wav"})
    await start_worker(CASOLA_PAYLOAD_ALLOWED_HOSTS=f"127.0.0.1:{fake_api.server_port}")
    job = audio_job(
        "tr", "openai/audio-translation", audio_url=f"{fake_api.url}/audio/1", filename="call 12.wav",
        content_type="audio/x-wav",
    )  # fmt: skip
    await queue.push(job)
    result = (await queue.wait_for_type("job_result", "tr"))["result"]
    assert result["task"] == "openai/audio-translation"
    assert (result["text"], result["usage"]) == ("word " * 4 + "word", {"type": "duration", "seconds": 1})
    assert "translation" not in result
    form = fake_vllm.record.requests[0]
    assert form["file"] == {"filename": "call 12.wav", "content_type": "audio/x-wav", "data": audio}


async def test_bad_audio_fails_its_job_naming_the_field(
    queue: ScriptedQueue, fake_vllm: FakeVllm, fake_api: FakeApi, start_worker: StartWorker
) -> None:
    fake_api.documents["/big"] = (200, wav(2.0), {})
    await start_worker(
        CASOLA_MAX_JOBS=4, CASOLA_MAX_AUDIO_BYTES=40_000,
        CASOLA_PAYLOAD_ALLOWED_HOSTS=f"127.0.0.1:{fake_api.server_port}",
    )  # fmt: skip
    inline = base64.b64encode(wav()).decode()
    await queue.push(audio_job("corrupt", audio_base64=base64.b64encode(b"not audio at all").decode()))
    await queue.push(audio_job("language", audio_base64=inline, language="xx"))
    await queue.push(audio_job("too-big", audio_url=f"{fake_api.url}/big"))
    await queue.push(audio_job("stream", audio_base64=inline, stream=True, response_format="srt"))
    errors = {job: (await queue.wait_for_type("job_error", job))["error"] for job in ("corrupt", "language")}
    assert errors["corrupt"] == "invalid_payload: audio: vLLM answered HTTP 400: Invalid or corrupted audio data"
    assert errors["language"].startswith("invalid_payload: language: vLLM answered HTTP 400: Unsupported language")
    too_big = (await queue.wait_for_type("job_error", "too-big"))["error"]
    assert too_big == "invalid_payload: audio_url: larger than the 40000 byte cap (CASOLA_MAX_AUDIO_BYTES)"
    stream = (await queue.wait_for_type("job_error", "stream"))["error"]
    assert stream.startswith("invalid_payload: ") and "stream: the queue returns one result" in stream
    assert len(fake_vllm.record.requests) == 2  # the too big and the streaming job never reached vLLM


async def test_a_vllm_serving_no_speech_model_is_named_with_what_to_change(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.runner = "generate"
    await start_worker()
    await queue.push(audio_job("nospeech", audio_base64=base64.b64encode(wav()).decode()))
    error = (await queue.wait_for_type("job_error", "nospeech"))["error"]
    assert error.startswith("inference_error: this vLLM does not serve /v1/audio/transcriptions")
    assert "a speech-to-text model (a Whisper-family VLLM_MODEL" in error and "vllm[audio]" in error


async def test_a_speech_job_returns_vllm_omnis_audio_base64_with_its_format(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    fake_vllm.behaviour.runner = "omni"
    await start_worker(CASOLA_MAX_JOBS=4)
    speech = "openai/audio-speech"
    await queue.push(audio_job("wav", speech, input="Hello there, how are you?", voice="vivian", speed=1.5))
    await queue.push(audio_job("mp3", speech, input="Hi", speaker="ryan", response_format="mp3", seed=3))
    await queue.push(audio_job("sse", speech, input="Hi", stream=True, stream_format="sse"))
    await queue.push(audio_job("two", speech, input="Hi", voice="a", speaker="b"))
    wav_result = (await queue.wait_for_type("job_result", "wav"))["result"]
    assert (wav_result["task"], wav_result["format"], wav_result["content_type"]) == (
        "openai/audio-speech",
        "wav",
        "audio/wav",
    )
    with wave.open(io.BytesIO(base64.b64decode(wav_result["audio_base64"]))) as audio:
        assert (audio.getframerate(), audio.getnframes()) == (24000, 24000)
    assert any(line.endswith("(48044 bytes of wav audio)") for line in caplog.messages)
    mp3 = (await queue.wait_for_type("job_result", "mp3"))["result"]
    assert (mp3["format"], mp3["content_type"]) == ("mp3", "audio/mpeg")
    sent = {request["input"]: request for request in fake_vllm.record.requests}
    assert sent["Hello there, how are you?"] == {
        "input": "Hello there, how are you?", "voice": "vivian", "speed": 1.5, "model": "default",
    }  # fmt: skip
    assert sent["Hi"]["speaker"] == "ryan" and "job_type" not in sent["Hi"]
    sse = (await queue.wait_for_type("job_error", "sse"))["error"]
    assert sse.startswith("invalid_payload: ") and "stream: the queue returns one result" in sse
    two = (await queue.wait_for_type("job_error", "two"))["error"]
    assert two == "invalid_payload: give voice or speaker (the same field), not both"
    assert len(fake_vllm.record.requests) == 2


async def test_a_vllm_without_omni_names_vllm_omni(
    queue: ScriptedQueue, fake_vllm: FakeVllm, start_worker: StartWorker
) -> None:
    fake_vllm.behaviour.runner = "generate"
    await start_worker()
    await queue.push(audio_job("no-omni", "openai/audio-speech", input="Hi"))
    error = (await queue.wait_for_type("job_error", "no-omni"))["error"]
    assert error.startswith("inference_error: this vLLM does not serve /v1/audio/speech")
    assert "VLLM_SERVE_COMMAND=vllm-omni" in error


def test_the_speech_payload_takes_exactly_vllm_omnis_request_fields_less_streaming() -> None:
    """Against the stand-in's copy of vLLM-Omni's `OpenAICreateSpeechRequest` (vLLM-Omni cannot run here)."""
    ours = set(SpeechPayload.model_fields) - {"task", "job_type", "extra_body"}
    assert ours | {"stream", "speaker"} == OMNI_FIELDS  # stream refused; speaker is voice's other name

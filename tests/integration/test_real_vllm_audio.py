"""Audio jobs through the worker against real vLLM serving a tiny random Whisper (built offline by `make vllm-env`):
vLLM's own multipart parsing, audio decoding and refusals, and the official client through `worker-vllm dev`."""

import base64
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from testbed.real_vllm import WHISPER_ARGS

from adapters.dev.local_queue import LocalQueue
from tests.fakes.audio import audio_job, wav
from tests.fakes.fake_api import FakeApi
from tests.integration.conftest import StartWorker, front_and_worker, real_vllm
from tests.integration.real_vllm import ROOT, TINY_WHISPER

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
FIGURES = ROOT / ".cache" / "whisper-figures.json"  # start-up and answer times, for the closing notes


@pytest.fixture(scope="module")
def whisper_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    started = time.monotonic()
    with real_vllm(tmp_path_factory.mktemp("whisper"), WHISPER_ARGS, TINY_WHISPER) as port:
        record("startup_seconds", round(time.monotonic() - started, 1))
        yield port


def record(name: str, value: object) -> None:
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.write_text(json.dumps(figures | {name: value}, indent=2) + "\n")


async def vllms_own_text(port: int, route: str, audio: bytes, **fields: str) -> str:
    """What vLLM itself answers to the audio, asked directly (the reference the job's result is held to)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        files = {"file": ("audio.wav", audio, "audio/wav")}
        answer = await client.post(route, data={"model": "default", **fields}, files=files)
    answer.raise_for_status()
    return str(answer.json()["text"])


async def test_transcription_and_translation_jobs_on_real_vllm_read_as_the_queues_front_reads_them(
    queue: LocalQueue, whisper_port: int, start_worker: StartWorker
) -> None:
    """PROTOCOL.md: the front answers `{"text": result["text"]}` (or the bare text): the transcript is vLLM's own."""
    await start_worker(VLLM_PORT=whisper_port, CASOLA_JOB_TIMEOUT=120)
    audio = wav(1.0)
    fields = {"language": "en", "max_completion_tokens": "8", "temperature": "0.0"}
    expected = await vllms_own_text(whisper_port, "/v1/audio/transcriptions", audio, **fields)
    assert expected, "the tiny Whisper answers this WAV with some text"
    started = time.monotonic()
    inline = base64.b64encode(audio).decode()
    await queue.push(audio_job("t", audio_base64=inline, language="en", max_completion_tokens=8, temperature=0.0))
    result = (await queue.wait_for_type("job_result", "t", timeout=120))["result"]
    record("transcription_job_seconds", round(time.monotonic() - started, 2))
    assert result["text"] == expected
    assert result["usage"] == {"type": "duration", "seconds": 1}
    await queue.push(
        audio_job(
            "plain",
            audio_base64=inline,
            language="en",
            max_completion_tokens=8,
            temperature=0.0,
            response_format="text",
        )
    )
    assert (await queue.wait_for_type("job_result", "plain", timeout=120))["result"]["text"] == expected
    await queue.push(
        audio_job(
            "v", audio_base64=inline, language="en", max_completion_tokens=4, response_format="verbose_json",
            timestamp_granularities=["segment"],
        )
    )  # fmt: skip
    verbose = (await queue.wait_for_type("job_result", "v", timeout=120))["result"]
    assert (verbose["language"], verbose["duration"]) == ("en", 1.0) and isinstance(verbose["segments"], list)
    assert verbose["task"] == "openai/audio-transcription"  # the kind, not vLLM's own "transcribe"
    fields = {"language": "de", "max_completion_tokens": "4", "temperature": "0.0"}
    expected = await vllms_own_text(whisper_port, "/v1/audio/translations", audio, **fields)
    started = time.monotonic()
    await queue.push(
        audio_job(
            "tr", "openai/audio-translation", audio_base64=inline, language="de", max_completion_tokens=4,
            temperature=0.0,
        )
    )  # fmt: skip
    translation = (await queue.wait_for_type("job_result", "tr", timeout=120))["result"]
    record("translation_job_seconds", round(time.monotonic() - started, 2))
    assert translation["task"] == "openai/audio-translation" and translation["text"] == expected


async def test_vllms_own_refusals_fail_the_job_naming_the_field(
    queue: LocalQueue, whisper_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=whisper_port, CASOLA_MAX_JOBS=2)
    await queue.push(audio_job("corrupt", audio_base64=base64.b64encode(b"RIFF but not audio").decode(), language="en"))
    await queue.push(audio_job("xx", audio_base64=base64.b64encode(wav()).decode(), language="xx"))
    corrupt = (await queue.wait_for_type("job_error", "corrupt", timeout=120))["error"]
    assert corrupt.startswith("invalid_payload: audio: vLLM answered HTTP 400: Invalid or corrupted audio data")
    language = (await queue.wait_for_type("job_error", "xx", timeout=120))["error"]
    assert language.startswith("invalid_payload: language: vLLM answered HTTP 400: Unsupported language: 'xx'")


async def test_the_official_client_through_the_dev_front_on_real_vllm(fake_api: FakeApi, whisper_port: int) -> None:
    async with (
        front_and_worker(fake_api, whisper_port) as front,
        openai.AsyncOpenAI(base_url=f"{front.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        audio = ("hello.wav", wav(1.0), "audio/wav")
        started = time.monotonic()
        transcription = await client.audio.transcriptions.create(
            model="default", file=audio, language="en", temperature=0, extra_body={"max_completion_tokens": 4}
        )
        record("dev_front_transcription_seconds", round(time.monotonic() - started, 2))
        assert isinstance(transcription.text, str)
        bare = await client.audio.transcriptions.create(
            model="default", file=audio, language="en", temperature=0, response_format="text",
            extra_body={"max_completion_tokens": 4},
        )  # fmt: skip
        assert bare == transcription.text  # the bare transcript, as the queue's front answers it
        translation = await client.audio.translations.create(
            model="default", file=audio, extra_body={"language": "fr", "max_completion_tokens": 4}
        )
        assert isinstance(translation.text, str)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.transcriptions.create(
                model="default", file=("x.wav", b"junk", "audio/wav"), language="en"
            )
        assert "Invalid or corrupted audio data" in str(refused.value)


async def test_a_vllm_serving_a_chat_model_refuses_audio_and_the_error_says_what_to_serve(
    queue: LocalQueue, vllm_port: int, start_worker: StartWorker
) -> None:
    await start_worker(VLLM_PORT=vllm_port)
    await queue.push(audio_job("chat-model", audio_base64=base64.b64encode(wav()).decode(), language="en"))
    error = (await queue.wait_for_type("job_error", "chat-model", timeout=120))["error"]
    assert error.startswith(  # known from vLLM's own /openapi.json, before any request
        "unsupported_job_type: openai/audio-transcription: this vLLM (0.32.0, serving default) does not serve "
        "/v1/audio/transcriptions"
    ), error
    assert "a speech-to-text model (a Whisper-family VLLM_MODEL" in error

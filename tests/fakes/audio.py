"""Audio as a caller sends it: a WAV recording, and the queue's audio job frame."""

import io
import wave
from typing import Any


def wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A WAV of silence, 16-bit mono, as a caller would record one."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def audio_job(job_id: str, kind: str = "openai/audio-transcription", **payload: Any) -> dict[str, Any]:
    frame = {"type": "job", "job_id": job_id, "mode": "transient", "fence_token": 1, "config_id": "cfg-1"}
    return frame | {"job_type": kind, "payload": payload}

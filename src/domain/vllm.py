"""vLLM facts with no I/O: its serve command line, what its log lines say about the host, and the gauges of its
/metrics the worker reads."""

import re
import shlex
from enum import StrEnum

FATAL_PATTERNS = (
    "CUDA driver version is insufficient",
    "unsupported display driver / cuda driver combination",
    r"cannot open shared object file.*libcuda",
    r"libcuda\.so.*cannot open shared object file",
    "no CUDA-capable device is detected",
    "NVIDIA driver on your system is too old",
    "Found no NVIDIA driver on your system",
)
RETRYABLE_PATTERNS = (
    "CUDA out of memory",
    "Engine core initialization failed",
    "NCCL error",
    "EngineDeadError",
    r"Address already in use",
    "No available memory for the cache blocks",
)
REQUESTS_RUNNING = "vllm:num_requests_running"
REQUESTS_WAITING = "vllm:num_requests_waiting"  # above a threshold: backpressure
_FATAL = re.compile("|".join(FATAL_PATTERNS), re.IGNORECASE)
_RETRYABLE = re.compile("|".join(RETRYABLE_PATTERNS), re.IGNORECASE)


class LogVerdict(StrEnum):
    FATAL = "fatal"
    RETRYABLE = "retryable"


def classify_log_line(line: str) -> LogVerdict | None:
    """FATAL for a bad host, RETRYABLE for a failure another try may not have, else None."""
    if _FATAL.search(line):
        return LogVerdict.FATAL
    if _RETRYABLE.search(line):
        return LogVerdict.RETRYABLE
    return None


def serve_command(
    serve_command: str, model: str, host: str, port: int, served_model_name: str, extra_args: str
) -> list[str]:
    """`{serve_command} serve {model} --host ... --port ... --served-model-name ... {extra}`."""
    return [
        *shlex.split(serve_command),
        "serve",
        model,
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        served_model_name,
        *shlex.split(extra_args),
    ]


CACHES = {"VLLM_CACHE_ROOT": "vllm", "HF_HOME": "huggingface"}  # vLLM's compile cache, the model hub's cache


def cache_environment(cache_dir: str | None, environ: dict[str, str]) -> dict[str, str]:
    """Where vLLM keeps its caches under CASOLA_CACHE_DIR: each of CACHES in a folder of its own, unless the
    environment already names it. vLLM keys its compile cache by its version and the model's config, so a cache
    written by another vLLM or for another model is no error, only a miss."""
    if not cache_dir:
        return {}
    return {name: f"{cache_dir.rstrip('/')}/{folder}" for name, folder in CACHES.items() if not environ.get(name)}

"""vLLM's serve command line, log line classification, leases and result format."""

from datetime import UTC, datetime

import pytest

from domain.kinds import CHAT, processed_at
from domain.leases import Lease, default_renew_after
from domain.vllm import LogVerdict, cache_environment, classify_log_line, serve_command


def test_serve_command_splits_extra_args_as_a_shell_would() -> None:
    argv = serve_command("python /x/vllm", "org/m", "0.0.0.0", 8001, "default", "--tp 2 --chat-template '/a b.j2'")
    assert argv == [
        "python", "/x/vllm", "serve", "org/m", "--host", "0.0.0.0", "--port", "8001",
        "--served-model-name", "default", "--tp", "2", "--chat-template", "/a b.j2",
    ]  # fmt: skip


LINES = [
    ("RuntimeError: CUDA driver version is insufficient for CUDA runtime version", LogVerdict.FATAL),
    ("forward compatibility: unsupported display driver / cuda driver combination", LogVerdict.FATAL),
    ("OSError: libcuda.so.1: cannot open shared object file: No such file or directory", LogVerdict.FATAL),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", LogVerdict.RETRYABLE),
    ("RuntimeError: Engine core initialization failed. See root cause above.", LogVerdict.RETRYABLE),
    ("torch.distributed.DistBackendError: NCCL error in: ...", LogVerdict.RETRYABLE),
    ("INFO 11-27 00:00:00 api_server.py:1 vLLM API server version 0.32.0", None),
]


@pytest.mark.parametrize(("line", "verdict"), LINES)
def test_log_lines_tell_a_bad_host_from_a_retryable_failure(line: str, verdict: LogVerdict | None) -> None:
    assert classify_log_line(line) is verdict


def test_lease() -> None:
    lease = Lease(seconds=30, renew_after=default_renew_after(30), renewed_at=100)
    assert (lease.due(123.9), lease.due(124)) == (False, True)
    assert not lease.renewed(124).due(147.9)


def test_result_in_the_seed_format() -> None:
    now = datetime(2024, 1, 29, 12, 0, 0, 123456, tzinfo=UTC)
    completion = {"id": "c", "choices": []}
    assert processed_at(now) == "2024-01-29T12:00:00.123Z"
    assert CHAT.job_result("chat_completion", "cfg", completion, {}, now) == {
        "status": "success",
        "job_type": "chat_completion",
        "task": "openai/chat-completion",
        "config_id": "cfg",
        "processed_at": "2024-01-29T12:00:00.123Z",
        "completion": completion,
    }


def test_vllms_caches_go_under_the_cache_dir_unless_the_environment_names_them() -> None:
    assert cache_environment(None, {}) == {}
    assert cache_environment("/cache/", {}) == {"VLLM_CACHE_ROOT": "/cache/vllm", "HF_HOME": "/cache/huggingface"}
    assert cache_environment("/cache", {"HF_HOME": "/models"}) == {"VLLM_CACHE_ROOT": "/cache/vllm"}

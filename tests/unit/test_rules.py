"""The worker's rules as tables: health, heartbeats, exit codes, signals, failures' categories, the outbox."""

import pytest

from domain import rules
from domain.errors import InferenceRejected, InferenceUnavailable, JobFailed, PayloadTransferFailed, job_failure
from domain.frames import Drain, JobError, JobProgress, JobResult, OutboundFrame
from domain.jobs import RESULT_INLINE_LIMIT, upload_instead
from domain.outbox import Outbox
from domain.rules import Failure, HealthWatch, HeartbeatStatus, ShutdownStep, Thresholds
from domain.vllm import LogVerdict

LIMITS = Thresholds(health_failures_before_down=3, queue_unreachable_after=300)

HEALTH = [
    # (answers of /health in order, healthy after each, down after each)
    ([True, True], [True, True], [False, False]),
    ([False, False, False], [False, False, False], [False, False, True]),
    ([False, False, True, False, False], [False, False, True, False, False], [False] * 5),
]


@pytest.mark.parametrize(("answers", "healthy", "down"), HEALTH)
def test_vllm_is_down_after_three_failed_checks_in_a_row(
    answers: list[bool], healthy: list[bool], down: list[bool]
) -> None:
    watch = HealthWatch(LIMITS.health_failures_before_down)
    seen = []
    for answer in answers:
        watch.observe(answer)
        seen.append((watch.healthy, watch.down))
    assert seen == list(zip(healthy, down, strict=True))


def test_a_health_change_is_reported_once() -> None:
    watch = HealthWatch(3)
    assert [watch.observe(answer) for answer in (True, False, False, True, True)] == [False, True, False, True, False]


HEARTBEATS = [
    # (vLLM healthy, disconnected since, now, status, message)
    (True, None, 1000.0, "running", None),
    (True, 100.0, 400.0, "running", None),
    (True, 100.0, 400.5, "error", "queue unreachable for 300 s"),
    (False, None, 1000.0, "error", "vLLM is not answering /health"),
    (False, 100.0, 1000.0, "error", "vLLM is not answering /health"),
]


@pytest.mark.parametrize(("healthy", "since", "now", "status", "message"), HEARTBEATS)
def test_heartbeat_status(healthy: bool, since: float | None, now: float, status: str, message: str | None) -> None:
    assert rules.heartbeat(healthy, since, now, LIMITS) == (status, message)


EXIT_CODES = [
    (None, 0),
    (rules.on_vllm_exit(1), 1),
    (rules.vllm_never_ready(120), 1),
    (rules.vllm_cannot_start("vllm", "No such file"), 1),
    (rules.queue_failed(RuntimeError("bug")), 1),
    (HealthWatch(3).failure(), 1),
    (rules.on_vllm_log(LogVerdict.FATAL, "CUDA driver version is insufficient"), 2),
    (rules.queue_refused("handshake refused with HTTP 401"), 2),
]


@pytest.mark.parametrize(("failure", "code"), EXIT_CODES)
def test_exit_code_of_each_failure(failure: Failure | None, code: int) -> None:
    assert rules.exit_code(failure) == code


def test_log_lines_that_fail_the_worker() -> None:
    assert rules.on_vllm_log(LogVerdict.RETRYABLE, "CUDA out of memory") is None
    assert rules.on_vllm_log(None, "INFO serving") is None
    fatal = rules.on_vllm_log(LogVerdict.FATAL, "  CUDA driver version is insufficient \n")
    assert fatal == Failure(HeartbeatStatus.FATAL, "vLLM reports a bad host: CUDA driver version is insufficient")


def test_a_second_signal_hurries() -> None:
    assert [rules.on_shutdown_signal(already) for already in (False, True)] == [ShutdownStep.DRAIN, ShutdownStep.HURRY]


CATEGORIES = [
    (InferenceUnavailable("cannot reach vLLM"), "vllm_unavailable: cannot reach vLLM"),
    (InferenceRejected("vLLM answered HTTP 400: bad"), "inference_error: vLLM answered HTTP 400: bad"),
    (PayloadTransferFailed("HTTP 404"), "invalid_payload: payload_url: HTTP 404"),
    (TimeoutError(), "inference_timeout: no answer within 600 s (CASOLA_JOB_TIMEOUT)"),
    (KeyError("x"), "inference_error: KeyError: 'x'"),
    (JobFailed(rules.ErrorCategory.INVALID_PAYLOAD, "messages: required"), "invalid_payload: messages: required"),
]


@pytest.mark.parametrize(("error", "text"), CATEGORIES)
def test_each_failure_has_its_category(error: Exception, text: str) -> None:
    assert str(job_failure(error, 600)) == text


@pytest.mark.parametrize(
    ("size", "url", "upload"),
    [(RESULT_INLINE_LIMIT, "http://x", False), (RESULT_INLINE_LIMIT + 1, "http://x", True), (10**9, None, False)],
)
def test_upload_or_inline(size: int, url: str | None, upload: bool) -> None:
    assert upload_instead(size, url) is upload


OUTBOX = [
    # (frames put into an outbox of 3, what it keeps, what it dropped)
    (["r1", "r2", "r3"], ["r1", "r2", "r3"], []),
    (["p1", "r1", "r2", "r3"], ["r1", "r2", "r3"], ["p1"]),
    (["r1", "p1", "p2", "r2", "r3"], ["r1", "r2", "r3"], ["p1", "p2"]),
    (["r1", "r2", "r3", "r4"], ["r2", "r3", "r4"], ["r1"]),
    (["d", "r1", "r2", "p1"], ["r1", "r2", "p1"], ["d"]),
]


def frame(name: str) -> OutboundFrame:
    if name == "d":
        return Drain()
    if name.startswith("p"):
        return JobProgress(name, 1)
    return JobResult(name, 1, {}) if name.startswith("r") else JobError(name, 1, "x")


def name_of(sent: OutboundFrame) -> str:
    return "d" if isinstance(sent, Drain) else sent.job_id  # type: ignore[union-attr]


@pytest.mark.parametrize(("put", "kept", "dropped"), OUTBOX)
def test_a_full_outbox_drops_renewals_first_then_its_oldest(
    put: list[str], kept: list[str], dropped: list[str]
) -> None:
    outbox = Outbox(3)
    lost = [outbox.put(frame(name)) for name in put]
    assert [name_of(sent) for sent in outbox.frames] == kept
    assert [name_of(sent) for sent in lost if sent is not None] == dropped


BACKPRESSURE = [
    # (pause above, resume at, waiting, paused now, verdict)
    (0, 0, 0, False, None),
    (0, 0, 1, False, True),
    (0, 0, 0, True, False),
    (3, 1, 2, False, None),  # under the pause threshold
    (3, 1, 4, False, True),
    (3, 1, 2, True, None),  # hysteresis: above resume, stays paused
    (3, 1, 1, True, False),
    (3, 1, None, True, None),  # a failed read changes nothing
    (3, 1, None, False, None),
]


@pytest.mark.parametrize(("pause_above", "resume_at", "waiting", "paused", "verdict"), BACKPRESSURE)
def test_backpressure_pauses_above_one_threshold_and_resumes_at_the_other(
    pause_above: float, resume_at: float, waiting: float | None, paused: bool, verdict: bool | None
) -> None:
    assert rules.Backpressure(pause_above, resume_at).verdict(waiting, paused) is verdict

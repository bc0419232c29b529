"""The worker's operating rules as pure functions of state and `now`: health, heartbeats, exits, signals."""

from dataclasses import dataclass
from enum import StrEnum

from domain.errors import ErrorCategory
from domain.vllm import LogVerdict


class HeartbeatStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    ERROR = "error"  # retryable: vLLM died or never became ready, or the queue unreachable for minutes (reconnecting)
    FATAL = "fatal"  # the host is bad, or the queue refused the worker


@dataclass(frozen=True)
class Thresholds:
    """When vLLM counts as down and the queue as unreachable."""

    health_failures_before_down: int = 3
    queue_unreachable_after: float = 300.0


@dataclass(frozen=True)
class Failure:
    """Why the worker must stop: the heartbeat status to report, the reason, and what jobs in flight get."""

    status: HeartbeatStatus
    message: str
    category: ErrorCategory = ErrorCategory.VLLM_UNAVAILABLE


EXIT_STOPPED = 0
EXIT_CODES = {HeartbeatStatus.ERROR: 1, HeartbeatStatus.FATAL: 2}


def exit_code(failure: Failure | None) -> int:
    """0 for a clean stop, 1 for a failure another try may not have (`error`), 2 for a bad host (`fatal`)."""
    return EXIT_STOPPED if failure is None else EXIT_CODES[failure.status]


@dataclass
class HealthWatch:
    """Consecutive `/health` answers: whether the last one changed the verdict, and whether vLLM is down."""

    threshold: int
    healthy: bool = True
    failures: int = 0

    def observe(self, healthy: bool) -> bool:
        """Records one check; True when it changed `healthy`."""
        self.failures = 0 if healthy else self.failures + 1
        changed = healthy != self.healthy
        self.healthy = healthy
        return changed

    @property
    def down(self) -> bool:
        return self.failures >= self.threshold

    def failure(self) -> Failure:
        return Failure(HeartbeatStatus.ERROR, f"vLLM stopped answering /health ({self.failures} checks in a row)")


def queue_unreachable(disconnected_since: float | None, now: float, thresholds: Thresholds) -> bool:
    return disconnected_since is not None and now - disconnected_since > thresholds.queue_unreachable_after


def heartbeat(
    vllm_healthy: bool, disconnected_since: float | None, now: float, thresholds: Thresholds
) -> tuple[HeartbeatStatus, str | None]:
    """The status of a periodic heartbeat and its message."""
    if not vllm_healthy:
        return HeartbeatStatus.ERROR, "vLLM is not answering /health"
    if disconnected_since is not None and queue_unreachable(disconnected_since, now, thresholds):
        return HeartbeatStatus.ERROR, f"queue unreachable for {now - disconnected_since:.0f} s"
    return HeartbeatStatus.RUNNING, None


class ShutdownStep(StrEnum):
    DRAIN = "drain"  # stop taking jobs, give running ones the grace period
    HURRY = "hurry"  # give up running jobs now


def on_shutdown_signal(already_requested: bool) -> ShutdownStep:
    """The first SIGTERM or SIGINT drains; a second one skips the wait."""
    return ShutdownStep.HURRY if already_requested else ShutdownStep.DRAIN


def on_vllm_log(verdict: LogVerdict | None, line: str) -> Failure | None:
    """A fatal log line fails the worker for good; anything else is only logged."""
    if verdict is LogVerdict.FATAL:
        return Failure(HeartbeatStatus.FATAL, f"vLLM reports a bad host: {line.strip()[:300]}")
    return None


def on_vllm_exit(code: int) -> Failure:
    return Failure(HeartbeatStatus.ERROR, f"vLLM exited with code {code}")


def vllm_stalled(timeout: float) -> Failure:
    return Failure(
        HeartbeatStatus.ERROR,
        f"vLLM stalled: a request held for {timeout:g} s with no request finished and no token generated "
        "(CASOLA_VLLM_STALL_TIMEOUT); its /health still answers",
        ErrorCategory.VLLM_STALLED,
    )


def vllm_never_ready(timeout: float) -> Failure:
    return Failure(HeartbeatStatus.ERROR, f"vLLM did not become ready within {timeout:.0f} s (VLLM_STARTUP_TIMEOUT)")


def vllm_cannot_start(command: str, reason: str) -> Failure:
    return Failure(HeartbeatStatus.ERROR, f"cannot start vLLM with {command!r}: {reason}")


def queue_refused(reason: str) -> Failure:
    return Failure(HeartbeatStatus.FATAL, f"queue refused the worker: {reason}", ErrorCategory.SHUTTING_DOWN)


def queue_failed(error: Exception) -> Failure:
    return Failure(HeartbeatStatus.ERROR, f"queue connection failed: {type(error).__name__}: {error}")


@dataclass(frozen=True)
class Backpressure:
    """Pause above `pause_above` requests waiting in vLLM, resume at or below `resume_at`: hysteresis between."""

    pause_above: float = 0.0
    resume_at: float = 0.0

    def verdict(self, waiting: float | None, paused: bool) -> bool | None:
        """True to pause, False to resume, None to leave it (a failed read changes nothing)."""
        if waiting is None:
            return None
        if not paused and waiting > self.pause_above:
            return True
        if paused and waiting <= self.resume_at:
            return False
        return None

"""The worker's metrics in prometheus-client (which ships in vLLM's image), in a registry of its own.

Counters and histograms are updated on the job path (a lock and an add); gauges are read only at scrape time.
"""

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
GAUGES = {
    "running_jobs": "Jobs running now",
    "capacity": "Jobs the worker runs at once (CASOLA_MAX_JOBS)",
    "queue_connected": "1 while the queue socket is connected and registered",
    "outbox_depth": "Frames waiting to be sent to the queue",
    "paused": "1 while the worker has told the queue to pause",
    "backpressure": "1 while vLLM has more requests waiting than CASOLA_BACKPRESSURE_PAUSE_THRESHOLD",
    "vllm_healthy": "1 while vLLM answers /health",
    "ready": "1 while /readyz answers 200",
}


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry, prefix = self.registry, "worker_vllm_"
        self.jobs = Counter(f"{prefix}jobs", "Jobs ended, by kind and outcome", ["kind", "outcome"], registry=registry)
        self.duration = Histogram(
            f"{prefix}job_duration_seconds", "From a job's start to its outcome", ["kind"],
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.to_result = Histogram(
            f"{prefix}time_to_result_seconds", "From a job's frame to its result frame queued to send", ["kind"],
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.token_count = Counter(f"{prefix}tokens", "Tokens through vLLM", ["direction"], registry=registry)
        self.reconnects = Counter(f"{prefix}queue_reconnects", "Queue connections after the first", registry=registry)
        self.dropped = Counter(f"{prefix}frames_dropped", "Frames dropped from a full outbox", registry=registry)
        self.heartbeats_failed = Counter(f"{prefix}heartbeats_failed", "Heartbeats not accepted", registry=registry)
        self.renewals = Counter(f"{prefix}lease_renewals", "job_progress frames sent", registry=registry)
        self.payload = Counter(f"{prefix}payload_bytes", "Payload URL bytes", ["direction"], registry=registry)
        self.prompt_tokens, self.completion_tokens = (
            self.token_count.labels("prompt"),
            self.token_count.labels("completion"),
        )
        self._job_series: dict[tuple[str, str], tuple[Counter, Histogram, Histogram]] = {}  # kinds x outcomes

    def job_ended(self, kind: str, outcome: str, seconds: float, to_result: float) -> None:
        series = self._job_series.get((kind, outcome))
        if series is None:
            series = self.jobs.labels(kind, outcome), self.duration.labels(kind), self.to_result.labels(kind)
            self._job_series[kind, outcome] = series
        jobs, duration, to_result_seconds = series
        jobs.inc()
        duration.observe(seconds)
        if outcome == "result":
            to_result_seconds.observe(to_result)

    def tokens(self, prompt: int, completion: int) -> None:
        self.prompt_tokens.inc(prompt)
        self.completion_tokens.inc(completion)

    def reconnected(self) -> None:
        self.reconnects.inc()

    def frame_dropped(self) -> None:
        self.dropped.inc()

    def heartbeat_failed(self) -> None:
        self.heartbeats_failed.inc()

    def lease_renewed(self) -> None:
        self.renewals.inc()

    def payload_bytes(self, direction: str, count: int) -> None:
        self.payload.labels(direction).inc(count)

    def observe(self, name: str, read: Callable[[], float]) -> None:
        Gauge(f"worker_vllm_{name}", GAUGES[name], registry=self.registry).set_function(read)

    def text(self) -> bytes:
        return generate_latest(self.registry)

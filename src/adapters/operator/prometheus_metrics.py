"""The worker's metrics in prometheus-client (which ships in vLLM's image), in a registry of its own.

A job's metrics are plain numbers (an add, and a bucket found by bisection in C), made into Prometheus
families only when scraped; the rare counters are prometheus-client's own; gauges are read at scrape time.
"""

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

TO_RESULT = "From a job's frame to its result frame queued to send"
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


BUCKET_LABELS = (*(str(float(bound)) for bound in DURATION_BUCKETS), "+Inf")  # `le` of each bucket: "0.05" ... "600.0"


class Durations:
    """One histogram series: a count per bucket (the last one past every bound) and the sum."""

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.sum += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as the exposition format has them."""
        total, cumulative = 0, []
        for bound, count in zip(BUCKET_LABELS, self.counts, strict=True):
            total += count
            cumulative.append((bound, float(total)))
        return cumulative


class JobMetrics(Collector):
    """Jobs by kind and outcome, their durations and tokens: numbers on the job path, families at a scrape."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], int] = {}
        self.duration: dict[str, Durations] = {}
        self.to_result: dict[str, Durations] = {}
        self.tokens = {"prompt": 0, "completion": 0}

    def job_ended(self, kind: str, outcome: str, seconds: float, to_result: float) -> None:
        self.jobs[kind, outcome] = self.jobs.get((kind, outcome), 0) + 1
        durations = self.duration.get(kind) or self.duration.setdefault(kind, Durations())
        durations.observe(seconds)
        if outcome == "result":
            (self.to_result.get(kind) or self.to_result.setdefault(kind, Durations())).observe(to_result)

    def collect(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily("worker_vllm_jobs", "Jobs ended, by kind and outcome", labels=["kind", "outcome"])
        for labels, count in self.jobs.items():
            jobs.add_metric(labels, count)
        yield jobs
        for name, documentation, series in (
            ("worker_vllm_job_duration_seconds", "From a job's start to its outcome", self.duration),
            ("worker_vllm_time_to_result_seconds", TO_RESULT, self.to_result),
        ):
            family = HistogramMetricFamily(name, documentation, labels=["kind"])
            for kind, durations in series.items():
                family.add_metric([kind], durations.buckets(), durations.sum)
            yield family
        tokens = CounterMetricFamily("worker_vllm_tokens", "Tokens through vLLM", labels=["direction"])
        for direction, count in self.tokens.items():
            tokens.add_metric([direction], count)
        yield tokens


class PrometheusMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside each counter: they double a scrape for nothing
        self.registry = CollectorRegistry(auto_describe=True)
        registry, prefix = self.registry, "worker_vllm_"
        self.job_metrics = JobMetrics()
        registry.register(self.job_metrics)
        self.reconnects = Counter(f"{prefix}queue_reconnects", "Queue connections after the first", registry=registry)
        self.stalls = Counter(f"{prefix}vllm_stalls", "Times vLLM held requests with no progress", registry=registry)
        self.dropped = Counter(f"{prefix}frames_dropped", "Frames dropped from a full outbox", registry=registry)
        self.heartbeats_failed = Counter(f"{prefix}heartbeats_failed", "Heartbeats not accepted", registry=registry)
        self.renewals = Counter(f"{prefix}lease_renewals", "job_progress frames sent", registry=registry)
        self.payload = Counter(f"{prefix}payload_bytes", "Payload URL bytes", ["direction"], registry=registry)
        self.shipping = Counter(
            f"{prefix}shipping_dropped", "Log lines and snapshots lost from a full shipping buffer", ["what"],
            registry=registry,
        )  # fmt: skip
        self.startup = Gauge(
            f"{prefix}vllm_startup_seconds", "vLLM's start-up, by phase (from its log lines) and in total",
            ["phase"], registry=registry,
        )  # fmt: skip
        self.lora_loads = Counter(
            f"{prefix}lora_loads", "LoRA adapters loaded into vLLM, by adapter and outcome", ["adapter", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.lora_load_seconds = Histogram(
            f"{prefix}lora_load_seconds", "Seconds a LoRA adapter took to load into vLLM", ["adapter"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry,
        )  # fmt: skip
        self.vllm = Info(
            f"{prefix}vllm", "The served vLLM: its version, the kinds it serves, whence the fields", registry=registry
        )

    def job_ended(self, kind: str, outcome: str, seconds: float, to_result: float) -> None:
        self.job_metrics.job_ended(kind, outcome, seconds, to_result)

    def tokens(self, prompt: int, completion: int) -> None:
        tokens = self.job_metrics.tokens
        tokens["prompt"] += prompt
        tokens["completion"] += completion

    def reconnected(self) -> None:
        self.reconnects.inc()

    def frame_dropped(self) -> None:
        self.dropped.inc()

    def heartbeat_failed(self) -> None:
        self.heartbeats_failed.inc()

    def lease_renewed(self) -> None:
        self.renewals.inc()

    def vllm_stalled(self) -> None:
        self.stalls.inc()

    def payload_bytes(self, direction: str, count: int) -> None:
        self.payload.labels(direction).inc(count)

    def shipping_dropped(self, what: str) -> None:
        self.shipping.labels(what).inc()

    def startup_phase(self, phase: str, seconds: float) -> None:
        self.startup.labels(phase).set(seconds)

    def vllm_surface(self, version: str, kinds: list[str] | None, fields: str) -> None:
        self.vllm.info({"version": version, "kinds": "unknown" if kinds is None else ",".join(kinds), "fields": fields})

    def lora_loaded(self, adapter: str, outcome: str, seconds: float) -> None:
        self.lora_loads.labels(adapter, outcome).inc()
        if outcome == "loaded":
            self.lora_load_seconds.labels(adapter).observe(seconds)

    def observe(self, name: str, read: Callable[[], float]) -> None:
        Gauge(f"worker_vllm_{name}", GAUGES[name], registry=self.registry).set_function(read)

    def text(self) -> bytes:
        return generate_latest(self.registry)

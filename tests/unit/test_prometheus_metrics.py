"""The job metrics' exposition: what prometheus-client's own histogram and counters would show."""

from prometheus_client.parser import text_string_to_metric_families

from adapters.operator.prometheus_metrics import DURATION_BUCKETS, PrometheusMetrics


def samples(metrics: PrometheusMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.text().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_durations_fall_in_the_bucket_of_their_upper_bound_and_buckets_are_cumulative() -> None:
    metrics = PrometheusMetrics()
    for seconds in (0.05, 0.051, 700.0):
        metrics.job_ended("openai/embeddings", "result", seconds, seconds)
    seen = samples(metrics)

    def bucket(name: str, bound: str) -> float:
        return seen[(f"worker_vllm_{name}_bucket", (("kind", "openai/embeddings"), ("le", bound)))]

    for name in ("job_duration_seconds", "time_to_result_seconds"):
        assert [bucket(name, b) for b in ("0.05", "0.1", "600.0", "+Inf")] == [1, 2, 2, 3]
        assert seen[(f"worker_vllm_{name}_count", (("kind", "openai/embeddings"),))] == 3
        assert seen[(f"worker_vllm_{name}_sum", (("kind", "openai/embeddings"),))] == 0.05 + 0.051 + 700.0
    assert (
        len([key for key in seen if key[0] == "worker_vllm_job_duration_seconds_bucket"]) == len(DURATION_BUCKETS) + 1
    )


def test_jobs_by_kind_and_outcome_and_tokens_by_direction_are_counted_without_created_series() -> None:
    metrics = PrometheusMetrics()
    metrics.job_ended("openai/chat-completion", "result", 0.2, 0.2)
    metrics.job_ended("openai/chat-completion", "result", 0.3, 0.3)
    metrics.job_ended("openai/chat-completion", "timeout", 9.0, 9.0)
    metrics.tokens(10, 16)
    metrics.tokens(1, 2)
    seen = samples(metrics)
    chat = ("kind", "openai/chat-completion")
    assert seen[("worker_vllm_jobs_total", (chat, ("outcome", "result")))] == 2
    assert seen[("worker_vllm_jobs_total", (chat, ("outcome", "timeout")))] == 1
    assert seen[("worker_vllm_time_to_result_seconds_count", (chat,))] == 2  # only results reach a result frame
    assert seen[("worker_vllm_tokens_total", (("direction", "prompt"),))] == 11
    assert seen[("worker_vllm_tokens_total", (("direction", "completion"),))] == 18
    assert not [name for name, _ in seen if name.endswith("_created")]

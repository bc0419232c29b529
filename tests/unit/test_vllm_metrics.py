"""vLLM's /metrics as the worker reads it: prometheus-client's parser on the lines asked for."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.vllm.probe import totals
from domain.errors import InferenceRejected

WAITING, RUNNING = "vllm:num_requests_waiting", "vllm:num_requests_running"
TOKENS = ("vllm:generation_tokens_total", "vllm:prompt_tokens_total")
METRICS_TEXT = """# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="default"} 3.0
vllm:num_requests_waiting{engine="0",model_name="sql-lora"} 2.0
vllm:num_requests_waiting_by_reason{reason="capacity"} 9.0
vllm:num_requests_running{engine="0",model_name="default"} 1.0
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="default"} 5.0
vllm:generation_tokens_total{engine="0",model_name="my model } 7"} 11.0 1700000000000
vllm:iteration_tokens_total_bucket{engine="0",le="1.0",model_name="default"} 4.0
"""


def test_a_gauge_is_summed_over_its_label_sets_and_absent_when_vllm_does_not_show_it() -> None:
    assert totals(METRICS_TEXT, (WAITING,)) == {WAITING: 5.0}
    assert totals(METRICS_TEXT, (RUNNING, WAITING)) == {RUNNING: 1.0, WAITING: 5.0}
    assert totals("", (WAITING,)) == {}
    assert totals("vllm:num_requests_waiting 7\n", (WAITING, RUNNING)) == {WAITING: 7.0}


def test_a_counter_is_read_by_its_sample_name_whatever_its_labels_and_timestamp_hold() -> None:
    """A label value with a space, a brace and a digit in it, and a timestamp after the value: the value is read."""
    assert totals(METRICS_TEXT, TOKENS) == {TOKENS[0]: 11.0, TOKENS[1]: 5.0}


def test_text_that_is_not_prometheus_fails_the_read_naming_it() -> None:
    with pytest.raises(InferenceRejected, match="GET /metrics answered with no Prometheus text"):
        totals("vllm:num_requests_waiting{engine= 3\n", (WAITING,))


@given(st.text(max_size=300))
def test_any_text_gives_numbers_or_a_failed_read(text: str) -> None:
    """Whatever vLLM's /metrics holds, the loops that read it get numbers or the failure they already handle."""
    try:
        found = totals(WAITING + text, (WAITING, RUNNING))
    except InferenceRejected:
        return
    assert set(found) <= {WAITING, RUNNING}
    assert all(isinstance(value, float) for value in found.values())

"""Shipping that loses entries says so: each one counted in /metrics, and a warning at most once a minute.

The shipper posts to an API that refuses every batch (httpx's MockTransport), so its buffer fills; a manual clock.
"""

import logging

import httpx
import pytest

from adapters.casola_api.shipping import DROPPED_WARNING_EVERY, BatchShipper
from adapters.operator.prometheus_metrics import PrometheusMetrics
from tests.fakes.memory import ManualClock
from tests.unit.test_prometheus_metrics import samples

DROPPED = ("worker_vllm_shipping_dropped_total", (("what", "entries"),))


def refusing_api(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


async def test_each_entry_pushed_out_of_a_full_buffer_is_counted_and_warned_of_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.shipping")
    metrics, clock = PrometheusMetrics(), ManualClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(refusing_api)) as client:
        shipper = BatchShipper(client, "http://api.test/l", "t", {}, "entries", 3, 2, metrics, clock)
        for number in range(5):
            shipper.add({"message": str(number)})
        assert not await shipper.flush()
        assert [entry["message"] for entry in shipper.entries] == ["2", "3", "4"]  # the oldest two were pushed out
        assert samples(metrics)[DROPPED] == 2
        shipper.add({"message": "5"})
        clock.advance(DROPPED_WARNING_EVERY - 1)
        assert not await shipper.flush()  # within the minute: counted, not warned again
        assert samples(metrics)[DROPPED] == 3
        clock.advance(1)
        assert not await shipper.flush()
        assert not await shipper.flush()  # nothing lost since: no warning
    assert [record.getMessage() for record in caplog.records] == [
        "shipping to http://api.test/l: 2 entries dropped since the last warning (2 in all): the buffer of 3 was full",
        "shipping to http://api.test/l: 1 entries dropped since the last warning (3 in all): the buffer of 3 was full",
    ]


def test_nothing_dropped_shows_no_series() -> None:
    assert not [name for name, _ in samples(PrometheusMetrics()) if name.startswith("worker_vllm_shipping_dropped")]

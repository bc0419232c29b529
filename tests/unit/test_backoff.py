"""The queue's reconnect backoff: 1 s doubling to 60 s, jittered, reset only by a connection that stayed up."""

from adapters.queue.websocket import Backoff


def test_delays_double_to_the_cap_with_jitter_between_half_and_all() -> None:
    highest = Backoff(jitter=lambda: 1.0)
    assert [round(highest.delay(), 3) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    lowest = Backoff(jitter=lambda: 0.0)
    assert [round(lowest.delay(), 3) for _ in range(3)] == [0.5, 1, 2]


def test_reset_starts_again_from_one_second() -> None:
    backoff = Backoff(jitter=lambda: 1.0)
    for _ in range(5):
        backoff.delay()
    backoff.reset()
    assert backoff.delay() == 1.0

"""The stall rule as a table: observations in, the verdict out; no clock, no I/O."""

import pytest

from domain.stall import StallWatch

# Each step: (now, requests in flight, requests finished so far, vLLM's token counters or None) -> stalled?
STEPS: list[tuple[str, float, list[tuple[float, int, int, float | None, bool]]]] = [
    ("a request held with nothing moving", 10, [(0, 1, 0, 5, False), (5, 1, 0, 5, False), (10, 1, 0, 5, True)]),
    ("an idle vLLM never counts", 10, [(0, 0, 0, 5, False), (10, 0, 0, 5, False), (60, 0, 0, 5, False)]),
    (
        "a long generation whose tokens advance",
        10,
        [(0, 1, 0, 5, False), (6, 1, 0, 50, False), (12, 1, 0, 90, False), (20, 1, 0, 140, False)],
    ),
    (
        "one slow request among finishing ones",
        10,
        [(0, 2, 0, 5, False), (6, 2, 1, 5, False), (12, 2, 2, 5, False), (18, 1, 3, 5, False)],
    ),
    (
        "tokens stop moving: stalled a timeout after the last move",
        10,
        [(0, 1, 0, 5, False), (5, 1, 0, 9, False), (12, 1, 0, 9, False), (15, 1, 0, 9, True)],
    ),
    ("counters that cannot be read give no verdict", 10, [(0, 1, 0, 5, False), (30, 1, 0, None, False)]),
    ("counters read again after a gap", 10, [(0, 1, 0, 5, False), (30, 1, 0, None, False), (31, 1, 0, 5, True)]),
    (
        "a new request after an idle spell starts the clock",
        10,
        [(0, 0, 0, 5, False), (8, 1, 0, 5, False), (12, 1, 0, 5, False), (18, 1, 0, 5, True)],
    ),
    ("off at 0", 0, [(0, 1, 0, 5, False), (1000, 1, 0, 5, False)]),
]


@pytest.mark.parametrize(("case", "timeout", "steps"), STEPS, ids=[case for case, _, _ in STEPS])
def test_the_stall_rule(case: str, timeout: float, steps: list[tuple[float, int, int, float | None, bool]]) -> None:
    watch = StallWatch(timeout)
    verdicts = [watch.observe(now, in_flight, finished, tokens) for now, in_flight, finished, tokens, _ in steps]
    assert verdicts == [stalled for *_, stalled in steps], case

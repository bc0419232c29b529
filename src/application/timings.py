"""How often the worker service polls, and how long it waits at the end; tests shorten them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    """How often the service polls; tests shorten them."""

    health_interval: float = 1.0
    readiness_interval: float = 0.25  # and at once when vLLM's output says it answers
    flush_timeout: float = 3.0
    settle_timeout: float = 5.0

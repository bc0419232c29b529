"""A hung engine: vLLM that answers /health but makes no progress on the requests it holds.

vLLM is stalled when a request has been in flight from the worker for the stall timeout and, in all that time, no
request to vLLM finished and vLLM's token counters did not move. A long generation whose tokens advance never
counts, an idle vLLM never counts, and one slow request among finishing ones never counts.
"""

from dataclasses import dataclass, field

TOKEN_COUNTERS = ("vllm:generation_tokens_total", "vllm:prompt_tokens_total")


@dataclass
class StallWatch:
    """Fed one observation at a time (`now` comes in as a value); says when vLLM is stalled."""

    timeout: float  # seconds; 0 turns the watch off
    progress_at: float | None = None  # the last moment vLLM showed progress, or held nothing
    _finished: int = field(default=-1, repr=False)
    _tokens: float | None = field(default=None, repr=False)
    _idle: bool = field(default=True, repr=False)  # held nothing at the last observation

    def observe(self, now: float, in_flight: int, finished: int, tokens: float | None) -> bool:
        """Whether vLLM is stalled, given the worker's requests in flight, how many have finished so far, and
        vLLM's token counters (None when they could not be read: no verdict then, either way)."""
        if self.timeout <= 0:
            return False
        moved = finished != self._finished or (tokens is not None and tokens != self._tokens)
        self._finished = finished
        if tokens is not None:
            self._tokens = tokens
        was_idle, self._idle = self._idle, in_flight == 0
        if in_flight == 0 or moved or was_idle:  # the clock starts when a request is first seen held
            self.progress_at = now
            return False
        return tokens is not None and self.progress_at is not None and now - self.progress_at >= self.timeout

"""vLLM's start-up, phase by phase, read from its own log lines: where the seconds of a cold or warm start go.

Each phase ends at a line vLLM prints (its milestones, as vLLM 0.32 words them); a phase's seconds are the time
from the milestone before, on the worker's clock (`now` comes in as a value). A line no milestone matches is no
phase: a vLLM that words its lines otherwise gives fewer phases, never an error.
"""

import re
from dataclasses import dataclass, field

# (phase, the line that ends it), in the order vLLM prints them.
MILESTONES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("api_server", re.compile(r"vLLM API server version|non-default args:")),
    ("engine_start", re.compile(r"Initializing a V1 LLM engine")),
    ("weights", re.compile(r"Loading weights took|Model loading took")),
    ("compile", re.compile(r"Warming up done|torch\.compile takes|Compiling a graph for .* takes")),
    ("kv_cache_and_warmup", re.compile(r"init engine \(profile, create kv cache, warmup model\) took")),
    ("ready", re.compile(r"Starting vLLM (API )?server on|Application startup complete")),
)
# The lines vLLM prints as its server begins to answer: the worker asks /health at once rather than at its interval.
ANSWERING = re.compile(r"Starting vLLM (API )?server|Application startup complete")
# vLLM 0.32's words for a compiled graph found in VLLM_CACHE_ROOT, and for one compiled and saved there.
CACHE_HIT = re.compile(r"Directly load AOT compilation|Directly load the compiled graph|loaded from cache", re.I)
CACHE_MISS = re.compile(r"saved AOT compiled function|Compiling a graph for|torch\.compile takes", re.I)
NAMES = {
    "api_server": "API server up",
    "engine_start": "engine initialising",
    "weights": "weights loaded",
    "compile": "compiled",
    "kv_cache_and_warmup": "KV cache and warm-up",
    "ready": "ready",
}


@dataclass
class StartupPhases:
    """The phases seen so far, each with its seconds, from `started` (vLLM's process start) on."""

    started: float
    seconds: dict[str, float] = field(default_factory=dict)
    compile_cache: str | None = None  # "hit" or "miss", when a line says
    _last: float = 0.0

    def __post_init__(self) -> None:
        self._last = self.started

    def observe(self, line: str, now: float) -> tuple[str, str] | None:
        """The phase `line` ends and how a heartbeat says it ("vLLM starting: weights loaded (0.3 s), 25.1 s in"),
        or None."""
        self._cache(line)
        phase = next((name for name, pattern in MILESTONES if name not in self.seconds and pattern.search(line)), None)
        if phase is None:
            return None
        self.seconds[phase], self._last = now - self._last, now
        return phase, f"vLLM starting: {self.said(phase)}, {now - self.started:.1f} s in"

    def said(self, phase: str) -> str:
        cache = f", cache {self.compile_cache}" if phase == "compile" and self.compile_cache else ""
        return f"{NAMES[phase]} ({self.seconds[phase]:.1f} s{cache})"

    def summary(self, total: float) -> str:
        """One line for vLLM's readiness: the total and each phase seen, in order."""
        phases = ", ".join(self.said(name) for name, _ in MILESTONES if name in self.seconds)
        return f"vLLM ready in {total:.1f} s" + (f": {phases}" if phases else "")

    def _cache(self, line: str) -> None:
        if CACHE_HIT.search(line):
            self.compile_cache = "hit"
        elif CACHE_MISS.search(line) and self.compile_cache is None:
            self.compile_cache = "miss"

"""vLLM's start-up phases read from its log lines: vLLM 0.32's wording, a warm start's cache hit, and lines the
reader does not know (fewer phases, never an error). vLLM's real log is read in the real-vLLM tier."""

from hypothesis import given
from hypothesis import strategies as st

from domain.startup import StartupPhases

COLD = [  # the milestones of vLLM 0.32's start, in its own words (the times are the worker's clock)
    (9.0, "(APIServer pid=1) INFO 12-05 03:53:50 [api_utils.py:286] non-default args: {'model_tag': 'm'}"),
    (18.0, "(EngineCore pid=2) INFO 12-05 03:53:59 [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config"),
    (34.0, "(Worker pid=3) INFO 12-05 03:54:15 [default_loader.py:501] Loading weights took 0.02 seconds"),
    (35.0, "(Worker pid=3) INFO 12-05 03:54:16 [cpu_model_runner.py:87] Warming up model for the compilation..."),
    (75.0, "(Worker pid=3) INFO 12-05 03:54:56 [decorators.py:743] [backbone] saved AOT compiled function to /c/x"),
    (76.0, "(Worker pid=3) INFO 12-05 03:54:57 [cpu_model_runner.py:91] Warming up done."),
    (80.0, "(EngineCore pid=2) INFO [core.py:402] init engine (profile, create kv cache, warmup model) took 44.68 s"),
    (81.0, "(APIServer pid=1) INFO 12-05 03:55:02 [entry.py:140] Starting vLLM server on http://127.0.0.1:8000"),
]


def test_a_cold_start_phase_by_phase() -> None:
    phases = StartupPhases(started=0.0)
    said = [phase and phase[1] for phase in (phases.observe(line, now) for now, line in COLD)]
    assert said == [
        "vLLM starting: API server up (9.0 s), 9.0 s in",
        "vLLM starting: engine initialising (9.0 s), 18.0 s in",
        "vLLM starting: weights loaded (16.0 s), 34.0 s in",
        None,
        None,
        "vLLM starting: compiled (42.0 s, cache miss), 76.0 s in",
        "vLLM starting: KV cache and warm-up (4.0 s), 80.0 s in",
        "vLLM starting: ready (1.0 s), 81.0 s in",
    ]
    assert phases.summary(81.2) == (
        "vLLM ready in 81.2 s: API server up (9.0 s), engine initialising (9.0 s), weights loaded (16.0 s), "
        "compiled (42.0 s, cache miss), KV cache and warm-up (4.0 s), ready (1.0 s)"
    )


def test_a_warm_start_says_the_cache_was_hit() -> None:
    phases = StartupPhases(started=0.0)
    phases.observe("INFO [decorators.py:320] [backbone] Directly load AOT compilation from path /c/x", 30.0)
    phases.observe("INFO [cpu_model_runner.py:91] Warming up done.", 31.0)
    assert (phases.compile_cache, phases.seconds) == ("hit", {"compile": 31.0})


def test_lines_it_does_not_know_give_fewer_phases() -> None:
    phases = StartupPhases(started=0.0)
    assert phases.observe("INFO a vLLM of another day says hello", 1.0) is None
    assert phases.observe("INFO Application startup complete.", 5.0) == (
        "ready",
        "vLLM starting: ready (5.0 s), 5.0 s in",
    )
    assert phases.summary(5.0) == "vLLM ready in 5.0 s: ready (5.0 s)"
    assert StartupPhases(started=0.0).summary(3.0) == "vLLM ready in 3.0 s"


@given(st.lists(st.text(max_size=300), max_size=30))
def test_any_line_is_read_without_error_and_each_phase_once(lines: list[str]) -> None:
    phases = StartupPhases(started=0.0)
    for now, line in enumerate(lines):
        phases.observe(line, float(now))
    assert all(seconds >= 0 for seconds in phases.seconds.values())
    phases.summary(float(len(lines)))

"""vLLM 0.32's own start-up log, as the tier's real vLLM wrote it, read by the phase reader: every phase found, in
order, and the compile cache's verdict (vLLM wrote no such log when the phases were written: the reader's patterns
are held to the real thing here, not to a pasted copy)."""

from pathlib import Path

import pytest

from domain.startup import ANSWERING, MILESTONES, StartupPhases

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_every_phase_of_a_real_start_is_read_in_order(vllm_port: int, vllm_log_dir: Path) -> None:
    lines = (vllm_log_dir / "vllm.log").read_text(errors="replace").splitlines()
    phases = StartupPhases(started=0.0)
    seen = [phase for second, line in enumerate(lines, 1) if (phase := phases.observe(line, float(second)))]
    assert [name for name, _ in seen] == [name for name, _ in MILESTONES], "\n".join(lines[-60:])
    assert phases.compile_cache in {"hit", "miss"}, "no line said whether the compiled code came from the cache"
    assert any(ANSWERING.search(line) for line in lines)
    assert phases.summary(float(len(lines))).startswith(f"vLLM ready in {len(lines)}.0 s: API server up (")

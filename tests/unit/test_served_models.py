"""Which model a job addresses: the default, a name vLLM serves (asked again when unknown), or a clear refusal."""

import pytest

from application.served_models import ServedModels
from domain.errors import JobFailed
from tests.fakes.memory import FakeProbe


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def probe() -> FakeProbe:
    probe = FakeProbe()
    probe.served = ["llama", "llama-alias", "sql-lora"]
    return probe


@pytest.mark.parametrize("requested", [None, "default", "llama"])
async def test_absent_or_default_is_the_served_model_name_without_asking_vllm(
    probe: FakeProbe, requested: str | None
) -> None:
    probe.healthy = False  # /v1/models would fail: it is not asked
    assert await ServedModels(probe, "llama").resolve(requested) == "llama"


async def test_an_alias_or_adapter_vllm_serves_is_used_as_is(probe: FakeProbe) -> None:
    models = ServedModels(probe, "llama")
    assert await models.resolve("sql-lora") == "sql-lora"
    assert await models.resolve("llama-alias") == "llama-alias"


async def test_a_name_loaded_after_the_last_look_is_found_by_asking_again(probe: FakeProbe) -> None:
    clock = Clock()
    models = ServedModels(probe, "llama", refresh_every=1.0, clock=clock)
    assert await models.resolve("sql-lora") == "sql-lora"
    probe.served = [*probe.served, "new-lora"]
    clock.now = 1.0
    assert await models.resolve("new-lora") == "new-lora"


async def test_an_unknown_name_is_refused_listing_the_served_ones_and_asks_vllm_at_most_once_a_second(
    probe: FakeProbe,
) -> None:
    clock = Clock()
    asked = []
    served = probe.models

    async def counted() -> list[str]:
        asked.append(clock.now)
        return await served()

    probe.models = counted  # type: ignore[method-assign]
    models = ServedModels(probe, "llama", refresh_every=1.0, clock=clock)
    for _ in range(5):
        with pytest.raises(JobFailed) as failed:
            await models.resolve("gpt-4o")
    assert str(failed.value) == (
        "invalid_payload: model: gpt-4o is not served here; served: llama, llama-alias, sql-lora"
    )
    assert asked == [0.0]

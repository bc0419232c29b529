"""The metrics a worker keeps when no endpoint reads them: every call does nothing."""

from collections.abc import Callable


class NoMetrics:
    def job_ended(self, kind: str, outcome: str, seconds: float, to_result: float) -> None:
        pass

    def tokens(self, prompt: int, completion: int) -> None:
        pass

    def reconnected(self) -> None:
        pass

    def frame_dropped(self) -> None:
        pass

    def heartbeat_failed(self) -> None:
        pass

    def lease_renewed(self) -> None:
        pass

    def vllm_stalled(self) -> None:
        pass

    def payload_bytes(self, direction: str, count: int) -> None:
        pass

    def shipping_dropped(self, what: str) -> None:
        pass

    def vllm_surface(self, version: str, kinds: list[str] | None, fields: str) -> None:
        pass

    def startup_phase(self, phase: str, seconds: float) -> None:
        pass

    def lora_loaded(self, adapter: str, outcome: str, seconds: float) -> None:
        pass

    def observe(self, name: str, read: Callable[[], float]) -> None:
        pass


NO_METRICS = NoMetrics()

"""Ports: what the worker needs from the outside world, one protocol per reason to change."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from domain.exchange import VllmRequest
from domain.frames import OutboundFrame
from domain.rules import HeartbeatStatus
from domain.surface import VllmSurface


class QueueRejected(Exception):
    """The queue refused the handshake for good (401 or 403)."""


class QueueConnection(Protocol):
    """The queue socket: connects, reconnects, and keeps unsent frames in order."""

    async def run(
        self,
        on_connect: Callable[[], list[OutboundFrame]],
        on_message: Callable[[str | bytes], None],
        on_disconnect: Callable[[], None],
    ) -> None:
        """Stays connected until `close()`; raises `QueueRejected` if refused for good."""

    def send(self, frame: OutboundFrame) -> None:
        """Queues the frame; it is sent in order once connected and registered."""

    async def flush(self, timeout: float) -> bool:
        """Waits until every queued frame was handed to the socket; False on timeout."""

    async def close(self) -> None: ...

    @property
    def outbox_depth(self) -> int:
        """Frames waiting to be sent."""


class Heartbeats(Protocol):
    async def send(self, status: HeartbeatStatus, error_message: str | None = None) -> None:
        """Posts one heartbeat; failures are logged, never raised."""


class Inference(Protocol):
    """vLLM's OpenAI-compatible routes, for jobs: one call carries out every kind's exchange."""

    async def exchange(self, request: VllmRequest) -> dict[str, Any]:
        """vLLM's answer (JSON, or `{"content": bytes, "content_type": str}` when the request says bytes);
        `InferenceUnavailable` or `InferenceRejected` when there is none."""


class AdapterShelf(Protocol):
    """The folder of LoRA adapters (CASOLA_LORA_ROOT), one folder each, read from disk."""

    async def config_of(self, name: str) -> str | None:
        """The text of `<root>/<name>/adapter_config.json`, or None when there is no such adapter. `name` is a
        plain name, checked before (`domain.lora.name_problem`)."""

    def path_of(self, name: str) -> str:
        """The adapter's folder, as vLLM (beside the worker) is to read it."""


class AdapterLoader(Protocol):
    async def load_adapter(self, name: str, path: str) -> None:
        """vLLM loads the adapter at `path` under `name` (its /v1/load_lora_adapter); `InferenceRejected` with
        vLLM's reason when it cannot, `InferenceUnavailable` when vLLM does not answer."""


class VllmProbe(Protocol):
    """What the worker asks vLLM about itself: health, the models it serves, its load."""

    base_url: str

    async def health(self) -> bool: ...

    async def models(self) -> list[str]: ...

    async def metrics(self) -> str: ...

    async def load(self, *names: str) -> dict[str, float]:
        """Each of `names` in vLLM's /metrics, summed over its label sets (every served model); a name vLLM does not
        show is left out. Fails as `metrics` does, or with `InferenceRejected` for text that is not Prometheus'."""
        ...

    async def surface(self, routes: Iterable[str]) -> VllmSurface:
        """vLLM's version, the paths it serves and the request fields of `routes` (the built-in surface when it does
        not describe itself). Fails with `InferenceUnavailable` when vLLM cannot be reached."""
        ...


class PayloadStore(Protocol):
    """Payloads given by URL and results too large to send inline."""

    async def fetch(self, url: str) -> Any: ...

    async def fetch_bytes(self, url: str, max_bytes: int) -> bytes:
        """The body at `url` as it is (an audio job's `audio_url`), at most `max_bytes`."""

    async def upload(self, url: str, body: bytes) -> None: ...


class LaunchedProcess(Protocol):
    @property
    def pid(self) -> int: ...

    async def wait(self) -> int: ...

    async def stop(self, timeout: float) -> int:
        """SIGTERM to the whole process group, SIGKILL after `timeout`; the exit code."""


class ProcessLauncher(Protocol):
    async def launch(self, argv: list[str], on_line: Callable[[str], None]) -> LaunchedProcess:
        """Starts `argv` in its own process group; each output line goes to `on_line`."""


class WorkerMetrics(Protocol):
    """What the worker counts, for its /metrics; every call is a counter or gauge update, no I/O."""

    def job_ended(self, kind: str, outcome: str, seconds: float, to_result: float) -> None:
        """`outcome`: `result`, an error category, `revoked` or `abandoned`."""

    def tokens(self, prompt: int, completion: int) -> None: ...

    def reconnected(self) -> None: ...

    def frame_dropped(self) -> None: ...

    def heartbeat_failed(self) -> None: ...

    def lease_renewed(self) -> None: ...

    def vllm_stalled(self) -> None: ...

    def payload_bytes(self, direction: str, count: int) -> None:
        """`direction`: `fetched` or `uploaded`."""

    def shipping_dropped(self, what: str) -> None:
        """One log line (`entries`) or system snapshot (`snapshots`) lost from a full shipping buffer."""

    def startup_phase(self, phase: str, seconds: float) -> None:
        """How long a phase of vLLM's start-up took (`total` at ready)."""

    def vllm_surface(self, version: str, kinds: list[str] | None, fields: str) -> None:
        """The served vLLM's version, the kinds it serves (None: not known), and whence the fields (`openapi` or
        `built-in`)."""

    def lora_loaded(self, adapter: str, outcome: str, seconds: float) -> None:
        """A LoRA adapter's load into vLLM: `loaded` or `failed`, and how long it took."""

    def observe(self, name: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time: `running_jobs`, `capacity`, `queue_connected`, `outbox_depth`, `paused`,
        `backpressure`, `vllm_healthy`, `ready`."""


@dataclass(frozen=True)
class GpuQuery:
    """What `nvidia-smi --query-gpu` said: its rows, or that it is missing, or why it failed."""

    rows: str = ""
    missing: bool = False
    error: str | None = None


class GpuInspector(Protocol):
    async def query(self, fields: str = ...) -> GpuQuery:
        """`nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits`, within its time limit."""

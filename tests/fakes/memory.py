"""In-memory fakes of every port: they keep what they were given and do what the test scripts, with no sockets."""

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any

from domain.errors import InferenceUnavailable
from domain.exchange import VllmRequest
from domain.frames import OutboundFrame
from domain.outbox import Outbox
from domain.rules import HeartbeatStatus
from domain.surface import VllmSurface


class ManualClock:
    """`time.monotonic` that moves only when the test says."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeQueue:
    """The queue port: `sent` holds what reached the queue; while down, frames wait in a real `Outbox`."""

    def __init__(self, outbox_limit: int = 10_000) -> None:
        self.sent: list[OutboundFrame] = []
        self.outbox = Outbox(outbox_limit)
        self.connected = False
        self.connections = 0
        self.closed = False
        self.error: BaseException | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._down = asyncio.Event()
        self._on_message: Callable[[str | bytes], None] | None = None

    async def run(
        self,
        on_connect: Callable[[], list[OutboundFrame]],
        on_message: Callable[[str | bytes], None],
        on_disconnect: Callable[[], None],
    ) -> None:
        self._on_message = on_message
        while True:
            await self._up.wait()
            if self.error is not None:
                raise self.error
            self.connected, self.connections = True, self.connections + 1
            self.sent.extend(on_connect())
            self._send_outbox()
            await self._down.wait()
            self._down.clear()
            self.connected = False
            if self.error is not None:
                raise self.error
            on_disconnect()

    def send(self, frame: OutboundFrame) -> None:
        self.outbox.put(frame)
        if self.connected:
            self._send_outbox()

    def _send_outbox(self) -> None:
        while self.outbox:
            self.sent.append(self.outbox.first())
            self.outbox.sent()

    async def flush(self, timeout: float) -> bool:
        return not self.outbox

    async def close(self) -> None:
        self.closed = True

    def deliver(self, frame: dict[str, Any] | str) -> None:
        """A frame from the queue, as the socket would hand it over."""
        assert self._on_message is not None, "the worker is not connected"
        self._on_message(frame if isinstance(frame, str) else json.dumps(frame))

    def drop(self) -> None:
        self._up.clear()
        self._down.set()

    def restore(self) -> None:
        self._up.set()

    def fail_with(self, error: BaseException) -> None:
        """The connection task ends with `error` (a refusal, a crash)."""
        self.error = error
        self._up.set()
        self._down.set()

    def of_type(self, frame_type: str) -> list[Any]:
        return [frame for frame in self.sent if frame_type == frame.TYPE]


class FakeHeartbeats:
    def __init__(self) -> None:
        self.sent: list[tuple[HeartbeatStatus, str | None]] = []

    async def send(self, status: HeartbeatStatus, error_message: str | None = None) -> None:
        self.sent.append((status, error_message))

    @property
    def statuses(self) -> list[str]:
        return [status.value for status, _ in self.sent]


class FakeProbe:
    base_url = "http://vllm.fake"

    def __init__(self) -> None:
        self.healthy = True
        self.served = ["default"]
        self.checks = 0
        self.described = VllmSurface("0.0.0-fake")  # no /openapi.json: the built-in lists judge
        self.describing = asyncio.Event()  # cleared: a read of the surface waits until the test sets it
        self.describing.set()

    async def health(self) -> bool:
        self.checks += 1
        return self.healthy

    async def models(self) -> list[str]:
        if not self.healthy:
            raise InferenceUnavailable("fake vLLM is down")
        return self.served

    async def metrics(self) -> str:
        return 'vllm:num_requests_running{model_name="default"} 0\n'

    async def load(self, *names: str) -> dict[str, float]:
        return {name: 0.0 for name in names if name == "vllm:num_requests_running"}

    async def surface(self, routes: Iterable[str]) -> VllmSurface:
        await self.describing.wait()
        return self.described


class FakeInference:
    """Answers each request at once with a chat completion, or hangs while `hang` is set, or raises `error`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.cancelled = 0
        self.hang = False
        self.error: Exception | None = None
        self._release = asyncio.Event()

    async def exchange(self, request: VllmRequest) -> dict[str, Any]:
        route, body = request.route, request.body
        self.requests.append((route, body))
        if self.error is not None:
            raise self.error
        if self.hang:
            try:
                await self._release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"], "choices": [], "usage": {}}

    def release(self) -> None:
        self._release.set()


class FakePayloads:
    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}
        self.uploads: dict[str, bytes] = {}

    async def fetch(self, url: str) -> Any:
        return self.documents[url]

    async def upload(self, url: str, body: bytes) -> None:
        self.uploads[url] = body


class FakeProcess:
    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.pid = 4242
        self.on_line = on_line
        self.stopped = False
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def stop(self, timeout: float) -> int:
        self.stopped = True
        if not self._exit.done():
            self._exit.set_result(-15)
        return self._exit.result()

    def exit(self, code: int) -> None:
        self._exit.set_result(code)


class FakeLauncher:
    def __init__(self, cannot_start: OSError | None = None) -> None:
        self.cannot_start = cannot_start
        self.launched: list[list[str]] = []
        self.process: FakeProcess | None = None

    async def launch(self, argv: list[str], on_line: Callable[[str], None]) -> FakeProcess:
        self.launched.append(argv)
        if self.cannot_start is not None:
            raise self.cannot_start
        self.process = FakeProcess(on_line)
        return self.process

"""A one-machine stand-in for the Casola queue: a websockets server that pushes jobs and keeps every frame.

`send-test-job`, the tests and the benchmarks all use it; with `on_frame` it hands frames over instead of keeping them.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from domain import frames

Frame = dict[str, Any]


class LocalQueue:
    """Speaks the queue side of the protocol on 127.0.0.1; `received` holds every worker frame."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, on_frame: Callable[[Frame], Awaitable[None]] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.on_frame = on_frame
        self.received: list[Frame] = []
        self._server: Server | None = None
        self._workers: list[ServerConnection] = []
        self._turn = 0
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await serve(
            self._serve, self.host, self.port, process_request=self.check_handshake, max_size=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self._workers.clear()

    async def __aenter__(self) -> "LocalQueue":
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """Every worker is let in; a test bed may answer otherwise."""
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        self._workers.append(connection)
        try:
            async for message in connection:
                await self._record(message)
        except ConnectionClosed:
            pass
        finally:
            if connection in self._workers:
                self._workers.remove(connection)

    async def _record(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            frame = {"type": "<not json>", "raw": message}
        if self.on_frame is not None:
            await self.on_frame(frame)
            return
        async with self._changed:
            self.received.append(frame)
            self._changed.notify_all()

    async def push(self, frame: Frame | str, to: ServerConnection | None = None) -> ServerConnection:
        """Sends a frame (or raw text) to worker `to`, else to the newest connected one; returns the one sent to."""
        if to is None and not self._workers:
            raise RuntimeError("no worker connected")
        worker = to or self._workers[-1]
        await worker.send(frame if isinstance(frame, str) else frames.encode(frame), text=True)
        return worker

    def next_worker(self) -> ServerConnection:
        """The connected workers in turn."""
        if not self._workers:
            raise RuntimeError("no worker connected")
        self._turn = (self._turn + 1) % len(self._workers)
        return self._workers[self._turn]

    @property
    def connected(self) -> int:
        return len(self._workers)

    async def wait_for(self, matches: Callable[[Frame], bool], timeout: float = 10.0) -> Frame:
        """The first frame received (now or later) for which `matches` is true."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while True:
                    for frame in self.received:
                        if matches(frame):
                            return frame
                    await self._changed.wait()

    async def wait_for_type(self, frame_type: str, job_id: str | None = None, timeout: float = 10.0) -> Frame:
        return await self.wait_for(
            lambda frame: frame.get("type") == frame_type and (job_id is None or frame.get("job_id") == job_id),
            timeout,
        )

    def frames_of(self, frame_type: str) -> list[Frame]:
        return [frame for frame in self.received if frame.get("type") == frame_type]

    async def answer_to(self, job: Frame, timeout: float) -> Frame:
        """Pushes `job` to the newest worker and returns its `job_result` or `job_error`."""
        await self.push(job)
        return await self.wait_for(
            lambda frame: frame.get("type") in ("job_result", "job_error") and frame.get("job_id") == job["job_id"],
            timeout=timeout,
        )


def chat_job(
    job_id: str,
    messages: list[dict[str, Any]],
    mode: str = "transient",
    fence_token: int = 1,
    config_id: str = "local",
    **payload: Any,
) -> Frame:
    return frames.queue_job(job_id, mode, fence_token, config_id, "chat_completion", {"messages": messages, **payload})

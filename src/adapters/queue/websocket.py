"""The queue port over websockets' own client (`websockets.asyncio.client.connect`): keepalive, the closing
handshake, limits, compression, proxies from the environment and TLS are the library's; the backoff and the
ordered outbox are the worker's."""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from application.metrics import NO_METRICS
from application.ports import QueueRejected, WorkerMetrics
from domain.frames import OutboundFrame, encode
from domain.outbox import Outbox
from domain.untrusted import Masker, loggable, without_credentials

log = logging.getLogger("worker.queue")

REFUSED_FOR_GOOD = (401, 403)
OPEN_TIMEOUT = 10.0  # TCP, TLS (and a proxy's CONNECT) and the handshake


class Backoff:
    """1 s doubling to 60 s with jitter; reset only after a connection that stayed up."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, jitter: Callable[[], float] = random.random):
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.next = initial

    def delay(self) -> float:
        delay = self.next * (0.5 + self.jitter() / 2)
        self.next = min(self.next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.next = self.initial


class WebSocketQueue:
    """Keeps one connection to the queue; frames wait in the outbox while it is down."""

    def __init__(
        self,
        url: str,
        token: str | None,
        backoff: Backoff | None = None,
        outbox_limit: int = 10_000,
        stable_after: float = 10.0,
        max_frame_bytes: int = 32 * 1024 * 1024,
        keepalive: float = 15.0,
        open_timeout: float = OPEN_TIMEOUT,
        masker: Masker | None = None,
        metrics: WorkerMetrics = NO_METRICS,
    ) -> None:
        self.url = url
        self.metrics = metrics
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.backoff = backoff or Backoff()
        self.outbox = Outbox(outbox_limit)
        self.stable_after = stable_after
        self.max_frame_bytes = max_frame_bytes
        # A ping every quarter of `keepalive`, its pong awaited for two quarters, the closing handshake then for
        # one: a silent queue, or a path to it that froze, is noticed within `keepalive` seconds.
        self.ping_interval = keepalive / 4
        self.ping_timeout = keepalive / 2
        self.close_timeout = keepalive / 4
        self.open_timeout = open_timeout
        self.masker = masker or Masker()
        self._pending = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._closing = asyncio.Event()
        self._connection: ClientConnection | None = None

    def _wire(self, frame: OutboundFrame) -> bytes:
        """The frame's UTF-8 text, with no secret value in it (a vLLM error can quote one)."""
        return self.masker.encoded(encode(frame))

    @property
    def outbox_depth(self) -> int:
        return len(self.outbox)

    @property
    def shown_url(self) -> str:
        return without_credentials(self.url)

    def send(self, frame: OutboundFrame) -> None:
        """Into the outbox; the writer sends it in order once the connection is up."""
        dropped = self.outbox.put(frame)
        if dropped is not None:
            self.metrics.frame_dropped()
            log.error("queue: outbox full (%d frames), dropped a %s frame", self.outbox.limit, dropped.TYPE)
        self._empty.clear()
        self._pending.set()

    async def flush(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing.set()
        if self._connection is not None:
            await self._connection.close()

    async def run(
        self,
        on_connect: Callable[[], list[OutboundFrame]],
        on_message: Callable[[str | bytes], None],
        on_disconnect: Callable[[], None],
    ) -> None:
        while not self._closing.is_set():
            connected_at = await self._connection_lifetime(on_connect, on_message)
            if connected_at is not None:
                on_disconnect()
                if time.monotonic() - connected_at >= self.stable_after:
                    self.backoff.reset()
            if self._closing.is_set():
                return
            delay = self.backoff.delay()
            log.warning("queue: reconnecting in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    async def _connection_lifetime(
        self, on_connect: Callable[[], list[OutboundFrame]], on_message: Callable[[str | bytes], None]
    ) -> float | None:
        """One connection from handshake to close; when it was made, or None if it never was."""
        try:
            async with connect(
                self.url,
                additional_headers=self.headers,
                proxy=True,  # HTTPS_PROXY, HTTP_PROXY and NO_PROXY from the environment
                compression="deflate",
                open_timeout=self.open_timeout,
                max_size=self.max_frame_bytes,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=self.close_timeout,
            ) as connection:
                connected_at = time.monotonic()
                await self._serve(connection, on_connect, on_message)
                return connected_at
        except InvalidStatus as error:
            status = error.response.status_code
            if status in REFUSED_FOR_GOOD:
                raise QueueRejected(f"handshake refused with HTTP {status} at {self.shown_url}") from None
            log.warning("queue: handshake refused with HTTP %d", status)
        except (OSError, TimeoutError, InvalidHandshake) as error:
            log.warning("queue: cannot connect to %s: %s", self.shown_url, error or type(error).__name__)
        return None

    async def _serve(
        self,
        connection: ClientConnection,
        on_connect: Callable[[], list[OutboundFrame]],
        on_message: Callable[[str | bytes], None],
    ) -> None:
        try:
            for frame in on_connect():
                await connection.send(self._wire(frame), text=True)
            log.info("queue: connected to %s and registered", self.shown_url)
            self._connection = connection
            writer = asyncio.create_task(self._write(connection))
            try:
                async for message in connection:
                    on_message(message)
            finally:
                writer.cancel()
                self._connection = None
        except ConnectionClosed as closed:
            log.warning("queue: connection closed (%s)", loggable(closed.rcvd) if closed.rcvd else "no close frame")
        if not self._closing.is_set():
            log.warning("queue: disconnected")

    async def _write(self, connection: ClientConnection) -> None:
        """Sends the outbox in order; a frame leaves it only once the socket took it."""
        while True:
            while self.outbox:
                try:
                    await connection.send(self._wire(self.outbox.first()), text=True)
                except ConnectionClosed:
                    return
                self.outbox.sent()
            self._empty.set()
            self._pending.clear()
            await self._pending.wait()

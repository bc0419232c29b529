"""vLLM's HTTP API over keep-alive HTTP/1.1 connections parsed by llhttp: the job path's client, and the probe's.

A request costs a third of aiohttp's CPU (measured on 2 cores, an answer every 50 ms: 0.16 ms against 0.52 ms),
and most of a job's CPU at low rates was the client. The parser is httptools, which ships in vLLM's image
(uvicorn's). vLLM is a local, trusted server: no TLS, no redirects, no compression, no cookies.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import httptools

IDLE_CLOSE = 4.0  # below vLLM's 5 s keep-alive, so the worker never sends on a connection vLLM is closing
CONNECT_TIMEOUT = 5.0


class Answer(NamedTuple):
    status: int
    body: bytes


class NoAnswer(Exception):
    """The connection could not be made, or closed before any byte of an answer: another try may succeed."""


class BrokenAnswer(Exception):
    """The answer started but did not finish: the connection closed in it, or it is not HTTP."""


class _Connection(asyncio.Protocol):
    """One connection and llhttp's parser; one request at a time."""

    def __init__(self, idle: list["_Connection"]) -> None:
        self.pool_idle = idle  # the pool's idle connections, which this one leaves when it closes
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[Answer] | None = None
        self.body: list[bytes] = []
        self.started = False  # a byte of the current answer arrived
        self.length_known = False  # Content-Length or chunked: else the body ends when the connection does
        self.headers_done = False
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, answer: "asyncio.Future[Answer]") -> None:
        self.answer, self.body, self.started, self.length_known, self.headers_done = answer, [], False, False, False
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.answer is None:  # nothing was asked: the connection is out of step, so it is not used again
            self.close()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(BrokenAnswer(f"not an HTTP answer: {error}"))
            self.close()

    def on_header(self, name: bytes, _value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.length_known = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.close()
        self._finish()

    def _finish(self) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_result(Answer(self.parser.get_status_code(), b"".join(self.body)))
        self.body = []

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self in self.pool_idle:  # vLLM closed it while idle
            self.pool_idle.remove(self)
        if self.headers_done and not self.length_known:
            self._finish()  # an answer whose body runs to the end of the connection
        elif not self.started:
            self._fail(NoAnswer(type(exc).__name__ if exc else "connection closed"))
        else:
            self._fail(BrokenAnswer(type(exc).__name__ if exc else "connection closed in the answer"))

    def _fail(self, error: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class VllmHttp:
    """Keep-alive connections to vLLM, opened as needed (the worker's capacity bounds them), reused newest first.

    A request has no timer of its own: the caller's deadline cancels it, and cancelling closes its connection,
    which is how vLLM learns to abort the request.
    """

    def __init__(
        self, host: str, port: int, headers: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.host, self.port, self.clock = host, port, clock
        self.base_url = f"http://{host}:{port}"
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        fixed = {"Host": authority, **(headers or {})}
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self.answered_at = float("-inf")  # when vLLM last answered a POST with a success

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()) if headers else ""
        head = f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
        answer = await self._exchange(f"{head}{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        if answer.status < 300:
            self.answered_at = self.clock()
        return answer

    async def get(self, path: str) -> Answer:
        return await self._exchange(f"GET {path} HTTP/1.1\r\n{self._head}\r\n".encode())

    async def _exchange(self, request: bytes) -> Answer:
        connection = self._idle_connection() or await self._connect()
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._busy.add(connection)
        try:
            connection.send(request, answer)
            result = await answer
        except BaseException:
            connection.close()  # cancelled (deadline, revoke) or failed: vLLM sees the close and aborts
            raise
        finally:
            self._busy.discard(connection)
        if not connection.closed:
            connection.idle_since = self.clock()
            self._idle.append(connection)
        return result

    def _idle_connection(self) -> _Connection | None:
        now = self.clock()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_CLOSE:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, connection = await loop.create_connection(lambda: _Connection(self._idle), self.host, self.port)
        except (OSError, TimeoutError) as error:
            raise NoAnswer(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__) from None
        return connection

    def close(self) -> None:
        for connection in (*self._idle, *self._busy):
            connection.close()
        self._idle.clear()


async def vllm_http(host: str, port: int, api_key: str | None) -> AsyncIterator[VllmHttp]:
    """The worker's connections to vLLM, closed at the end."""
    http = VllmHttp(host, port, {"Authorization": f"Bearer {api_key}"} if api_key else None)
    try:
        yield http
    finally:
        http.close()

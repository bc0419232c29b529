"""vLLM's HTTP API over aiohttp (in vLLM's image): the job path's client and the probe's, one pool of keep-alive
connections, and a second try on a fresh connection when one closed before any byte of an answer."""

import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import aiohttp

IDLE_CLOSE = 4.0  # below vLLM's (uvicorn's) 5 s keep-alive: the worker closes an idle connection first
CONNECT_TIMEOUT = 5.0
PROBES = 2  # connections for /health, /metrics and /v1/models beside the jobs'
# TCP keepalive: a peer that vanished (a half-open connection to a remote vLLM) is noticed within about 25 s.
KEEPALIVE = ((socket.SO_KEEPALIVE, 1),)
TCP_KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))


class Answer(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json"


class NoAnswer(Exception):
    """Not one byte of an answer: vLLM cannot be reached, or the connection closed before it answered."""


class BrokenAnswer(Exception):
    """The answer started but did not finish, or vLLM sent nothing for the read timeout."""


def keepalive_socket(address: Any) -> socket.socket:
    """aiohttp's socket for vLLM, with TCP keepalive on."""
    family, kind, protocol, _, _ = address
    sock = socket.socket(family=family, type=kind, proto=protocol)
    for option, value in KEEPALIVE:
        sock.setsockopt(socket.SOL_SOCKET, option, value)
    for name, value in TCP_KEEPALIVE:
        if hasattr(socket, name):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return sock


class VllmClient:
    """One `ClientSession` to vLLM; no cookies, no redirects, and one retry only: on a fresh connection, when the
    first closed before any byte of an answer (an idle keep-alive connection vLLM closed as the request met it).

    A request has no total timer of its own: the job's deadline cancels it, and cancelling closes its connection,
    which is how vLLM learns to abort the request. The read timeout bounds vLLM's silence on one request.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        connections: int,
        read_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.read_timeout = read_timeout
        # Every request's headers, set once (a GET's Content-Type is harmless); aiohttp adds only Host and the length.
        self.headers = {
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
        }
        self.connections = connections
        self.answered_at = float("-inf")  # when vLLM last answered a POST with a success
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._pooled = self._session(keepalive_timeout=IDLE_CLOSE)
        self._fresh = self._session(force_close=True)

    def _session(self, **pool: Any) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, socket_factory=keepalive_socket, **pool),
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=self.read_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            auto_decompress=False,
        )

    async def close(self) -> None:
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        """One POST; a second, on a fresh connection, only when the first got no byte of an answer."""
        try:
            answer = await self._request(self._sessions()[0], "POST", path, body, headers)
        except NoAnswer:
            answer = await self._request(self._sessions()[1], "POST", path, body, headers)
        if answer.status < 300:
            self.answered_at = self.clock()
        return answer

    async def get(self, path: str) -> Answer:
        return await self._request(self._sessions()[0], "GET", path, None, None)

    def _sessions(self) -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        assert self._pooled is not None and self._fresh is not None, "VllmClient.open() first"
        return self._pooled, self._fresh

    async def _request(
        self, session: aiohttp.ClientSession, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> Answer:
        try:
            response = await session.request(method, f"{self.base_url}{path}", data=body, headers=headers)
        except aiohttp.SocketTimeoutError:  # the read timeout; a connect timeout is no answer, tried once more
            raise BrokenAnswer(f"vLLM sent nothing for {self.read_timeout:g} s (VLLM_READ_TIMEOUT)") from None
        except aiohttp.ClientConnectionError as error:
            raise NoAnswer(described(error)) from None
        except aiohttp.ClientError as error:  # an answer that is not HTTP
            raise BrokenAnswer(described(error)) from None
        async with response:
            try:
                return Answer(response.status, await response.read(), response.content_type)
            except aiohttp.SocketTimeoutError:
                raise BrokenAnswer(f"vLLM's answer stalled for {self.read_timeout:g} s (VLLM_READ_TIMEOUT)") from None
            except aiohttp.ClientError as error:
                raise BrokenAnswer(described(error)) from None


def described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def vllm_client(
    base_url: str, api_key: str | None, capacity: int, read_timeout: float | None
) -> AsyncIterator[VllmClient]:
    """The worker's client of vLLM: room for `capacity` jobs and the probes, closed at the end."""
    client = VllmClient(base_url, api_key, capacity + PROBES, read_timeout)
    await client.open()
    try:
        yield client
    finally:
        await client.close()

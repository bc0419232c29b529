"""The job path's HTTP client against a real TCP server on 127.0.0.1 that answers with scripted bytes.

vLLM's server (uvicorn) sends Content-Length or chunked answers; the client reads any HTTP/1.1 framing, reuses
a connection only while it is safely idle, and tells an answer that never started from one that broke off.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from adapters.http_vllm_probe import HttpVllmProbe
from adapters.vllm_http import IDLE_CLOSE, BrokenAnswer, NoAnswer, VllmHttp
from tests.conftest import eventually

Script = Callable[[bytes, int], bytes | None]  # (request, its number on the server) -> bytes to send, None: close


class ScriptedServer:
    """Answers each request on a connection with the script's bytes; counts connections and requests."""

    def __init__(self, script: Script, close_after: bool) -> None:
        self.script, self.close_after = script, close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.script(request, len(self.requests))
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()


@asynccontextmanager
async def scripted(
    script: Script, clock: Callable[[], float] | None = None, close_after: bool = False
) -> AsyncIterator[tuple[ScriptedServer, VllmHttp]]:
    server = ScriptedServer(script, close_after)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    http = VllmHttp("127.0.0.1", port, {"Authorization": "Bearer key"}, **({"clock": clock} if clock else {}))
    try:
        yield server, http
    finally:
        http.close()
        listening.close()


def sized(body: bytes, *headers: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


async def test_a_request_carries_the_fixed_headers_and_reuses_its_connection() -> None:
    async with scripted(lambda request, n: sized(b'{"n":%d}' % n)) as (server, http):
        first = await http.post("/v1/chat/completions", b'{"a":1}', {"X-Request-Id": "job-1"})
        second = await http.get("/health")
    assert (first.status, first.body, second.body) == (200, b'{"n":1}', b'{"n":2}')
    assert server.connections == 1
    head = server.requests[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    for line in (
        "Host: 127.0.0.1:",
        "Authorization: Bearer key",
        "Content-Type: application/json",
        "X-Request-Id: job-1",
    ):
        assert f"\r\n{line}" in head
    assert head.endswith('Content-Length: 7\r\n\r\n{"a":1}')
    assert server.requests[1].decode().startswith("GET /health HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "answer",
    [
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"a"\r\n4\r\n:10}\r\n0\r\n\r\n',
        sized(b'{"a":10}', b"server: uvicorn"),
    ],
    ids=["chunked", "content-length"],
)
async def test_any_http_framing_is_read(answer: bytes) -> None:
    async with scripted(lambda request, n: answer) as (server, http):
        assert (await http.post("/v1/embeddings", b"{}")).body == b'{"a":10}'
        assert (await http.post("/v1/embeddings", b"{}")).body == b'{"a":10}'
    assert server.connections == 1


async def test_an_answer_that_runs_to_the_close_is_whole_and_its_connection_not_reused() -> None:
    answer = b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"closed":true}'
    async with scripted(lambda request, n: answer, close_after=True) as (server, http):
        assert (await asyncio.wait_for(http.post("/v1/completions", b"{}"), 5)).body == b'{"closed":true}'
        assert (await asyncio.wait_for(http.post("/v1/completions", b"{}"), 5)).body == b'{"closed":true}'
    assert server.connections == 2


async def test_connection_close_is_honoured() -> None:
    async with scripted(lambda request, n: sized(b"{}", b"connection: close")) as (server, http):
        await http.get("/health")
        await http.get("/health")
    assert server.connections == 2


async def test_a_connection_idle_near_vllms_keep_alive_is_not_used_again() -> None:
    now = [0.0]
    async with scripted(lambda request, n: sized(b"{}"), clock=lambda: now[0]) as (server, http):
        await http.get("/health")
        now[0] += IDLE_CLOSE - 0.5
        await http.get("/health")
        assert server.connections == 1
        now[0] += IDLE_CLOSE
        await http.get("/health")
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_leaves_the_pool() -> None:
    async with scripted(lambda request, n: sized(b"{}")) as (server, http):
        await http.get("/health")
        for connection in list(http._idle):
            assert connection.transport is not None
            connection.transport.close()
        await asyncio.wait_for(server.closed.wait(), 5)
        await http.get("/health")
    assert server.connections == 2


async def test_an_answer_that_never_started_is_no_answer_and_one_that_broke_off_is_broken() -> None:
    async with scripted(lambda request, n: None) as (_, http):
        with pytest.raises(NoAnswer):
            await asyncio.wait_for(http.get("/health"), 5)
    half = b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"half"'
    async with scripted(lambda request, n: half, close_after=True) as (_, http):
        with pytest.raises(BrokenAnswer):
            await asyncio.wait_for(http.get("/health"), 5)


async def test_bytes_that_are_not_http_are_a_broken_answer() -> None:
    async with scripted(lambda request, n: b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as (_, http):
        with pytest.raises(BrokenAnswer, match="not an HTTP answer"):
            await asyncio.wait_for(http.get("/health"), 5)


async def test_nothing_listening_is_no_answer_naming_the_cause() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    http = VllmHttp("127.0.0.1", port)
    with pytest.raises(NoAnswer, match="ConnectionRefusedError"):
        await http.get("/health")


async def test_a_cancelled_request_closes_its_connection() -> None:
    async with scripted(lambda request, n: b"" if n == 1 else sized(b"{}")) as (server, http):
        request = asyncio.create_task(http.post("/v1/chat/completions", b"{}"))
        await eventually(lambda: server.requests, what="the request reached the server")
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait_for(server.closed.wait(), 5)  # the server saw the close: vLLM aborts there
        assert (await http.get("/health")).status == 200
    assert server.connections == 2


async def test_a_job_just_answered_spares_the_health_check_and_a_failed_one_does_not() -> None:
    now = [100.0]
    answers = {"/v1/chat/completions": sized(b"{}"), "/health": sized(b"")}

    def by_path(request: bytes, n: int) -> bytes:
        path = request.split(b" ")[1].decode()
        return answers[path]

    async with scripted(by_path, clock=lambda: now[0]) as (server, http):
        probe = HttpVllmProbe(http, fresh_answer=1.0)
        assert await probe.health()
        await http.post("/v1/chat/completions", b"{}")
        now[0] += 0.9
        assert await probe.health()
        assert [request.split(b" ")[1] for request in server.requests] == [b"/health", b"/v1/chat/completions"]
        now[0] += 0.2
        assert await probe.health()
        answers["/v1/chat/completions"] = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}"
        await http.post("/v1/chat/completions", b"{}")
        assert await probe.health()
    assert [request.split(b" ")[1] for request in server.requests].count(b"/health") == 3

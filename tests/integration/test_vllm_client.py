"""The job path's HTTP client (aiohttp) against a real TCP server on 127.0.0.1 that answers with scripted bytes.

vLLM's server (uvicorn), or a proxy in front of it, sends any HTTP/1.1 framing and closes keep-alive connections
when it likes; the client reads the framing, retries once on a fresh connection an answer that never started,
tells it from one that broke off, and bounds vLLM's silence with the read timeout.
"""

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from adapters.vllm.client import BrokenAnswer, NoAnswer, VllmClient
from adapters.vllm.inference import HttpInference
from adapters.vllm.probe import HttpVllmProbe
from domain.errors import InferenceUnavailable
from domain.exchange import VllmRequest
from tests.conftest import eventually

# (request, its number on the server) -> bytes to send (a list: pieces, sent apart), None: close, b"": stay silent
Script = Callable[[bytes, int], bytes | list[bytes] | None]


class ScriptedServer:
    """Answers each request on a connection with the script's bytes; counts connections and requests."""

    def __init__(self, script: Script, close_after: bool, linger: Callable[[], float] | None) -> None:
        self.script, self.close_after, self.linger = script, close_after, linger
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
                for piece in answer if isinstance(answer, list) else [answer]:
                    writer.write(piece)
                    await writer.drain()
                    if isinstance(answer, list):
                        await asyncio.sleep(0.001)
                if not answer:  # silent: neither a byte nor a FIN, as a peer that vanished, until the client goes
                    await reader.read()
                    break
                if self.linger is not None:  # a server that closes keep-alive connections just after answering
                    await asyncio.sleep(self.linger())
                    break
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()


@asynccontextmanager
async def scripted(
    script: Script,
    clock: Callable[[], float] | None = None,
    close_after: bool = False,
    linger: Callable[[], float] | None = None,
    connections: int = 4,
    read_timeout: float | None = None,
) -> AsyncIterator[tuple[ScriptedServer, VllmClient]]:
    server = ScriptedServer(script, close_after, linger)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    options = {"clock": clock} if clock else {}
    http = VllmClient(f"http://127.0.0.1:{port}", "key", connections, read_timeout, **options)
    await http.open()
    try:
        yield server, http
    finally:
        await http.close()
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


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async with scripted(lambda request, n: sized(b"{}"), linger=lambda: 0.0) as (server, http):
        await http.get("/health")
        await asyncio.wait_for(server.closed.wait(), 5)  # the server closed its side of the idle connection
        assert (await http.get("/health")).status == 200
    assert server.connections == 2


async def test_an_answer_that_never_started_is_tried_once_more_on_a_fresh_connection_then_no_answer() -> None:
    async with scripted(lambda request, n: None) as (server, http):
        with pytest.raises(NoAnswer, match="ServerDisconnectedError"):
            await asyncio.wait_for(http.post("/v1/completions", b"{}"), 5)
    assert (server.connections, len(server.requests)) == (2, 2)
    half = b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"half"'
    async with scripted(lambda request, n: half, close_after=True) as (server, http):
        with pytest.raises(BrokenAnswer):
            await asyncio.wait_for(http.post("/v1/completions", b"{}"), 5)
    assert len(server.requests) == 1, "an answer that started is never sent again"


async def test_bytes_that_are_not_http_are_a_broken_answer() -> None:
    async with scripted(lambda request, n: b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as (_, http):
        with pytest.raises(BrokenAnswer, match="ClientResponseError"):
            await asyncio.wait_for(http.get("/health"), 5)


async def test_nothing_listening_is_no_answer_naming_the_cause() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    http = VllmClient(f"http://127.0.0.1:{port}", None, 1)
    await http.open()
    try:
        with pytest.raises(NoAnswer, match=r"ClientConnectorError: Cannot connect to host 127\.0\.0\.1"):
            await http.get("/health")
    finally:
        await http.close()


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


def chat_answer(n: int) -> bytes:
    body = b'{"id":"c%d","object":"chat.completion","choices":[]}' % n
    return sized(body)


async def test_a_server_that_closes_every_connection_just_after_answering_loses_no_request() -> None:
    """As a proxy, a restarting vLLM or a keep-alive limit does: 200 requests, 8 at once, every one answered."""
    linger = lambda: random.uniform(0, 0.003)  # noqa: E731
    async with scripted(lambda request, n: chat_answer(n), linger=linger, connections=10) as (server, http):
        inference = HttpInference(http)
        slots = asyncio.Semaphore(8)

        async def one(number: int) -> dict[str, object]:
            async with slots:
                return await inference.exchange(VllmRequest("/v1/chat/completions", {"n": number}))

        answers = await asyncio.wait_for(asyncio.gather(*(one(number) for number in range(200))), 60)
    assert len(answers) == 200 and all(answer["object"] == "chat.completion" for answer in answers)
    assert server.connections >= 100, "the server did close connections"


async def test_an_answer_in_small_chunked_pieces_is_read_whole() -> None:
    body = b'{"object":"chat.completion","choices":[]}'
    pieces = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    pieces += [b"%x\r\n%s\r\n" % (len(body[i : i + 3]), body[i : i + 3]) for i in range(0, len(body), 3)]
    pieces.append(b"0\r\n\r\n")
    async with scripted(lambda request, n: pieces) as (_, http):
        assert await HttpInference(http).exchange(VllmRequest("/v1/chat/completions", {})) == {
            "object": "chat.completion",
            "choices": [],
        }


async def test_a_reset_in_the_body_fails_that_request_and_the_next_is_fine() -> None:
    def script(request: bytes, n: int) -> bytes | None:
        return b'HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{"obj' if n == 1 else sized(b'{"ok":1}')

    async with scripted(script, close_after=True) as (server, http):
        inference = HttpInference(http)
        with pytest.raises(InferenceUnavailable, match="vLLM's answer broke off"):
            await asyncio.wait_for(inference.exchange(VllmRequest("/v1/chat/completions", {})), 5)
        assert await asyncio.wait_for(inference.exchange(VllmRequest("/v1/chat/completions", {})), 5) == {"ok": 1}
    assert len(server.requests) == 2


async def test_a_100_continue_before_the_answer_is_not_taken_for_it() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + sized(b'{"final":true}')
    async with scripted(lambda request, n: answer) as (_, http):
        assert await HttpInference(http).exchange(VllmRequest("/v1/chat/completions", {})) == {"final": True}


async def test_a_silent_connection_fails_at_the_read_timeout_not_the_job_deadline() -> None:
    """A half-open connection (no byte, no FIN): the job's slot is freed at VLLM_READ_TIMEOUT."""
    async with scripted(lambda request, n: b"", read_timeout=0.3) as (server, http):
        with pytest.raises(InferenceUnavailable, match=r"vLLM sent nothing for 0.3 s \(VLLM_READ_TIMEOUT\)"):
            await asyncio.wait_for(HttpInference(http).exchange(VllmRequest("/v1/chat/completions", {})), 30)
    assert len(server.requests) == 1, "a timeout is never tried again"

"""The queue adapter (websockets' own client) against a real websockets server on 127.0.0.1.

What the worker's service tests do not reach: fragmented, binary and oversized messages, text that is not
UTF-8, the queue's pings, compression, proxies, a result of several MB, a handshake that never answers, a bug
in the frame handler.
"""

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame
from websockets.server import ServerProtocol

from adapters.queue.websocket import Backoff, WebSocketQueue
from domain.frames import JobProgress, JobResult, OutboundFrame, Register
from tests.conftest import eventually

REGISTER = Register("w", "c", 1)


class Queue:
    """A websockets server that keeps its connections and every text the worker sent."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.texts: list[str] = []
        self.closed = 0

    async def handle(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        try:
            async for text in connection:
                self.texts.append(str(text))
        finally:
            self.closed += 1

    def frames(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in map(json.loads, self.texts) if frame["type"] == kind]


@asynccontextmanager
async def running(
    url: str, token: str | None = None, on_message: Callable[[str | bytes], None] = lambda message: None, **options: Any
) -> AsyncIterator[WebSocketQueue]:
    """The worker's side of the socket, connecting to `url` until the block ends; then closed and its task done."""
    socket = WebSocketQueue(url, token, Backoff(0.05, 0.1), **options)
    task = asyncio.create_task(socket.run(lambda: [REGISTER], on_message, lambda: None))
    try:
        yield socket
    finally:
        await socket.close()
        await asyncio.wait_for(task, 5)


@asynccontextmanager
async def connected(
    on_message: Callable[[str | bytes], None] | None = None, **options: Any
) -> AsyncIterator[tuple[Queue, WebSocketQueue, list[str | bytes]]]:
    queue = Queue()
    messages: list[str | bytes] = []
    async with serve(queue.handle, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with running(f"ws://127.0.0.1:{port}", "token", on_message or messages.append, **options) as socket:
            await eventually(lambda: queue.frames("register"), what="registered")
            yield queue, socket, messages


async def test_a_fragmented_message_arrives_whole_and_a_binary_one_as_is() -> None:
    async with connected() as (queue, _, messages):
        await queue.connections[0].send(iter(['{"type": ', '"job_revoked", ', '"job_id": "j"}']))
        await queue.connections[0].send(b'{"type": "error"}')
        await eventually(lambda: len(messages) == 2, what="two messages")
    assert messages == ['{"type": "job_revoked", "job_id": "j"}', b'{"type": "error"}']


async def test_text_that_is_not_utf8_closes_the_connection_with_1007_and_the_worker_comes_back() -> None:
    async with connected() as (queue, _, messages):
        await queue.connections[0].send(b"\xff\xfe", text=True)  # a text frame, sent without checking it
        await eventually(lambda: len(queue.frames("register")) == 2, what="a new connection")
        await queue.connections[1].send('{"type": "error"}')
        await eventually(lambda: messages, what="the next message")
    assert queue.connections[0].close_code == 1007 and messages == ['{"type": "error"}']


async def test_a_message_over_the_limit_closes_the_connection_and_the_worker_comes_back() -> None:
    async with connected(max_frame_bytes=1000) as (queue, _, messages):
        await queue.connections[0].send("x" * 2000)
        await eventually(lambda: len(queue.frames("register")) == 2, what="a new connection")
        assert messages == [] and queue.connections[0].close_code == 1009


async def test_the_queues_pings_are_answered_with_their_own_payload() -> None:
    async with connected(keepalive=600) as (queue, _, _messages):  # the worker's own pings far off
        for payload in (b"ping-1", b"ping-2"):
            pong = await queue.connections[0].ping(payload)  # resolves only on a pong carrying this payload
            await asyncio.wait_for(pong, 2)
    assert len(queue.connections) == 1


async def test_frames_are_compressed_when_the_queue_agrees() -> None:
    async with connected() as (queue, _, _messages):
        extensions = queue.connections[0].protocol.extensions
    assert [extension.name for extension in extensions] == ["permessage-deflate"]


async def test_the_queue_is_reached_through_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY and HTTP_PROXY as every client takes them: here a proxy that refuses, so nothing gets through."""
    asked: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        async with running("ws://queue.example:8080"):
            await eventually(lambda: asked, what="the proxy asked")
    finally:
        server.close()
    assert asked[0].startswith(b"CONNECT queue.example:8080 HTTP/1.1\r\n")


async def test_a_result_of_several_megabytes_goes_out_whole_and_in_order() -> None:
    big = {"text": "x" * (8 * 1024 * 1024)}
    async with connected() as (queue, socket, _):
        for frame in (JobResult("big", 1, big), JobProgress("after", 1)):
            socket.send(frame)
        assert await socket.flush(10)
        await eventually(lambda: len(queue.texts) == 3, what="both frames")
    assert [frame["type"] for frame in map(json.loads, queue.texts[1:])] == ["job_result", "job_progress"]
    assert json.loads(queue.texts[1])["result"] == big


async def test_frames_sent_while_disconnected_wait_and_go_in_order() -> None:
    async with connected() as (queue, socket, _):
        await queue.connections[0].close()
        await eventually(lambda: queue.closed == 1, what="the close")
        sent: list[OutboundFrame] = [JobProgress(f"j{n}", n) for n in range(5)]
        for frame in sent:
            socket.send(frame)
        await eventually(lambda: len(queue.frames("job_progress")) == 5, what="the outbox sent")
    assert [frame["job_id"] for frame in queue.frames("job_progress")] == ["j0", "j1", "j2", "j3", "j4"]


async def test_a_handshake_that_never_answers_is_given_up_and_tried_again() -> None:
    attempts: list[int] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(1)
        await reader.read()  # reads the request, answers nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running(f"ws://127.0.0.1:{port}", open_timeout=0.3):
            await eventually(lambda: len(attempts) >= 2, what="a second attempt")
    finally:
        server.close()


async def test_a_bug_in_the_frame_handler_ends_the_connection_loudly() -> None:
    def broken(message: str | bytes) -> None:
        raise ZeroDivisionError("a bug")

    queue = Queue()
    async with serve(queue.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        socket = WebSocketQueue(f"ws://127.0.0.1:{port}", None, Backoff(0.05, 0.1))
        task = asyncio.create_task(socket.run(lambda: [REGISTER], broken, lambda: None))
        await eventually(lambda: queue.connections, what="connected")
        await queue.connections[0].send('{"type": "error"}')
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(task, 5)


async def test_a_queue_that_closes_the_socket_but_never_the_connection_is_left_after_the_close_timeout() -> None:
    """The queue sends a close frame, then keeps the TCP connection open and silent: the worker drops it."""
    registered: list[bytes] = []

    async def closes_but_stays(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
        [request] = protocol.events_received()
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        while not any(isinstance(event, Frame) for event in protocol.events_received()):
            writer.writelines(protocol.data_to_send())
            protocol.receive_data(await reader.read(65536))  # until the register frame
        registered.append(b"register")
        protocol.send_close(1001, "going away")
        writer.writelines(protocol.data_to_send())
        await reader.read()  # holds the connection, silent, until the worker drops it
        writer.close()

    server = await asyncio.start_server(closes_but_stays, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running(f"ws://127.0.0.1:{port}", keepalive=0.8):
            await eventually(lambda: len(registered) >= 2, timeout=5, what="a new connection after the close timeout")
    finally:
        server.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    cert, key = tmp_path / "queue.pem", tmp_path / "queue.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=queue",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_a_wss_queue_is_reached_over_tls_only_with_a_certificate_the_worker_trusts(
    certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    queue = Queue()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))  # trusts nothing yet
    async with serve(queue.handle, "127.0.0.1", 0, ssl=tls) as server:
        port = server.sockets[0].getsockname()[1]
        async with running(f"wss://127.0.0.1:{port}", "token"):
            await eventually(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, what="the certificate refused")
            assert not queue.connections
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            await eventually(lambda: queue.frames("register"), what="registered over TLS")

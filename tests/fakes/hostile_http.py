"""A payload host on 127.0.0.1 that answers what a test scripts, byte for byte: bombs, bodies and headers that never
end. No HTTP server library sends these, so this one writes its answers itself; it reads requests only as far as a
test needs (the request line, the headers, a body of Content-Length bytes)."""

import asyncio
import functools
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

MiB = 1024 * 1024
Body = bytes | Callable[[], AsyncIterator[bytes]]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = b""
    endless_header: bool = False  # a header line that never ends, instead of a body


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@functools.cache
def bomb(encoding: str, decoded_mib: int = 200) -> bytes:
    """`decoded_mib` MiB of zeros, compressed as `encoding` (gzip, deflate with zlib's wrapper, or raw deflate):
    about a thousandth of that on the wire."""
    wbits = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[encoding]
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(MiB)
    return b"".join(compressor.compress(zeros) for _ in range(decoded_mib)) + compressor.flush()


def compressed(encoding: str, data: bytes) -> bytes:
    wbits = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[encoding]
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


async def endless(chunk: bytes = b"x" * 65536) -> AsyncIterator[bytes]:
    """A body that never ends, as fast as the reader takes it."""
    while True:
        yield chunk


class HostileServer:
    """`answers[path]` is what the path answers (404 when absent); `requests` keeps what came."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[Request] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> "HostileServer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._request(reader)
            self.requests.append(request)
            await self._answer(writer, self.answers.get(request.path, Answer(404, body=b"no such path")))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> Request:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.strip().split("\r\n")
        method, path, _ = request_line.split(" ")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, path, headers, body)

    async def _answer(self, writer: asyncio.StreamWriter, answer: Answer) -> None:
        writer.write(f"HTTP/1.1 {answer.status} Scripted\r\nConnection: close\r\n".encode())
        if answer.endless_header:
            writer.write(b"X-Endless: ")
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        for name, value in answer.headers.items():
            writer.write(f"{name}: {value}\r\n".encode())
        if isinstance(answer.body, bytes):
            writer.write(f"Content-Length: {len(answer.body)}\r\n\r\n".encode() + answer.body)
        else:
            writer.write(b"\r\n")  # no length: the body ends when the connection does
            async for chunk in answer.body():
                writer.write(chunk)
                await writer.drain()
        await writer.drain()

"""A response body read within a cap, counted on the bytes on the wire and again on the bytes decoded.

The worker asks for `identity`; a server that encodes anyway (gzip, deflate) is decoded here, by zlib with a bound on
each step's output, so a bomb (a few kilobytes that inflate to gigabytes) ends at the cap plus one step, never
inflated whole. An encoding zlib does not read is refused by name. httpx's own decoding has no such bound.
"""

import zlib
from collections.abc import Callable, Iterator

import httpx

from domain.errors import PayloadTransferFailed
from domain.untrusted import loggable

DECODE_STEP = 64 * 1024  # the most one step of decoding yields
ANSWER_BYTES = 4096  # of an answer that is not the payload (an error page): enough for its message
IDENTITY = {"Accept-Encoding": "identity"}
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
Decode = Callable[[bytes], Iterator[bytes]]


async def read_within(response: httpx.Response, cap: int, cap_named: str = "") -> tuple[bytes, int]:
    """The decoded body and the bytes it took on the wire; PayloadTransferFailed once either passes `cap`."""
    too_large = PayloadTransferFailed(f"larger than the {cap} byte cap{cap_named}")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise too_large
    inflater = _Inflater.of(response.headers.get("content-encoding", ""))
    pieces: list[bytes] = []
    wire = size = 0
    async for raw in response.aiter_raw():
        wire += len(raw)
        if wire > cap:
            raise too_large
        for piece in inflater.decode(raw) if inflater else (raw,):
            size += len(piece)
            if size > cap:
                raise too_large
            pieces.append(piece)
    if inflater is not None:
        inflater.finish()
    return b"".join(pieces), wire


async def answer_text(response: httpx.Response) -> str:
    """The start of an answer's body, for an error message: at most ANSWER_BYTES read, never decoded."""
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        return ""
    start = bytearray()
    async for raw in response.aiter_raw():
        start += raw[: ANSWER_BYTES - len(start)]
        if len(start) >= ANSWER_BYTES:
            break
    return loggable(start.decode("utf-8", "replace").strip(), 200)


class _Inflater:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), decoded a bounded step at a time."""

    def __init__(self, encoding: str, wbits: int) -> None:
        self.encoding, self.wbits = encoding, wbits
        self.inflate = zlib.decompressobj(wbits)
        self.started = False

    @classmethod
    def of(cls, header: str) -> "_Inflater | None":
        encodings = [name.strip().lower() for name in header.split(",") if name.strip().lower() not in ("", "identity")]
        if not encodings:
            return None
        if len(encodings) > 1 or encodings[0] not in _WBITS:
            raise PayloadTransferFailed(f"Content-Encoding {loggable(header, 64)!r} is not read (identity was asked)")
        return cls(encodings[0], _WBITS[encodings[0]])

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            yield from self._steps(data)
        except zlib.error as error:
            raise PayloadTransferFailed(f"the {self.encoding} body does not decode: {error}") from None

    def _steps(self, data: bytes) -> Iterator[bytes]:
        if not self.started and self.encoding == "deflate" and data:
            self.started = True
            try:
                self.inflate.copy().decompress(data[:2], 1)
            except zlib.error:  # no zlib header: raw deflate
                self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        while data:
            piece = self.inflate.decompress(data, DECODE_STEP)
            data = self.inflate.unconsumed_tail
            yield piece
        while len(piece := self.inflate.decompress(b"", DECODE_STEP)) > 0:  # output zlib still holds
            yield piece

    def finish(self) -> None:
        if not self.inflate.eof:
            raise PayloadTransferFailed(f"the {self.encoding} body ends before its end")

"""A payload server that never finishes: one byte of its body every 0.1 s."""

import asyncio


async def dripping_server() -> tuple[asyncio.Server, list[int]]:
    """Answers 200 with a body that comes one byte every 0.1 s, forever."""
    sent: list[int] = []

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            while True:
                writer.write(b" ")
                await writer.drain()
                sent.append(1)
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            writer.close()

    return await asyncio.start_server(drip, "127.0.0.1", 0), sent

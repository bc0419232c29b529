"""vLLM's output to the worker when they run side by side in the container: the entrypoint pipes vLLM's output
through `python3 -m adapters.vllm.log_relay PORT`, which writes every line on (the container's log) and sends a
copy to the worker over loopback UDP. Sending never waits: a line the worker cannot take is dropped there,
never held up here, so vLLM is never slowed by the worker. The worker reads the lines as if it had launched
vLLM itself: they are shipped with the worker's, and a fatal line is a `fatal` heartbeat. Once vLLM has exited,
the entrypoint says so with `python3 -m adapters.vllm.log_relay --exited CODE PORT`, so the worker reports it at
once, even while it still waits for vLLM to become ready.
"""

import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable

MAX_DATAGRAM = 60_000
EXITED = b"\0vllm exited with "  # no line of vLLM's output starts with a NUL


def relay(port: int) -> None:
    """stdin to stdout, line by line, each line also to 127.0.0.1:`port`."""
    out = sys.stdout.buffer
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for line in sys.stdin.buffer:
            out.write(line)
            out.flush()
            with contextlib.suppress(OSError):  # nobody listening yet, or its buffer full: the worker misses it
                sender.sendto(line[:MAX_DATAGRAM], ("127.0.0.1", port))


def report_exit(port: int, code: int) -> None:
    """Tells the worker on 127.0.0.1:`port` that vLLM exited with `code`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender, contextlib.suppress(OSError):
        sender.sendto(EXITED + str(code).encode(), ("127.0.0.1", port))


class _Lines(asyncio.DatagramProtocol):
    def __init__(self, on_line: Callable[[str], None], on_exit: Callable[[int], None]) -> None:
        self.on_line = on_line
        self.on_exit = on_exit

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if data.startswith(EXITED) and data[len(EXITED) :].lstrip(b"-").isdigit():
            self.on_exit(int(data[len(EXITED) :]))
        else:
            self.on_line(data.decode("utf-8", "replace").rstrip("\r\n"))


async def listen(
    port: int, on_line: Callable[[str], None], on_exit: Callable[[int], None]
) -> asyncio.DatagramTransport:
    """Receives the relay's lines, and the news that vLLM exited, on 127.0.0.1:`port`; close the transport to stop."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Lines(on_line, on_exit), local_addr=("127.0.0.1", port)
    )
    return transport


def main() -> None:
    """`worker-vllm-log-relay PORT` (stdin to the container's log and to the worker), or `--exited PORT CODE`."""
    if sys.argv[1] == "--exited":
        report_exit(int(sys.argv[3]), int(sys.argv[2]))
    else:
        relay(int(sys.argv[1]))


if __name__ == "__main__":
    main()

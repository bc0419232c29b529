"""SIGTERM and SIGINT, turned into calls on the running event loop."""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def shutdown_signals(handler: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call `handler` while inside."""
    loop = asyncio.get_running_loop()
    for sig in SHUTDOWN_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in SHUTDOWN_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def until_shutdown_signal() -> None:
    """Returns at the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    with shutdown_signals(stop.set):
        await stop.wait()

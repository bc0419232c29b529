"""Shared helpers: polling with a deadline."""

import asyncio
import time
from collections.abc import Callable


async def eventually(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Polls `condition` until it is true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.01)

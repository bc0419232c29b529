"""The event loop the commands run on: uvloop where it is installed (vLLM's image has it), else asyncio's."""

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """The same code on a faster event loop where it can be had."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)

"""The heartbeats after `starting`: one every interval while the worker runs, then the last one (`stopping`, or the
failure). The last one is sent only once the heartbeat on its way has been answered: two requests in flight at once
may reach the API in either order, and a `running` landing after `error` would report a dead worker alive."""

import asyncio
import logging
from collections.abc import Callable

from application.ports import Heartbeats
from application.readiness import sleep_unless
from domain.rules import HeartbeatStatus

log = logging.getLogger("worker.heartbeat")

Beat = tuple[HeartbeatStatus, str | None]


class HeartbeatLoop:
    def __init__(self, heartbeats: Heartbeats, beat: Callable[[], Beat], interval: float, settle: float) -> None:
        self.heartbeats = heartbeats
        self.beat = beat  # the status (and message) due now
        self.interval = interval
        self.settle = settle  # how long the last heartbeat waits for one on its way
        self._ending = asyncio.Event()
        self._sending = asyncio.Lock()

    async def run(self) -> None:
        """A heartbeat every `interval` until `end` (or `last`) is called."""
        while not self._ending.is_set():
            async with self._sending:
                await self.heartbeats.send(*self.beat())
            await sleep_unless(self._ending, timeout=self.interval)

    async def end(self) -> None:
        """No heartbeat of the loop's after this: ends the loop and waits for the one on its way, if any, to be
        answered (up to `settle` s: an API that hangs does not hold the worker's exit)."""
        if self._ending.is_set():
            return
        self._ending.set()
        try:
            async with asyncio.timeout(self.settle):
                await self._sending.acquire()  # kept: the loop sends no more
        except TimeoutError:
            log.warning(
                "heartbeat: the one on its way got no answer in %g s; the last one goes out anyway", self.settle
            )

    async def last(self, status: HeartbeatStatus, message: str | None = None) -> None:
        """The worker's last heartbeat (`stopping`, or the failure), after every one of the loop's."""
        await self.end()
        await self.heartbeats.send(status, message)

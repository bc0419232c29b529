"""The heartbeat loop and the last heartbeat, through an in-memory API whose answers the test holds."""

import asyncio
import logging

import pytest

from application.heartbeat_loop import HeartbeatLoop
from domain.rules import HeartbeatStatus

RUNNING, STOPPING = HeartbeatStatus.RUNNING, HeartbeatStatus.STOPPING


class HeldApi:
    """Records each heartbeat when it is answered; `running` ones wait for `answer` to be set."""

    def __init__(self) -> None:
        self.answered: list[HeartbeatStatus] = []
        self.on_its_way = asyncio.Event()
        self.answer = asyncio.Event()

    async def send(self, status: HeartbeatStatus, error_message: str | None = None) -> None:
        if status is RUNNING:
            self.on_its_way.set()
            await self.answer.wait()
        self.answered.append(status)


def loop_of(api: HeldApi, settle: float = 5.0) -> HeartbeatLoop:
    return HeartbeatLoop(api, lambda: (RUNNING, None), interval=0.01, settle=settle)


async def test_the_last_heartbeat_waits_for_the_one_on_its_way() -> None:
    api = HeldApi()
    beats = loop_of(api)
    loop = asyncio.create_task(beats.run())
    await asyncio.wait_for(api.on_its_way.wait(), 5)
    last = asyncio.create_task(beats.last(STOPPING))
    for _ in range(20):  # every ready callback runs: `last` is parked behind the running heartbeat
        await asyncio.sleep(0)
    assert not last.done() and api.answered == []
    api.answer.set()
    await asyncio.wait_for(last, 5)
    await asyncio.wait_for(loop, 5)  # the loop ended by itself
    assert api.answered == [RUNNING, STOPPING]


async def test_an_api_that_never_answers_does_not_hold_the_last_heartbeat(caplog: pytest.LogCaptureFixture) -> None:
    api = HeldApi()
    beats = loop_of(api, settle=0.05)
    loop = asyncio.create_task(beats.run())
    await asyncio.wait_for(api.on_its_way.wait(), 5)
    with caplog.at_level(logging.WARNING, "worker.heartbeat"):
        await asyncio.wait_for(beats.last(STOPPING), 5)
    assert api.answered == [STOPPING]
    assert "got no answer in 0.05 s; the last one goes out anyway" in caplog.text
    loop.cancel()


async def test_after_the_end_the_loop_sends_nothing_more() -> None:
    api = HeldApi()
    api.answer.set()
    beats = loop_of(api)
    loop = asyncio.create_task(beats.run())
    await asyncio.wait_for(api.on_its_way.wait(), 5)
    await beats.end()
    await asyncio.wait_for(loop, 5)
    sent = list(api.answered)
    await beats.end()  # a second end waits for nothing
    await beats.last(STOPPING)
    assert api.answered == [*sent, STOPPING] and set(sent) == {RUNNING}

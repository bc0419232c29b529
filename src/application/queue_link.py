"""The worker's link to the queue: each connection registers, each frame is parsed and handed to its handler,
and warnings about what the queue sent stay within a budget, so the queue cannot flood the log."""

import logging
from collections.abc import Callable
from typing import Any

from application.ports import QueueConnection, QueueRejected, WorkerMetrics
from domain import frames, rules
from domain.frames import OutboundFrame
from domain.rules import Failure
from domain.untrusted import WarningBudget, loggable
from domain.worker import Command, Send, Worker

log = logging.getLogger("worker")
UNKNOWN_TYPES_REMEMBERED = 64


class QueueLink:
    def __init__(
        self,
        queue: QueueConnection,
        worker: Worker,
        clock: Callable[[], float],
        metrics: WorkerMetrics,
        execute: Callable[[list[Command]], None],
        fail: Callable[[Failure], None],
    ) -> None:
        self.queue, self.worker, self.clock, self.metrics = queue, worker, clock, metrics
        self.execute, self.fail = execute, fail
        self.registered = False
        self.disconnected_since: float | None = None
        self._connections = 0
        self._unknown_types: set[str] = set()
        self._warnings = WarningBudget()
        self._handlers: dict[type, Callable[[Any], None]] = {  # each frame that is not about a job, to its handler
            frames.QueueError: lambda error: self.warn("queue reports an error: %s", loggable(error.message)),
        }

    async def run(self) -> None:
        """Keeps the queue connected until it is closed; a refusal or a bug in the socket fails the worker."""
        try:
            await self.queue.run(self.on_connect, self.on_message, self.on_disconnect)
        except QueueRejected as rejected:
            self.fail(rules.queue_refused(str(rejected)))
        except Exception as error:  # the socket task must never end the worker silently
            log.exception("queue connection failed")
            self.fail(rules.queue_failed(error))

    def on_connect(self) -> list[OutboundFrame]:
        self.disconnected_since = None
        self.registered = True
        self._connections += 1
        if self._connections > 1:
            self.metrics.reconnected()
        return [command.frame for command in self.worker.connected() if isinstance(command, Send)]

    def on_disconnect(self) -> None:
        self.disconnected_since = self.clock()
        self.registered = False
        self.worker.disconnected()

    def on_message(self, message: str | bytes) -> None:
        try:
            frame = frames.parse_frame(message)
        except frames.MalformedFrame as malformed:
            self.warn("queue: skipped malformed frame (%s): %s", loggable(malformed), loggable(message))
            return
        commands = self.worker.on_frame(frame, self.clock())  # a job frame: the state machine says what to do
        if commands is not None:
            self.execute(commands)
        else:
            self._handlers.get(type(frame), self._on_unknown)(frame)

    def _on_unknown(self, frame: Any) -> None:
        if (kind := loggable(frame.type, 80)) not in self._unknown_types:
            if len(self._unknown_types) < UNKNOWN_TYPES_REMEMBERED:
                self._unknown_types.add(kind)
            self.warn("queue: ignoring frames of unknown type %s", kind)

    def warn(self, message: str, *args: object) -> None:
        """Warnings about what the queue sent, at most a burst a minute."""
        held_back = self._warnings.allow(self.clock())
        if held_back is None:
            return
        if held_back:
            log.warning("queue: %d more warnings were not written", held_back)
        log.warning(message, *args)

"""The local queue with the test bed's hooks: it keeps each handshake, can refuse them, freeze, or drop workers."""

from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from adapters.dev.local_queue import LocalQueue


class ScriptedQueue(LocalQueue):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.handshakes: list[Headers] = []
        self.refuse_with: HTTPStatus | None = None

    def check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(request.headers)
        if self.refuse_with is not None:
            return connection.respond(self.refuse_with, f"{self.refuse_with.phrase}\n")
        return None

    def freeze(self) -> None:
        """Stops reading from every worker: pings go unanswered, as from a queue that hangs."""
        for connection in self._workers:
            connection.transport.pause_reading()

    async def disconnect_workers(self) -> None:
        for connection in list(self._workers):
            await connection.close()

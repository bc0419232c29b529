"""The outbox: frames waiting for the queue, in order, bounded; what goes first when it is full."""

from collections import deque

from domain.frames import OutboundFrame, droppable


class Outbox:
    """Keeps at most `limit` frames; a full outbox drops its oldest droppable frame, else its oldest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames: deque[OutboundFrame] = deque()

    def __len__(self) -> int:
        return len(self.frames)

    def put(self, frame: OutboundFrame) -> OutboundFrame | None:
        """Adds the frame; returns the frame dropped to make room, if one was."""
        dropped = self._make_room() if len(self.frames) >= self.limit else None
        self.frames.append(frame)
        return dropped

    def _make_room(self) -> OutboundFrame:
        for frame in self.frames:
            if droppable(frame):
                self.frames.remove(frame)
                return frame
        return self.frames.popleft()

    def first(self) -> OutboundFrame:
        return self.frames[0]

    def sent(self) -> None:
        """The first frame was handed to the socket."""
        self.frames.popleft()

"""Per-stream queues of events, so that one slow stream does not hold back the others."""

from __future__ import annotations

from collections import deque

import trio

from ..events import DataReceived, Event
from ._connections import HTTPConnection

__all__ = ["StreamInbox"]

#: Bytes of data an inbox holds on an HTTP/1.1 connection before the reader waits.
DEFAULT_MAX_BUFFERED = 256 * 1024

#: Data pieces smaller than this are copied together as they arrive; larger
#: ones wait as they came (a piece of one TLS record, 16 KiB, is large).
SMALL_PIECE = 4096

#: Other events an inbox holds before the reader waits (a peer flooding
#: informational responses, for example).
DEFAULT_MAX_EVENTS = 32


class _Data:
    """Consecutive data of the stream, joined when it is received (a lone piece is not copied).

    Small pieces are joined as they come, so that a peer sending tiny frames
    makes few objects: no two small pieces are neighbours, so there are at
    most two pieces per ``SMALL_PIECE`` bytes waiting.
    """

    __slots__ = ("end_stream", "pieces")

    def __init__(self, data: bytes, end_stream: bool) -> None:
        self.pieces: list[bytes | bytearray] = [data if type(data) is bytes else bytes(data)]
        self.end_stream = end_stream  # (never a buffer that may change)

    def add(self, data: bytes) -> None:
        pieces = self.pieces
        last = pieces[-1]
        if len(data) >= SMALL_PIECE or len(last) >= SMALL_PIECE:
            pieces.append(data)
        elif type(last) is bytearray:
            last += data
        else:
            pieces[-1] = bytearray(last) + data

    def take(self) -> bytes:
        pieces = self.pieces
        if len(pieces) == 1 and type(pieces[0]) is bytes:
            return pieces[0]
        return b"".join(pieces)


class StreamInbox:
    """The events of one stream, on their way from the task that reads the
    connection to the task that serves the stream.

    On a multiplexed connection (HTTP/2, HTTP/3), turn on
    :attr:`.HTTPConnection.manual_acknowledgement`: data's flow-control
    credit then goes back to the peer only when :meth:`receive` hands the
    data out (or :meth:`close` drops it), so the peer's stream window bounds
    what waits here and :meth:`put` does not wait for the reader of this
    stream: the other streams go on. On HTTP/1.1, where TCP is the flow
    control, :meth:`put` waits while more than *max_buffered* bytes wait,
    which stops the reading of the connection, as it should. Consecutive data
    waiting is handed out joined, as one event; data that did not wait is
    handed out as the same object, not copied.

    :param connection: the connection the stream belongs to
    :param stream_id: the stream
    :param max_buffered: bytes of data that may wait before :meth:`put`
        waits, on a connection without manual acknowledgement
    :param max_events: events other than data that may wait before
        :meth:`put` waits
    """

    def __init__(
        self,
        connection: HTTPConnection,
        stream_id: int,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        self._connection = connection
        self._stream_id = stream_id
        self._credited = connection.manual_acknowledgement
        self._max_buffered = max_buffered if not self._credited else None
        self._max_events = max_events
        self._entries: deque[Event | _Data] = deque()
        self._buffered = 0
        self._others = 0
        self._ended = False
        self._closed = False
        # Made when a task waits (most inboxes of small responses never need one).
        self._changed: trio.Event | None = None
        # Tasks waiting on _changed: with none, a change allocates no new Event.
        self._waiters = 0

    @property
    def stream_id(self) -> int:
        """The stream whose events these are."""
        return self._stream_id

    @property
    def buffered(self) -> int:
        """Bytes of data waiting."""
        return self._buffered

    def _notify(self) -> None:
        if self._waiters:
            changed, self._changed = self._changed, None
            if changed is not None:
                changed.set()

    async def _wait_changed(self) -> None:
        self._waiters += 1
        try:
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()
        finally:
            self._waiters -= 1

    def _full(self, event: Event) -> bool:
        if isinstance(event, DataReceived):
            return self._max_buffered is not None and self._buffered >= self._max_buffered
        return self._others >= self._max_events

    async def put(self, event: Event) -> None:
        """Add an event of the stream (the connection's reader calls it).

        Once the receiver closed the inbox, data is acknowledged and dropped.

        :raises trio.ClosedResourceError: after :meth:`end`
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._ended:
            raise trio.ClosedResourceError("the inbox was ended")
        while not self._closed and self._full(event):
            await self._wait_changed()
        self._add(event)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def put_nowait(self, event: Event) -> None:
        """Add an event of the stream now, as :meth:`put` does, without a checkpoint.

        The connection's reader routes many events per scheduling round this
        way, instead of one per round.

        :raises trio.WouldBlock: if the inbox is full (then :meth:`put` waits)
        :raises trio.ClosedResourceError: after :meth:`end`
        """
        if self._ended:
            raise trio.ClosedResourceError("the inbox was ended")
        if not self._closed and self._full(event):
            raise trio.WouldBlock
        self._add(event)

    def _add(self, event: Event) -> None:
        if self._closed:
            self._drop(event)
            return
        if isinstance(event, DataReceived):
            last = self._entries[-1] if self._entries else None
            if isinstance(last, _Data) and not last.end_stream:
                last.add(event.data)
                last.end_stream = event.end_stream
            else:
                self._entries.append(_Data(event.data, event.end_stream))
            self._buffered += len(event.data)
        else:
            self._entries.append(event)
            self._others += 1
        self._notify()

    def end(self) -> None:
        """No more events will come (the reader calls it); :meth:`receive` then ends. Idempotent."""
        self._ended = True
        self._notify()

    async def receive(self) -> Event:
        """Wait for the next event of the stream; joined data comes as one event.

        :raises trio.EndOfChannel: once every event was received after :meth:`end`
        :raises trio.ClosedResourceError: after :meth:`close`
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            event = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        while True:
            # Waiting was the checkpoint (cancellable, and others ran): take the event at once.
            await self._wait_changed()
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                continue

    def receive_nowait(self) -> Event:
        """Take the next event if one waits, as :meth:`receive` does, without a checkpoint.

        A consumer that finds what it needs here (the rest of a small
        response, read in the same round as its headers) skips a scheduling
        round per event.

        :raises trio.WouldBlock: if no event waits (then :meth:`receive` waits)
        :raises trio.EndOfChannel: once every event was received after :meth:`end`
        :raises trio.ClosedResourceError: after :meth:`close`
        """
        if not self._entries:
            if self._closed:
                raise trio.ClosedResourceError("the inbox is closed")
            if self._ended:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        entry = self._entries.popleft()
        self._notify()
        if isinstance(entry, _Data):
            data = entry.take()
            self._buffered -= len(data)
            self._acknowledge(len(data))
            return DataReceived(self._stream_id, data, end_stream=entry.end_stream)
        self._others -= 1
        return entry

    def close(self) -> None:
        """The receiver is done: drop what waits (acknowledging its data) and what comes. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._acknowledge(self._buffered)
        self._entries.clear()
        self._buffered = self._others = 0
        self._notify()

    def _drop(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            self._acknowledge(len(event.data))

    def _acknowledge(self, length: int) -> None:
        if self._credited and length:
            self._connection.acknowledge_data(self._stream_id, length)

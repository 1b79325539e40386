"""One loop that reads a connection and routes each stream's events to its inbox, for servers and clients.

Theory of operation
-------------------

A :class:`StreamDispatcher` owns a connection's receive loop and a
:class:`.StreamInbox` per stream that someone serves. It turns manual
flow-control acknowledgement on, so that data's credit goes back when the
stream's consumer takes it (a stream nobody reads holds back only its own
sender), and routes:

* events of a stream with an inbox into that inbox (a reset also ends it);
* data of a stream without one (its consumer is done with it) to the bin,
  its credit returned at once;
* request or response headers of a stream without an inbox to the
  ``start_stream`` hook, which starts the stream if that needs no waiting,
  else to the ``on_new_stream`` hook (a server starts a request there; a
  client ignores streams it did not open);
* GOAWAY and PING acknowledgements to their hooks.

While :meth:`StreamDispatcher.run` runs, it is the connection's event
router (:meth:`.HTTPConnection.set_event_router`): what can be routed
without waiting (an event into an inbox with room, data to the bin, GOAWAY
and PING acknowledgements to their hooks, a new stream that ``start_stream``
starts at once) is routed by the task that made it, the connection's reader
most often, and the task that waits in :meth:`.StreamInbox.receive` is the
next to run, with no task in between. The rest (a full inbox, a new stream
that must wait, the connection's end, and on HTTP/1.1 whatever leaves no
inbox behind) comes to :meth:`run`'s own loop, in order, which routes it as
before. So on a busy connection :meth:`run`'s task does not run at all.

The receive deadline is moved lazily: a later deadline (``math.inf`` while
a request is served, the next keep-alive end after it) does not touch the
cancel scope of the wait in progress, whose earlier deadline, if it passes,
wakes :meth:`run` to wait again until the later one. Only an earlier
deadline moves the scope at once. Moving a scope's deadline goes through
trio's deadline bookkeeping, and a server moved it twice per request.

:meth:`StreamDispatcher.run` returns why it stopped: the connection ended,
the receive deadline passed (a server's keep-alive clock), or an HTTP/1.1
connection must close after its last exchange. The server and the client
keep only their policy (what a new stream is, when to drain, pool state).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable

import trio

from ..events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    PingAckReceived,
    StreamEvent,
    StreamReset,
)
from ._connections import HTTPConnection
from ._inbox import StreamInbox

__all__ = ["DispatchEnd", "StreamDispatcher"]


class DispatchEnd(enum.Enum):
    """Why :meth:`StreamDispatcher.run` returned."""

    #: The connection ended (:attr:`StreamDispatcher.terminated` tells how).
    TERMINATED = "terminated"
    #: Nothing came before the receive deadline.
    DEADLINE = "deadline"
    #: An HTTP/1.1 connection has no exchange left and must close.
    EXPIRED = "expired"


class StreamDispatcher:
    """Reads *connection* and routes its events into per-stream inboxes.

    :param connection: an entered connection
    :param on_new_stream: called with the headers of a stream that has no
        inbox (a new request, on a server); it may :meth:`open_inbox` for it
    :param start_stream: called first, by the router, with such headers: it
        must not block; it returns ``True`` if it dealt with them (started
        the stream, opening its inbox, or ignored them), ``False`` to leave
        them to *on_new_stream* in :meth:`run` (starting the stream must
        wait). Without it every new stream goes to *on_new_stream*.
    :param on_goaway: called with each GOAWAY
    :param on_ping_ack: called with each PING acknowledgement
    """

    def __init__(
        self,
        connection: HTTPConnection,
        *,
        on_new_stream: Callable[[HeadersReceived], Awaitable[None]] | None = None,
        start_stream: Callable[[HeadersReceived], bool] | None = None,
        on_goaway: Callable[[GoawayReceived], None] | None = None,
        on_ping_ack: Callable[[PingAckReceived], None] | None = None,
    ) -> None:
        self.connection = connection
        #: The inbox of each stream being served.
        self.inboxes: dict[int, StreamInbox] = {}
        #: The :class:`~trio_hface.events.ConnectionTerminated` that ended the connection, once it did.
        self.terminated: ConnectionTerminated | None = None
        self._on_new_stream = on_new_stream
        self._start_stream = start_stream
        self._on_goaway = on_goaway
        self._on_ping_ack = on_ping_ack
        self._receiving = trio.CancelScope()
        self._in_receive = False
        self._deadline = math.inf
        # Credit goes back as each stream's consumer takes its data (see StreamInbox).
        connection.manual_acknowledgement = True

    # -- inboxes ----------------------------------------------------------------

    def open_inbox(self, stream_id: int) -> StreamInbox:
        """Make the inbox of a stream: its events go there from now on."""
        inbox = StreamInbox(self.connection, stream_id)
        self.inboxes[stream_id] = inbox
        return inbox

    def close_inbox(self, stream_id: int) -> None:
        """The stream's consumer is done: drop its inbox (what waits there is acknowledged)."""
        inbox = self.inboxes.pop(stream_id, None)
        if inbox is not None:
            inbox.close()

    def end_all(self) -> None:
        """Tell every inbox that no more events come (the connection ended)."""
        for inbox in self.inboxes.values():
            inbox.end()

    # -- the loop ---------------------------------------------------------------

    @property
    def receive_deadline(self) -> float:
        """When :meth:`run` stops if no event came (``math.inf``: never); may change while it runs."""
        return self._deadline

    @receive_deadline.setter
    def receive_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        # Lazily (see the theory of operation): only an earlier deadline moves the wait's scope.
        if self._in_receive and deadline < self._receiving.deadline:
            self._receiving.deadline = deadline

    async def run(self) -> DispatchEnd:
        """Route events until the connection ends, the deadline passes, or HTTP/1.1 is done."""
        connection = self.connection
        connection.set_event_router(self._route_now)
        try:
            return await self._run()
        finally:
            connection.set_event_router(None)

    async def _run(self) -> DispatchEnd:
        while True:
            # One cancel scope for many events, not one per event (entering
            # and leaving a scope costs more than routing an event). It is
            # spent once its deadline passed: if an event came in at that
            # very moment, the event is routed outside it and a fresh scope
            # takes over.
            with trio.CancelScope() as self._receiving:
                end, event = await self._receive_and_route(self._receiving)
            if self._receiving.cancelled_caught:
                if self._deadline <= trio.current_time():
                    return DispatchEnd.DEADLINE
                continue  # an earlier deadline, since moved later (lazily): wait again
            if end is None and event is not None:
                end = await self._handle(event)
            if end is not None:
                return end

    async def _receive_and_route(self, scope: trio.CancelScope) -> tuple[DispatchEnd | None, Event | None]:
        """Route events in *scope*: the deadline applies only while waiting for one (routing is
        not timed); without a deadline (a client's connection) the scope is never touched.
        Returns why to stop, or an event that came as the deadline passed."""
        connection = self.connection
        while True:
            self._in_receive = True
            if self._deadline != math.inf:
                scope.deadline = self._deadline
            try:
                event = await connection.receive_event()
            finally:
                self._in_receive = False
            if scope.deadline != math.inf:
                scope.deadline = math.inf
            if scope.cancel_called:
                return None, event
            end = await self._handle(event)
            if end is not None:
                return end, None

    async def _handle(self, event: Event) -> DispatchEnd | None:
        if isinstance(event, StreamEvent):
            await self._route(event)
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event
            return DispatchEnd.TERMINATED
        else:
            self._to_hooks(event)
        connection = self.connection
        if connection.has_expired() and not self.inboxes and not connection.multiplexed:
            return DispatchEnd.EXPIRED  # HTTP/1.1 that must close after its last exchange
        return None

    def _route_now(self, event: Event) -> bool:
        """Route *event* if that needs no waiting (the connection's router); else leave it to :meth:`run`.

        Whatever is left to :meth:`run` is left before any of its effects
        (:meth:`run` routes it from the start). On HTTP/1.1, an event that
        leaves no inbox behind goes to :meth:`run` too, which then checks
        whether the connection is done.
        """
        multiplexed = self.connection.multiplexed
        if isinstance(event, StreamEvent):
            inbox = self.inboxes.get(event.stream_id)
            if inbox is None:
                if isinstance(event, HeadersReceived) and self._on_new_stream is not None:
                    start = self._start_stream
                    if start is None or not start(event):
                        return False  # starting the stream must wait: run() does it
                    # Started (an inbox now) or ignored; ignored on HTTP/1.1, run() sees
                    # it again (ignoring it again) and then checks whether the connection is done.
                    return multiplexed or event.stream_id in self.inboxes
                if not multiplexed:
                    return False
                if isinstance(event, DataReceived):  # for a stream we are done with: its credit is due
                    self.connection.acknowledge_data(event.stream_id, len(event.data))
                return True
            try:
                inbox.put_nowait(event)
            except (trio.WouldBlock, trio.ClosedResourceError):
                return False  # full: run() waits for room; ended: run() forgets it
            if isinstance(event, StreamReset):
                inbox.end()
            return True
        if not multiplexed or isinstance(event, ConnectionTerminated):
            return False
        self._to_hooks(event)
        return True

    def _to_hooks(self, event: Event) -> None:
        """Hand a GOAWAY or a PING acknowledgement to its hook (other events: nothing)."""
        if isinstance(event, GoawayReceived):
            if self._on_goaway is not None:
                self._on_goaway(event)
        elif isinstance(event, PingAckReceived):
            if self._on_ping_ack is not None:
                self._on_ping_ack(event)

    async def _route(self, event: StreamEvent) -> None:
        inbox = self.inboxes.get(event.stream_id)
        if inbox is None:
            if isinstance(event, DataReceived):  # for a stream we are done with: its credit is due
                self.connection.acknowledge_data(event.stream_id, len(event.data))
            elif isinstance(event, HeadersReceived) and self._on_new_stream is not None:
                await self._on_new_stream(event)
            return
        try:
            # Dropped (and acknowledged) once the consumer is done with it. A
            # whole read's events go out in one scheduling round: put() only
            # when the inbox is full and its consumer must catch up.
            try:
                inbox.put_nowait(event)
            except trio.WouldBlock:
                await inbox.put(event)
        except trio.ClosedResourceError:
            self.inboxes.pop(event.stream_id, None)
            return
        if isinstance(event, StreamReset):
            inbox.end()

"""The receiving side of :class:`.HTTPConnection`: ``receive_event`` and the event router.

Each input wakes the tasks that wait in :meth:`~.HTTPConnection.receive_event`;
with a router (:meth:`~.HTTPConnection.set_event_router`) the events are
offered to it first, by the task that made them, and only what it leaves
wakes anyone there (see the theory of operation in ``_connections.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from ..events import ConnectionTerminated, Event
from ..protocols import HTTPProtocol

__all__: list[str] = []


class _EventReceiving:
    """Where events come out of a connection (a base of :class:`.HTTPConnection`, which sets the state)."""

    _protocol: HTTPProtocol
    # Input: the reader replaces and sets this event after each input.
    _input_event: trio.Event
    _input_done: bool
    # Tasks waiting for input (HTTP/1 reads only while there are some).
    _waiting: int
    _want_input: trio.Event
    _terminated: bool
    _closed: bool
    _broken: bool
    _peer_error: bool
    # Tasks in receive_event() wait on this: set when something may be
    # there for them (with a router, not for the events it took).
    _events_event: trio.Event
    _event_waiters: int
    # The router, the event it left to receive_event(), whether routing waits
    # until receive_event() has handed out the events after that one, and
    # whether the router is being offered events now.
    _router: Callable[[Event], bool] | None
    _declined: Event | None
    _routing_paused: bool
    _routing: bool

    def _wake_writer_for_output(self) -> None:
        """Wake the writer after input or consumption (the connection's)."""
        raise NotImplementedError

    def set_event_router(self, router: Callable[[Event], bool] | None) -> None:
        """Have each event offered to *router* as soon as it is made (``None``: no more).

        While a router is set, the task whose input or submission made events
        (the reader, after each input, most often) calls ``router(event)``
        with each of them in order, at once, before waking the tasks waiting
        in :meth:`receive_event`. The router must not block. It returns
        ``True`` when it dealt with the event (put it in a stream's queue, for
        example): :meth:`receive_event` never returns that event, and nobody
        is woken for it. It returns ``False`` to leave the event to
        :meth:`receive_event`, which then returns it first, followed by every
        event made after it, until none waits; only then are events offered
        to the router again. So events keep their order, and whatever needs
        waiting (a full queue, a new stream to start) is done by a task in
        :meth:`receive_event`.

        A task must still wait in :meth:`receive_event`, for what the router
        leaves there and for the end of the connection; an HTTP/1.1
        connection reads only while one does (as without a router).
        """
        self._router = router
        if router is not None and not self._routing_paused:
            self._route_events()

    async def receive_event(self) -> Event:
        """Wait for the next event of any stream.

        Handing out data returns its flow-control credit to the peer (unless
        :attr:`manual_acknowledgement` is on). The last event is
        :class:`~trio_hface.events.ConnectionTerminated`. With a router
        (:meth:`set_event_router`), only the events it left come here.

        :raises trio.ClosedResourceError: if called after the connection ended
        """
        while True:
            event = self._declined
            if event is not None:
                self._declined = None
                return event
            event = self._next_event()
            if event is not None:
                self._wake_writer_for_output()  # handing out data may produce WINDOW_UPDATE
                router = self._router
                if router is not None and not self._routing_paused:
                    if router(event):  # made without an offer (no input, no poke)
                        continue
                    self._routing_paused = True
                return event
            self._routing_paused = False  # nothing left here: the router takes what comes
            if self._terminated or self._closed:
                raise trio.ClosedResourceError("the connection is closed")
            if self._input_done:
                if not self._broken and not self._protocol.has_expired():
                    # The peer half-closed (an HTTP/1.1 tunnel) but we may still
                    # send: the protocol ends the connection once we are done too.
                    await self._input_event.wait()
                    continue
                # The transport ended without the protocol saying so: say it here.
                self._terminated = True
                return ConnectionTerminated(self._protocol.error_codes.internal_error, "the transport ended")
            await self._wait_events()

    def _next_event(self) -> Event | None:
        """The protocol's next event, noting the connection's end."""
        event = self._protocol.next_event()
        if isinstance(event, ConnectionTerminated):
            self._terminated = True
            self._peer_error = event.error_code != 0
        return event

    async def _wait_events(self) -> None:
        """Wait in :meth:`receive_event` until something may be there (counts as waiting for input)."""
        event = self._events_event
        self._waiting += 1
        self._event_waiters += 1
        self._want_input.set()
        try:
            await event.wait()
        finally:
            self._waiting -= 1
            self._event_waiters -= 1

    def _route_events(self) -> bool:
        """Offer the protocol's events to the router; return whether :meth:`receive_event` has some."""
        router = self._router
        if router is None or self._routing_paused:
            return True
        if self._routing:  # the router made events itself: the outer loop offers them
            return False
        self._routing = True
        took = False
        try:
            while True:
                event = self._next_event()
                if event is None:
                    return False
                took = True
                if not router(event):
                    self._declined = event
                    self._routing_paused = True
                    return True
        finally:
            self._routing = False
            if took:
                self._wake_writer_for_output()  # handing out data may produce WINDOW_UPDATE

    def _poke_receivers(self) -> None:
        """Make waiting receivers look at the protocol again.

        Input is not the only thing that makes events available: finishing an
        HTTP/1.1 response lets the protocol parse a request that was pipelined
        behind it, already in its buffer.

        With a router, the events are offered to it first: tasks in
        :meth:`receive_event` wake only for what it left (or the end of input).
        """
        if (self._router is None or self._route_events() or self._input_done) and self._event_waiters:
            waiting, self._events_event = self._events_event, trio.Event()
            waiting.set()
        event, self._input_event = self._input_event, trio.Event()
        event.set()

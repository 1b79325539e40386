"""A budget of connections that listeners share, so that a flood cannot exhaust the server.

Theory of operation
-------------------

Each connection a listener accepts takes a place in the :class:`ConnectionLimit`
and holds it as a :class:`ConnectionSlot` until its handler has ended and its
transport is closed. A slot is *idle* (the connection may be evicted) or
*busy* (a request is in flight: never evicted). It starts idle, so a
connection still in its TLS handshake, or one that shook hands and sent
nothing, counts as idle; the server marks it busy while it has a stream in
flight, and idle again, with a new idle time, when the last one ends.

When every place is taken and a new connection arrives, the limit asks the
idle slot that has been idle longest to close (what nginx does with its
reusable connections when it runs out of them): the slot's *evict* callback,
which the listener provides, cancels the connection's task, and the newcomer
takes the place once that connection has let go of it. The limit stays a hard
bound on sockets: a TCP listener holds one accepted socket while it waits for
the place; a QUIC listener, which cannot wait, drops the newcomer's Initial
packet meanwhile (the client retransmits it and finds the place free). Only
when every connection is busy do newcomers wait (TCP) or get dropped (QUIC)
until one ends.

Idle slots are kept in the order they became idle, so finding the oldest is
O(1); a place promised by an eviction in progress is not evicted for twice.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import trio

__all__ = ["ConnectionLimit", "ConnectionSlot"]

log = logging.getLogger(__name__)

#: Seconds between two log lines about evictions and refusals: a flood is
#: summed up (with counts) instead of logging a line per connection.
LOG_INTERVAL = 10.0


class ConnectionSlot:
    """The place one connection holds in a :class:`ConnectionLimit`.

    Obtain slots from :meth:`ConnectionLimit.acquire` (listeners do, and set
    :attr:`.HTTPConnection.connection_slot`). A new slot is idle; whoever
    serves the connection calls :meth:`set_busy` while requests are in
    flight and :meth:`set_idle` when none is left, so that an idle
    connection, and never a busy one, may be evicted when the limit is full.
    """

    def __init__(
        self, limit: ConnectionLimit, evict: Callable[[], object], address: str | None, now: float
    ) -> None:
        self._limit = limit
        self._evict = evict
        #: The peer's host (the per-address limit counts by it), or ``None``.
        self.address = address
        self._busy = False
        self._idle_since = now
        self._evicted = False
        self._released = False

    @property
    def idle(self) -> bool:
        """Whether the connection has no request in flight (and may be evicted)."""
        return not self._busy

    @property
    def idle_since(self) -> float:
        """When the connection last became idle (on Trio's clock); its start if it never was busy."""
        return self._idle_since

    @property
    def evicted(self) -> bool:
        """Whether the limit asked the connection to close to make room."""
        return self._evicted

    def set_busy(self) -> None:
        """Mark the connection busy: a request is in flight, it is not evicted. Idempotent."""
        if not self._busy:
            self._busy = True
            self._limit._idle.pop(self, None)

    def set_idle(self) -> None:
        """Mark the connection idle from now on: it may be evicted. Idempotent."""
        if self._busy:
            self._busy = False
            self._idle_since = trio.current_time()
            if not self._evicted and not self._released:
                self._limit._idle[self] = None
                self._limit._changed()

    def release(self) -> None:
        """Give the place back (once the connection's transport is closed). Idempotent."""
        if not self._released:
            self._released = True
            self._limit._release(self)

    def _do_evict(self) -> None:
        self._evicted = True
        self._limit._idle.pop(self, None)
        self._evict()


class ConnectionLimit:
    """At most *max_connections* connections at once, across the listeners given this object.

    When every place is taken, a new connection evicts the connection that
    has been idle longest (no request in flight: idle keep-alive, nothing
    sent since the handshake, or still in the TLS handshake); connections
    with requests in flight are never evicted. Only while every connection is
    busy does a TCP listener stop accepting (new connections wait in the
    kernel's backlog, which refuses them once full) and a QUIC listener drop
    the Initial packets of new connections (clients retransmit them). A place
    is given back when its connection's handler has ended and the transport
    is closed, so the number of sockets never exceeds *max_connections*.

    With *max_connections_per_address*, a peer host may hold at most that
    many places: its connections beyond them are closed at once (TCP) or
    their Initial packets dropped (QUIC), without evicting anyone.

    :param max_connections: the size of the budget (at least 1), or ``None``
        for no overall bound (with a per-address bound only)
    :param max_connections_per_address: places one client host may hold (at
        least 1), or ``None`` (the default) for no such bound
    """

    def __init__(
        self, max_connections: int | None, *, max_connections_per_address: int | None = None
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if max_connections_per_address is not None and max_connections_per_address < 1:
            raise ValueError(
                f"max_connections_per_address must be at least 1, not {max_connections_per_address}"
            )
        #: The size of the budget (``None``: unbounded).
        self.max_connections = max_connections
        #: Places one client host may hold (``None``: unbounded).
        self.max_connections_per_address = max_connections_per_address
        self._count = 0
        self._evicting = 0
        self._idle: OrderedDict[ConnectionSlot, None] = OrderedDict()
        self._per_address: dict[str, int] = {}
        self._event = trio.Event()
        self._warned = False
        self._evictions = 0
        self._refusals = 0
        self._logged_evictions = 0
        self._logged_refusals = 0
        self._last_log = -LOG_INTERVAL

    @property
    def count(self) -> int:
        """Places taken: connections being set up, served or evicted."""
        return self._count

    @property
    def idle_count(self) -> int:
        """Connections holding a place that may be evicted."""
        return len(self._idle)

    @property
    def full(self) -> bool:
        """Whether every place is taken."""
        return self.max_connections is not None and self._count >= self.max_connections

    @property
    def evictions(self) -> int:
        """Idle connections evicted so far to make room."""
        return self._evictions

    @property
    def refusals(self) -> int:
        """Connections refused so far by the per-address bound."""
        return self._refusals

    def admits_address(self, address: str | None) -> bool:
        """Whether a new connection from host *address* is within the per-address bound.

        A refusal is counted and logged (in a bounded way); the caller closes
        or drops the connection.
        """
        bound = self.max_connections_per_address
        if bound is None or address is None or self._per_address.get(address, 0) < bound:
            return True
        self._refusals += 1
        self._log_progress()
        return False

    def make_room(self) -> bool:
        """If every place is taken, ask the oldest idle connection to close.

        Does nothing while an eviction already in progress will free a place.

        :returns: whether a place is free or being freed (``False``: every
            connection is busy)
        """
        if self.max_connections is None or self._count - self._evicting < self.max_connections:
            return True
        if not self._idle:
            self.note_full()
            return False
        oldest = next(iter(self._idle))
        self._evicting += 1
        self._evictions += 1
        log.debug("evicting the connection idle longest (since %.3f) to make room", oldest.idle_since)
        self._log_progress()
        oldest._do_evict()
        return True

    async def wait_for_room(self) -> None:
        """Wait until a place is free, or an idle connection could be evicted to free one (without taking it)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.full and not self._idle and self._evicting == 0:
            self.note_full()
            await self._event.wait()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def acquire(self, evict: Callable[[], object], address: str | None = None) -> ConnectionSlot:
        """Take a place, evicting the oldest idle connection or waiting until one is free.

        :param evict: called (once, synchronously) if the limit wants the
            connection to close to make room for another, for example the
            ``cancel`` method of a cancel scope around the connection's task
        :param address: the peer's host, for the per-address bound
        :returns: the place; give it back with :meth:`ConnectionSlot.release`
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.full:
            self.make_room()
            await self._event.wait()
        slot = self.acquire_nowait(evict, address)
        await trio.lowlevel.cancel_shielded_checkpoint()  # the place is ours: no cancellation now
        return slot

    def acquire_nowait(self, evict: Callable[[], object], address: str | None = None) -> ConnectionSlot:
        """Take a place now (the caller checked :attr:`full`); parameters as :meth:`acquire`."""
        self._count += 1
        if address is not None:
            self._per_address[address] = self._per_address.get(address, 0) + 1
        slot = ConnectionSlot(self, evict, address, trio.current_time())
        self._idle[slot] = None
        return slot

    def note_full(self) -> None:
        """Log, once each time the budget runs out, that connections are being held back."""
        if not self._warned:
            self._warned = True
            log.warning(
                "%d connections, none idle: holding back new ones until one ends (max_connections)",
                self.max_connections,
            )

    def _release(self, slot: ConnectionSlot) -> None:
        self._count -= 1
        self._idle.pop(slot, None)
        if slot.evicted:
            self._evicting -= 1
        if slot.address is not None:
            left = self._per_address[slot.address] - 1
            if left:
                self._per_address[slot.address] = left
            else:
                del self._per_address[slot.address]
        if not self.full:
            self._warned = False
        self._changed()

    def _changed(self) -> None:
        event, self._event = self._event, trio.Event()
        event.set()

    def _log_progress(self) -> None:
        """An info line at most every ``LOG_INTERVAL`` seconds, with the counts since the last."""
        now = trio.current_time()
        if now - self._last_log < LOG_INTERVAL:
            return
        self._last_log = now
        evictions = self._evictions - self._logged_evictions
        refusals = self._refusals - self._logged_refusals
        self._logged_evictions, self._logged_refusals = self._evictions, self._refusals
        log.info(
            "connection limit: %d idle connections evicted (max_connections=%s), "
            "%d refused (max_connections_per_address=%s) since the last report",
            evictions,
            self.max_connections,
            refusals,
            self.max_connections_per_address,
        )

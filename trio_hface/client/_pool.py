"""The connection pool of a client session, with a pure core.

Theory of operation
-------------------

Connections are reused: HTTP/1.1 ones for one request at a time (keep-alive),
HTTP/2 and HTTP/3 ones for as many concurrent requests as the server allows.
A connection that ends or receives GOAWAY takes no new request and is
replaced by a new one when needed; at most ``max_connections_per_origin``
connections exist per origin, and at most ``max_connections`` in all: at
that limit, a request that would open a connection has an idle connection
(of any origin, the least recently used) closed to make room, or waits for
a change anywhere in the pool.

:meth:`ConnectionPool.decide` is the whole policy and does no I/O: given an
origin and whether the request goes over HTTP/3, it answers :class:`Use`
(this connection), :class:`Open` (open one to this origin) or :class:`Wait`
(until something changes). The session carries the decision out (opening
connections, waiting up to ``pool_timeout``) and tells the pool what
happened, so the decision is tested without a network and every HTTP
version shares it.

Requests told to :class:`Wait` queue per origin, first come first served. A
change of the pool wakes only the first request of its origin; that one
decides again and, unless it must wait still, passes the turn to the next
(:meth:`ConnectionPool.pass_turn`), which decides in its turn. A change
thus costs a wakeup or two, not one per waiting request: a hundred requests
waiting for ten HTTP/1.1 connections do not all wake each time one ends.
Requests of one origin decide on the same facts, so when the first one
must wait, so must those behind it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio

from ._connection import PooledConnection
from ._models import Origin

__all__ = ["ConnectionPool", "Decision", "Open", "PoolStatistics", "Use", "Wait"]


@dataclass(frozen=True)
class Use:
    """Send the request on this connection."""

    connection: PooledConnection


@dataclass(frozen=True)
class Open:
    """Open a new connection to this origin (closing *evict* first, to make room), then decide again."""

    origin: Origin
    #: An idle connection to close first, when the pool is at ``max_connections``.
    evict: PooledConnection | None = None


@dataclass(frozen=True)
class Wait:
    """Wait for a change of the pool (a connection opened, freed or ended), then decide again.

    *anywhere*: the pool is at ``max_connections``, so a change of any origin
    may help (the request waits in the queue for any change); else only a
    change of the request's origin.
    """

    anywhere: bool = False


#: What :meth:`ConnectionPool.decide` answers.
Decision = Use | Open | Wait


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a pool, as :meth:`ConnectionPool.statistics` returns it (like trio's ``statistics()``)."""

    #: Connections in the pool, by HTTP version (``"1.1"``, ``"2"``, ``"3"``).
    connections: dict[str, int]
    #: Connections being opened.
    opening: int
    #: Connections with no exchange in progress.
    idle: int
    #: Exchanges (requests) in progress.
    exchanges: int
    #: Requests waiting for a connection.
    waiting: int


class ConnectionPool:
    """The connections of a session, per origin, and the decision of which one a request takes.

    Implements :class:`.PoolNotifier` for its connections.

    :param max_connections_per_origin: how many connections one origin may have
    :param max_connections: how many connections the pool may have in all (``None``: no limit)
    """

    def __init__(self, max_connections_per_origin: int, max_connections: int | None = None) -> None:
        if max_connections_per_origin < 1:
            raise ValueError(
                f"max_connections_per_origin must be positive, not {max_connections_per_origin!r}"
            )
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be positive or None, not {max_connections!r}")
        self.max_connections_per_origin = max_connections_per_origin
        self.max_connections = max_connections
        self._connections: dict[Origin, list[PooledConnection]] = {}
        self._opening: dict[Origin, int] = {}
        # Whether connections to an origin (by TCP, by QUIC) turned out multiplexed.
        self._multiplexed: dict[tuple[Origin, bool], bool] = {}
        # Requests told to Wait, per origin, in order (None: a waiter for any change).
        self._queues: dict[Origin | None, deque[trio.Event]] = {}
        self._waiting = 0
        # Whoever watches every change (wait_changed()), woken together.
        self._changed = trio.Event()
        self._watchers = 0

    # -- the decision ---------------------------------------------------------

    def decide(self, origin: Origin, quic: bool) -> Decision:
        """Which connection a new request to *origin* takes (*quic*: whether it goes over HTTP/3)."""
        candidates = [p for p in self._connections.get(origin, []) if not quic or p.http_version == "3"]
        for pooled in candidates:
            if pooled.usable():
                return Use(pooled)
        opening = self._opening.get(origin, 0)
        if opening and self._multiplexed.get((origin, quic)) is not False:
            # A connection on its way may be HTTP/2 or HTTP/3 and serve us too:
            # wait for it rather than open one connection per request.
            return Wait()
        if len(candidates) + opening < self.max_connections_per_origin:
            if self.max_connections is None:
                return Open(origin)
            return self._open_within_limit(origin, self.max_connections)
        return Wait()

    def _open_within_limit(self, origin: Origin, limit: int) -> Decision:
        """Open a connection to *origin* if the pool is below *limit*, or in place of an idle one."""
        pooled = [p for ps in self._connections.values() for p in ps]
        if len(pooled) + sum(self._opening.values()) < limit:
            return Open(origin)
        idle = [p for p in pooled if not p.channels and not p.dead]
        if idle:
            return Open(origin, evict=min(idle, key=lambda p: p.last_used))
        return Wait(anywhere=True)

    # -- what the session tells the pool --------------------------------------

    def opening_started(self, origin: Origin) -> None:
        """A connection to *origin* is being opened (it counts against the limit)."""
        self._opening[origin] = self._opening.get(origin, 0) + 1

    def opening_ended(self, origin: Origin, pooled: PooledConnection | None) -> None:
        """The opening ended: with the new connection, or ``None`` if it failed."""
        self._opening[origin] -= 1
        if not self._opening[origin]:
            del self._opening[origin]
        if pooled is not None:
            self._connections.setdefault(origin, []).append(pooled)
            quic = pooled.connection.http_version == "3"
            self._multiplexed[(origin, quic)] = pooled.connection.multiplexed
        self.changed(origin)

    async def wait_for_change(self, origin: Origin | None = None, *, first: bool = False) -> None:
        """Wait, as a request to *origin* that the pool told to :class:`Wait`, for its turn.

        The turn comes with a change of the pool (or from the request before
        this one). A request that decides again and need not wait passes the
        turn on with :meth:`pass_turn`.

        :param first: keep the place at the front of the queue (a request
            that had the turn and must wait still)
        """
        woken = trio.Event()
        queue = self._queues.setdefault(origin, deque())
        if first:
            queue.appendleft(woken)
        else:
            queue.append(woken)
        self._waiting += 1
        try:
            await woken.wait()
        except BaseException:
            if woken.is_set():
                self.pass_turn(origin)  # woken, but leaving: the next request must look
            else:
                queue.remove(woken)  # only when leaving the queue early
                if not queue and self._queues.get(origin) is queue:
                    del self._queues[origin]
            raise
        finally:
            self._waiting -= 1

    def pass_turn(self, origin: Origin | None = None) -> None:
        """Wake the next request waiting for *origin*, if any (see :meth:`wait_for_change`)."""
        queue = self._queues.get(origin)
        if queue:
            queue.popleft().set()
            if not queue:
                del self._queues[origin]

    # -- PoolNotifier ---------------------------------------------------------

    def changed(self, origin: Origin | None = None) -> None:
        """Something changed for *origin* (``None``: for any): give its first waiting request the turn."""
        if origin is None:
            for key in list(self._queues):
                self.pass_turn(key)
        else:
            self.pass_turn(origin)
            self.pass_turn(None)
        if self._watchers:
            changed, self._changed = self._changed, trio.Event()
            changed.set()

    async def wait_changed(self) -> None:
        """Wait for the next change of the pool (to watch it: every watcher wakes)."""
        self._watchers += 1
        try:
            await self._changed.wait()
        finally:
            self._watchers -= 1

    def remove(self, pooled: PooledConnection) -> None:
        """Forget a connection that ended."""
        connections = self._connections.get(pooled.origin, [])
        if pooled in connections:
            connections.remove(pooled)
            if not connections:
                del self._connections[pooled.origin]
        self.changed(pooled.origin)

    # -- inspection -----------------------------------------------------------

    def connections(self) -> dict[Origin, list[PooledConnection]]:
        """The pooled connections per origin (a copy)."""
        return {origin: list(pooled) for origin, pooled in self._connections.items()}

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool."""
        versions: dict[str, int] = {}
        idle = exchanges = 0
        for pooled_list in self._connections.values():
            for pooled in pooled_list:
                versions[pooled.http_version] = versions.get(pooled.http_version, 0) + 1
                exchanges += len(pooled.channels)
                idle += not pooled.channels
        return PoolStatistics(versions, sum(self._opening.values()), idle, exchanges, self._waiting)

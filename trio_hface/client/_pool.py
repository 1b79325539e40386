"""The connection pool of a client session, with a pure core.

Theory of operation
-------------------

Connections are reused: HTTP/1.1 ones for one request at a time (keep-alive),
HTTP/2 and HTTP/3 ones for as many concurrent requests as the server allows.
A connection that ends or receives GOAWAY takes no new request and is
replaced by a new one when needed; at most ``max_connections_per_origin``
connections exist per origin.

:meth:`ConnectionPool.decide` is the whole policy and does no I/O: given an
origin and whether the request goes over HTTP/3, it answers :class:`Use`
(this connection), :class:`Open` (open one to this origin) or :class:`Wait`
(until something changes). The session carries the decision out (opening
connections, waiting up to ``pool_timeout``) and tells the pool what
happened, so the decision is tested without a network and every HTTP
version shares it.
"""

from __future__ import annotations

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
    """Open a new connection to this origin, then decide again."""

    origin: Origin


@dataclass(frozen=True)
class Wait:
    """Wait for a change of the pool (a connection opened, freed or ended), then decide again."""


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
    """

    def __init__(self, max_connections_per_origin: int) -> None:
        if max_connections_per_origin < 1:
            raise ValueError(
                f"max_connections_per_origin must be positive, not {max_connections_per_origin!r}"
            )
        self.max_connections_per_origin = max_connections_per_origin
        self._connections: dict[Origin, list[PooledConnection]] = {}
        self._opening: dict[Origin, int] = {}
        # Whether connections to an origin (by TCP, by QUIC) turned out multiplexed.
        self._multiplexed: dict[tuple[Origin, bool], bool] = {}
        self._changed = trio.Event()
        self._waiting = 0

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
            return Open(origin)
        return Wait()

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
        self.changed()

    async def wait_for_change(self) -> None:
        """Wait (as a request the pool told to :class:`Wait`) for the next change."""
        self._waiting += 1
        try:
            await self.wait_changed()
        finally:
            self._waiting -= 1

    # -- PoolNotifier ---------------------------------------------------------

    def changed(self) -> None:
        """Wake whoever waits for a change of the pool."""
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        """Wait for the next change of the pool."""
        await self._changed.wait()

    def remove(self, pooled: PooledConnection) -> None:
        """Forget a connection that ended."""
        connections = self._connections.get(pooled.origin, [])
        if pooled in connections:
            connections.remove(pooled)
            if not connections:
                del self._connections[pooled.origin]
        self.changed()

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

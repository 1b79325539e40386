"""A budget of connections that listeners share, so that a flood cannot exhaust the server."""

from __future__ import annotations

import logging

import trio

__all__ = ["ConnectionLimit"]

log = logging.getLogger(__name__)


class ConnectionLimit:
    """At most *max_connections* connections at once, across the listeners given this object.

    A TCP listener accepts only while a place is free: new connections wait
    in the kernel's backlog meanwhile (and the kernel refuses them once the
    backlog is full). A QUIC listener, whose
    accept loop also routes the datagrams of running connections and so
    cannot wait, drops the Initial packets of new connections while the
    budget is spent; clients retransmit them. A place is given back when its
    connection's handler has ended and the transport is closed.

    :param max_connections: the size of the budget (at least 1)
    """

    def __init__(self, max_connections: int) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        #: The size of the budget.
        self.max_connections = max_connections
        self._count = 0
        self._freed = trio.Event()
        self._warned = False

    @property
    def count(self) -> int:
        """Places taken: connections being set up or served."""
        return self._count

    @property
    def full(self) -> bool:
        """Whether every place is taken."""
        return self._count >= self.max_connections

    async def wait_for_room(self) -> None:
        """Wait until a place is free (without taking it)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.full:
            self.note_full()
            await self._freed.wait()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def acquire(self) -> None:
        """Take a place, waiting until one is free."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.full:
            self.note_full()
            await self._freed.wait()
        self._count += 1
        await trio.lowlevel.cancel_shielded_checkpoint()  # the place is ours: no cancellation now

    def acquire_nowait(self) -> None:
        """Take a place now (the caller checked :attr:`full`)."""
        self._count += 1

    def note_full(self) -> None:
        """Log, once each time the budget runs out, that connections are being held back."""
        if not self._warned:
            self._warned = True
            log.warning(
                "%d connections: holding back new ones until one ends (max_connections)",
                self.max_connections,
            )

    def release(self) -> None:
        """Give a place back."""
        self._count -= 1
        if self._count < self.max_connections:
            self._warned = False
        freed, self._freed = self._freed, trio.Event()
        freed.set()

"""The listener interface, and the accept loop that the TCP and QUIC listeners share.

Theory of operation
-------------------

:class:`AcceptingListener` runs one accept loop per transport listener (a
TCP or TLS socket listener, or the QUIC router's stream listener) inside
:meth:`~HTTPListener.serve`'s own nursery, and each accepted transport in a
task of the handler nursery: set up (handshake, protocol), then the handler
inside ``async with connection``. A failure there is logged and ends that
connection only.

With a :class:`.ConnectionLimit`, a loop first waits for room, then takes the
accepted transport's place (a slot) before its task starts; the slot holds
the connection's cancel scope, so that a full limit can evict the connection
idle longest, and is released when the task ends. Subclasses say only how a
transport becomes a connection (:meth:`AcceptingListener._connect`) and which
addresses they are bound to.

Trio reschedules a task after every accept, so a loop takes one connection
from the kernel's backlog per scheduling round, and a round lasts as long as
every runnable task's step: with thousands of busy streams, half a second.
Connections arriving together then waited for their turns one round each
(three with a limit) and timed out in their handshake. So a TCP listener
runs ``ACCEPT_TASKS`` loops on each socket listener: a loop that finds
another one waiting for the next connection (``trio.BusyResourceError``)
waits until that one has accepted, then tries again, so a burst is taken up
to ``ACCEPT_TASKS`` per round. While the limit has more free places than
loops, a loop takes its place without a checkpoint; once places are scarce,
the loops take turns (one lock), so at most one accepted socket waits for a
place, as with a single loop.
"""

from __future__ import annotations

import errno
import logging
import ssl
from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, NoReturn, TypeVar

import trio

from .._typing import AddressType
from ..errors import ALPNError
from ._connections import CLOSE_TIMEOUT, HTTPConnection
from ._limit import ConnectionLimit, ConnectionSlot

__all__ = ["ACCEPT_TASKS", "AcceptingListener", "HTTPListener", "Handler"]

log = logging.getLogger(__name__)

#: Handler of one accepted connection.
Handler = Callable[[HTTPConnection], Awaitable[object]]

# Errors from accept() that mean "out of resources, try again later"
# (the same set trio.serve_listeners sleeps on).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_SLEEP = 0.1

#: Accept loops per TCP listener (see the theory of operation): connections
#: taken from the kernel's backlog per scheduling round. A loop with nothing
#: to accept waits at no cost.
ACCEPT_TASKS = 32

# The transport a listener accepts.
_S = TypeVar("_S", bound=trio.abc.AsyncResource)


class HTTPListener(metaclass=ABCMeta):
    """Accepts HTTP connections and runs a handler for each, in its own task."""

    @property
    @abstractmethod
    def addresses(self) -> list[AddressType]:
        """The ``(host, port)`` addresses the listener is bound to."""

    @abstractmethod
    async def serve(
        self,
        handler: Handler,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[AddressType]] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Accept connections forever, calling ``handler(connection)`` in a new task for each.

        Starts (``task_status.started(addresses)``) once accepting, so
        ``addresses = await nursery.start(listener.serve, handler)`` works.
        The handler runs inside ``async with connection``; its exception is
        logged and ends its connection only.

        :param handler: an async function that takes an :class:`HTTPConnection`
        :param handler_nursery: where the connection tasks run (default: a
            nursery of ``serve``)
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Stop accepting new connections. Idempotent.

        Connections already accepted go on: their handlers decide when they
        end (a graceful shutdown sends them GOAWAY and bounds the wait with a
        deadline on the handler nursery). A QUIC listener keeps routing their
        datagrams until :meth:`serve` ends.
        """

    async def __aenter__(self) -> HTTPListener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _AcceptGate:
    """What the accept loops of one listener share."""

    def __init__(self) -> None:
        # Replaced and set after each accept: loops that found another one
        # waiting for the next connection wait here for it to have come.
        self.accepted = trio.Event()
        # Held by the one loop that may wait for a place while the connection
        # limit is (nearly) full, so that one accepted socket at most waits.
        self.scarce = trio.Lock()

    def note_accept(self) -> None:
        accepted, self.accepted = self.accepted, trio.Event()
        accepted.set()


class AcceptingListener(HTTPListener, Generic[_S]):
    """What TCP and QUIC listeners share: accept loops, a task per
    connection, error isolation, closing."""

    #: Accept loops per transport listener (``ACCEPT_TASKS`` for TCP).
    _accept_tasks = 1

    def __init__(
        self, listeners: Sequence[trio.abc.Listener[_S]], connection_limit: ConnectionLimit | None = None
    ) -> None:
        self._listeners = list(listeners)
        self._closed = False
        self._limit = connection_limit

    @abstractmethod
    async def _connect(self, stream: _S) -> HTTPConnection:
        """Make a connection of an accepted transport (a handshake may happen here).

        Raising drops the transport; OS, TLS and timeout errors are expected
        and logged at debug level only.
        """

    async def serve(
        self,
        handler: Handler,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[AddressType]] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        try:
            async with trio.open_nursery() as nursery:
                target = handler_nursery or nursery
                for listener in self._listeners:
                    gate = _AcceptGate()
                    for _ in range(self._accept_tasks):
                        nursery.start_soon(self._accept_loop, listener, gate, handler, target)
                task_status.started(self.addresses)
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):  # closing sockets does not wait
                await self._serve_ended()
        raise AssertionError("accept loops do not return")  # pragma: no cover

    async def _serve_ended(self) -> None:
        """Called when :meth:`serve` ends (it is cancelled); nothing to do by default."""

    async def _accept_loop(
        self, listener: trio.abc.Listener[_S], gate: _AcceptGate, handler: Handler, nursery: trio.Nursery
    ) -> NoReturn:
        while True:
            stream, scope, slot = await self._accept(listener, gate)
            nursery.start_soon(self._handle, stream, scope, slot, handler)

    def _peer_host(self, stream: _S) -> str | None:
        """The host of the peer of an accepted transport (for the per-address bound)."""
        inner: Any = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        if isinstance(inner, trio.SocketStream):
            try:
                return str(inner.socket.getpeername()[0])
            except OSError:  # already gone
                return None
        return None

    async def _accept(
        self, listener: trio.abc.Listener[_S], gate: _AcceptGate
    ) -> tuple[_S, trio.CancelScope, ConnectionSlot | None]:
        """Accept a transport, and take its place in the limit (evicting an idle connection if full).

        The returned cancel scope is the connection's: an eviction cancels it.
        """
        limit = self._limit
        scope = trio.CancelScope()
        if limit is None:
            return await self._accept_one(listener, gate), scope, None
        while True:
            if (
                limit.max_connections is not None
                and limit.max_connections - limit.count <= self._accept_tasks
            ):
                # Places are scarce: one loop at a time waits for room (or evicts).
                async with gate.scarce:
                    return await self._accept_scarce(listener, gate, limit, scope)
            # Room for every loop's connection: take the place without a checkpoint.
            stream = await self._accept_or_wait(listener, gate)
            if stream is None:
                continue  # the limit may have changed meanwhile: look again
            host = self._peer_host(stream)
            if not limit.admits_address(host):
                await trio.aclose_forcefully(stream)  # over the per-address bound: closed at once
                continue
            if not limit.full:
                return stream, scope, limit.acquire_nowait(scope.cancel, host)
            # Filled meanwhile through another listener sharing the limit.
            return stream, scope, await self._acquire(limit, stream, scope, host)

    async def _accept_scarce(
        self,
        listener: trio.abc.Listener[_S],
        gate: _AcceptGate,
        limit: ConnectionLimit,
        scope: trio.CancelScope,
    ) -> tuple[_S, trio.CancelScope, ConnectionSlot]:
        while True:
            await limit.wait_for_room()
            stream = await self._accept_or_wait(listener, gate)
            if stream is None:
                continue  # another loop accepted meanwhile: is there still room?
            host = self._peer_host(stream)
            if limit.admits_address(host):
                break
            await trio.aclose_forcefully(stream)  # over the per-address bound: closed at once
        return stream, scope, await self._acquire(limit, stream, scope, host)

    async def _acquire(
        self, limit: ConnectionLimit, stream: _S, scope: trio.CancelScope, host: str | None
    ) -> ConnectionSlot:
        try:
            # At once, unless every connection is busy or an evicted one has
            # not let go of its place yet.
            return await limit.acquire(scope.cancel, host)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    async def _accept_one(self, listener: trio.abc.Listener[_S], gate: _AcceptGate) -> _S:
        while True:
            stream = await self._accept_or_wait(listener, gate)
            if stream is not None:
                return stream

    async def _accept_or_wait(self, listener: trio.abc.Listener[_S], gate: _AcceptGate) -> _S | None:
        """Accept a transport, or return ``None`` once another loop of the listener accepted one."""
        while True:
            try:
                stream = await listener.accept()
            except trio.BusyResourceError:
                # Another loop of this listener waits for the next connection:
                # wait until it has come (more may be queued behind it).
                await gate.accepted.wait()
                return None
            except trio.ClosedResourceError:
                # Closed (by aclose(), or under our feet): accept no more on
                # this one; running connections and other listeners go on.
                if not self._closed:
                    log.warning("listener %r was closed while serving", listener)
                await trio.sleep_forever()
            except OSError as exc:
                if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                    log.error("accept failed (%s); sleeping %.1f s", exc, _ACCEPT_SLEEP)
                    await trio.sleep(_ACCEPT_SLEEP)
                    continue
                raise
            gate.note_accept()
            return stream

    async def _handle(
        self, stream: _S, scope: trio.CancelScope, slot: ConnectionSlot | None, handler: Handler
    ) -> None:
        try:
            with scope:  # cancelled if the limit evicts the connection
                try:
                    connection = await self._connect(stream)
                except (trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
                    log.debug("connection dropped before HTTP: %r", exc)
                    return
                except ALPNError as exc:  # the peer's choice, not our bug: one line
                    log.warning("connection refused: %s", exc)
                    return
                except Exception:
                    log.exception("cannot set up a connection")
                    return
                connection.connection_slot = slot
                try:
                    async with connection:
                        await handler(connection)
                except Exception:
                    log.exception(
                        "handler failed on connection from %s", connection.extra_attributes["remote_address"]
                    )
        finally:
            await trio.aclose_forcefully(stream)
            if slot is not None:
                slot.release()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            await trio.aclose_forcefully(listener)

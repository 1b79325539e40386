"""Forwarding QUIC datagrams between worker processes, where the kernel cannot steer them.

Theory of operation
-------------------

Without ``SO_ATTACH_REUSEPORT_CBPF`` the kernel spreads the datagrams of a
reuse-port group by a hash of the 4-tuple, so after a client's address
changes they may reach a worker that does not own the connection. Each
worker's :class:`~._quic.QUICListener` then asks its :class:`DatagramForwarder`
about every datagram it cannot route: if the first octet of the destination
connection ID names another worker (see :class:`.ConnectionIDRouting`), the
datagram goes to that worker over a local datagram socket, with the client's
address in front, and the owner routes it as if it had received it itself;
it answers from its own socket on the same port. A datagram that names the
worker that received it is never forwarded, so nothing goes round in circles.

The supervisor creates one ``AF_UNIX`` datagram socket pair per worker and
address: a worker receives on its own pair and sends on the others'. Sends
never wait: a full socket drops the datagram (counted), as the network would.
"""

from __future__ import annotations

import errno
import logging
import socket as stdlib_socket
import struct
from collections.abc import Callable, Sequence

import trio

from .._typing import AddressType, DatagramType
from ._udp import MAX_DATAGRAM_SIZE, UDPSocket

__all__ = ["DatagramForwarder"]

log = logging.getLogger(__name__)

#: Datagrams taken from the forwarding socket per wakeup at most.
RECEIVE_BATCH = 64

# The client's port and the length of its host, before the host and the datagram.
_HEADER = struct.Struct("!HB")


class DatagramForwarder:
    """Sends misrouted datagrams to the worker that owns them, and receives those sent to this one.

    :param worker_of: the worker a destination connection ID names
        (:meth:`.ConnectionIDRouting.worker_of`)
    :param index: this worker's index
    :param receive: this worker's end of its socket pair (non-blocking); the forwarder owns it
    :param send: every worker's sending end, by index (this worker's is not used)
    """

    def __init__(
        self,
        worker_of: Callable[[bytes], int | None],
        index: int,
        receive: stdlib_socket.socket,
        send: Sequence[stdlib_socket.socket],
    ) -> None:
        self._worker_of = worker_of
        self._index = index
        self._receive = receive
        self._send = list(send)
        self._receive.setblocking(False)
        for sock in self._send:
            sock.setblocking(False)
        #: Datagrams sent to their owner.
        self.forwarded = 0
        #: Datagrams received from other workers.
        self.received = 0
        #: Datagrams dropped because the owner's socket was full.
        self.dropped = 0

    def forward(self, destination_cid: bytes, data: bytes, address: AddressType) -> bool:
        """Send the datagram to its owner if that is another worker; ``True`` if it went."""
        owner = self._worker_of(destination_cid)
        if owner is None or owner == self._index or owner >= len(self._send):
            return False
        host = address[0].encode("ascii")
        try:
            self._send[owner].send(_HEADER.pack(address[1], len(host)) + host + data)
        except BlockingIOError:
            self.dropped += 1
        except OSError as exc:
            if exc.errno != errno.ECONNREFUSED:  # a worker restarting: the datagram is lost
                log.debug("cannot forward to worker %d: %s", owner, exc)
            self.dropped += 1
        else:
            self.forwarded += 1
        return True

    def receive_nowait(self) -> list[DatagramType]:
        """The datagrams other workers sent here and waiting now (maybe none)."""
        batch: list[DatagramType] = []
        for _ in range(RECEIVE_BATCH):
            try:
                message = self._receive.recv(MAX_DATAGRAM_SIZE + 512)
            except BlockingIOError:
                break
            if len(message) < _HEADER.size:
                continue
            port, size = _HEADER.unpack_from(message)
            start = _HEADER.size + size
            try:
                host = message[_HEADER.size : start].decode("ascii")
            except UnicodeDecodeError:
                continue
            batch.append((message[start:], (host, port)))
        self.received += len(batch)
        return batch

    async def receive_with(self, udp: UDPSocket) -> list[DatagramType]:
        """Wait for datagrams on *udp* or from other workers; return those waiting (at least one).

        :raises trio.ClosedResourceError: if *udp* was closed
        """
        while True:
            await trio.lowlevel.checkpoint()
            batch = self.receive_nowait() + udp.receive_nowait()
            if batch:
                return batch
            async with trio.open_nursery() as nursery:

                async def wait(sock: stdlib_socket.socket) -> None:
                    try:
                        await trio.lowlevel.wait_readable(sock)
                    except trio.ClosedResourceError:
                        pass  # closed: receive_nowait says so at the top of the loop
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wait, self._receive)
                nursery.start_soon(wait, udp.socket)

    def close(self) -> None:
        """Close the receiving socket (the sending ends belong to the supervisor's copies)."""
        trio.lowlevel.notify_closing(self._receive)
        self._receive.close()

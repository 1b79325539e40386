"""A UDP socket that moves datagrams in batches: a flight per syscall where the kernel allows.

Theory of operation
-------------------

QUIC sends a flight of datagrams at a time and receives a burst of ACKs or
data at a time. One Trio ``sendto`` or ``recvfrom`` per datagram costs a
syscall and a checkpoint each, and a receive loop that yields after every
datagram falls behind the senders of the same process until the kernel's
socket buffer overflows, which QUIC's congestion control reads as loss.
:class:`UDPSocket` therefore:

* **sends** a batch with one ``sendmsg`` per run of datagrams to the same
  address, using UDP generic segmentation offload (``UDP_SEGMENT``, Linux 4.18+):
  the kernel cuts the buffer into datagrams of the first one's size (only the
  last may be shorter). Without it, it sends each datagram with a
  non-blocking ``sendto``; either way the batch costs one checkpoint, and it
  waits (cancellably) only when the socket's send buffer is full;
* **receives** every datagram already waiting, up to :data:`RECEIVE_BATCH`,
  per wakeup, with non-blocking reads; with UDP generic receive offload
  (``UDP_GRO``), one read may return several datagrams of one sender glued
  together, which it splits again at the segment size the kernel reports;
* asks for socket buffers of :data:`SOCKET_BUFFER_SIZE` (the kernel caps the
  request at ``net.core.rmem_max`` and ``wmem_max``).

What the kernel offers is detected once per process (:func:`udp_offload`) and
logged at debug level; a socket whose ``UDP_SEGMENT`` send fails (a device
without checksum offload) falls back to one ``sendto`` per datagram.

The socket does its non-blocking I/O on a duplicate of the Trio socket's file
descriptor and waits with :func:`trio.lowlevel.wait_readable` and
:func:`~trio.lowlevel.wait_writable` on it; :meth:`UDPSocket.close` closes both.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket as stdlib_socket
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import trio

from .._typing import AddressType, DatagramType

__all__ = ["UDPOffload", "UDPSocket", "udp_offload"]

log = logging.getLogger(__name__)

#: Largest UDP payload (IPv4 and IPv6 without jumbograms), also the largest
#: read: with GRO the kernel glues at most this much into one.
MAX_DATAGRAM_SIZE = 65527

#: Datagrams read per wakeup at most: a full flight of a fast peer, small
#: enough that routing one batch does not hold up the other tasks for long.
RECEIVE_BATCH = 64

#: Socket buffer size asked for, in bytes: about 3,000 full-size QUIC packets,
#: room for the bursts of ten fast connections on one socket (the kernel
#: default, 208 KiB, overflows under them). The kernel caps it.
SOCKET_BUFFER_SIZE = 4 * 1024 * 1024

#: Don't Fragment, which RFC 9000 section 14 has set where possible: Linux's
#: ``IP_MTU_DISCOVER`` and ``IPV6_MTU_DISCOVER`` set to ``IP_PMTUDISC_PROBE``
#: (linux/in.h, linux/in6.h): the DF bit on, and the kernel's path MTU, learnt
#: from ICMP messages that anyone can forge, ignored: QUIC discovers its own.
IP_MTU_DISCOVER = 10
IPV6_MTU_DISCOVER = 23
PMTUDISC_PROBE = 3

#: ``SOL_UDP`` options (linux/udp.h); Python 3.11's socket module lacks them.
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104

#: Segments one GSO send may carry: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.9).
MAX_GSO_SEGMENTS = 64

#: Bytes one GSO send may carry: a whole send is one UDP datagram to the
#: kernel, at most 65,535 bytes with its IPv4 and UDP headers.
MAX_GSO_BYTES = 65507

_GRO_CMSG_SPACE = stdlib_socket.CMSG_SPACE(4)


def _address(raw: Any) -> AddressType:
    return (str(raw[0]), int(raw[1]))


class UDPOffload(NamedTuple):
    """What the kernel offers to batch UDP datagrams."""

    #: Sending several datagrams with one ``sendmsg`` (``UDP_SEGMENT``).
    gso: bool
    #: Receiving several datagrams with one ``recvmsg`` (``UDP_GRO``).
    gro: bool


@functools.cache
def udp_offload() -> UDPOffload:
    """Detect once whether the kernel offers UDP segmentation and receive offload."""
    gso = gro = False
    try:
        with stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM) as probe:
            try:
                probe.setsockopt(SOL_UDP, UDP_SEGMENT, 1200)
                gso = True
            except OSError:
                pass
            try:
                probe.setsockopt(SOL_UDP, UDP_GRO, 1)
                gro = True
            except OSError:
                pass
    except OSError:
        pass
    log.debug(
        "UDP: %s, %s",
        "GSO sends a flight per sendmsg" if gso else "no GSO: one sendto per datagram",
        "GRO receives glued datagrams" if gro else "no GRO: one recvfrom per datagram",
    )
    return UDPOffload(gso=gso, gro=gro)


def _runs(datagrams: Sequence[DatagramType]) -> list[tuple[list[bytes], AddressType]]:
    """Group *datagrams* into runs that one GSO send can carry, in order.

    A run goes to one address; all its datagrams have the first one's size
    except the last, which may be shorter.
    """
    runs: list[tuple[list[bytes], AddressType]] = []
    segments: list[bytes] = []
    address: AddressType | None = None
    size = total = 0
    for data, to in datagrams:
        if (
            segments
            and to == address
            and len(data) <= size
            and len(segments[-1]) == size
            and len(segments) < MAX_GSO_SEGMENTS
            and total + len(data) <= MAX_GSO_BYTES
        ):
            segments.append(data)
            total += len(data)
            continue
        if segments:
            assert address is not None
            runs.append((segments, address))
        segments, address, size, total = [data], to, len(data), len(data)
    if segments:
        assert address is not None
        runs.append((segments, address))
    return runs


def _set_dont_fragment(sock: stdlib_socket.socket) -> None:
    """Set DF on *sock*'s datagrams (see :data:`IP_MTU_DISCOVER`); where the system has no such option, leave it."""
    if sock.family == stdlib_socket.AF_INET:
        level, option = stdlib_socket.IPPROTO_IP, IP_MTU_DISCOVER
    elif sock.family == stdlib_socket.AF_INET6:
        level, option = stdlib_socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER
    else:
        return
    try:
        sock.setsockopt(level, option, PMTUDISC_PROBE)
    except OSError:  # not Linux: the system decides
        log.debug("cannot set DF on UDP socket")


class UDPSocket:
    """Batched, non-blocking I/O on a bound Trio UDP socket (see the module's documentation).

    :param sock: the Trio socket; :meth:`close` closes it
    """

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._trio_sock = sock
        self._sock = stdlib_socket.socket(fileno=stdlib_socket.dup(sock.fileno()))
        self._sock.setblocking(False)
        self._closed = False
        # An ICMP "port unreachable" that a send on a connected socket reported
        # (the kernel reports it once, to whichever call comes first): the next
        # receive raises it, so that the receiver learns of it all the same.
        self._refused: OSError | None = None
        offload = udp_offload()
        #: Whether sends use ``UDP_SEGMENT``; cleared if the kernel refuses it on this socket.
        self.gso = offload.gso
        #: Whether receives may return glued datagrams (``UDP_GRO`` is on).
        self.gro = False
        if offload.gro:
            try:
                self._sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                pass
        _set_dont_fragment(self._sock)
        for option in (stdlib_socket.SO_RCVBUF, stdlib_socket.SO_SNDBUF):
            try:
                if self._sock.getsockopt(stdlib_socket.SOL_SOCKET, option) < SOCKET_BUFFER_SIZE:
                    self._sock.setsockopt(stdlib_socket.SOL_SOCKET, option, SOCKET_BUFFER_SIZE)
            except OSError:  # not allowed here: the default buffers still work
                log.debug("cannot set UDP socket buffer option %d", option)

    def getsockname(self) -> Any:
        """The bound address, as the socket module gives it."""
        return self._trio_sock.getsockname()

    @property
    def socket(self) -> stdlib_socket.socket:
        """The non-blocking socket that receives, to wait for with :func:`trio.lowlevel.wait_readable`."""
        return self._sock

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close the socket; a task waiting in :meth:`receive_batch` or :meth:`send_batch` gets ``ClosedResourceError``."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
            self._trio_sock.close()

    # -- receiving -----------------------------------------------------------

    async def receive_batch(self) -> list[DatagramType]:
        """Wait for datagrams; return those waiting now (at least one, at most about :data:`RECEIVE_BATCH`).

        :raises trio.ClosedResourceError: if the socket was closed
        :raises ConnectionRefusedError: if the socket is connected and its peer's
            port is closed (ICMP port unreachable)
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        batch = self.receive_nowait()
        if batch:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return batch
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            batch = self.receive_nowait()
            if batch:
                return batch

    def receive_nowait(self) -> list[DatagramType]:
        """Return the datagrams waiting now, without waiting (maybe none).

        :raises trio.ClosedResourceError: if the socket was closed
        :raises ConnectionRefusedError: as :meth:`receive_batch`
        """
        if self._closed:
            raise trio.ClosedResourceError("the UDP socket is closed")
        if self._refused is not None:
            refused, self._refused = self._refused, None
            raise refused
        batch: list[DatagramType] = []
        for _ in range(RECEIVE_BATCH):
            try:
                if self.gro:
                    data, ancillary, _, raw = self._sock.recvmsg(MAX_DATAGRAM_SIZE, _GRO_CMSG_SPACE)
                else:
                    data, raw = self._sock.recvfrom(MAX_DATAGRAM_SIZE)
                    ancillary = []
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise trio.ClosedResourceError("the UDP socket is closed") from None
                if exc.errno == errno.ECONNREFUSED:
                    # Only a connected socket hears of ICMP port unreachable: nobody
                    # listens at its peer's port. The caller decides what it means.
                    refused = ConnectionRefusedError(exc.errno, "nobody listens at the UDP port")
                    if not batch:
                        raise refused from None
                    self._refused = refused  # after the datagrams that came before it
                    break
                # Other ICMP errors for earlier sends surface here on some systems: not fatal.
                log.debug("UDP receive error %s", exc)
                continue
            address = _address(raw)
            segment = self._segment_size(ancillary)
            if segment and segment < len(data):
                view = memoryview(data)
                for start in range(0, len(data), segment):
                    batch.append((bytes(view[start : start + segment]), address))
            else:
                batch.append((data, address))
            if len(batch) >= RECEIVE_BATCH:
                break
        return batch

    @staticmethod
    def _segment_size(ancillary: list[tuple[int, int, bytes]]) -> int:
        for level, kind, value in ancillary:
            if level == SOL_UDP and kind == UDP_GRO and len(value) >= 4:
                return int(struct.unpack("=i", value[:4])[0])
        return 0

    # -- sending ---------------------------------------------------------------

    async def send_batch(self, datagrams: Sequence[DatagramType]) -> None:
        """Send *datagrams*, each to its address, in order; wait only while the send buffer is full.

        A datagram the network refuses (unreachable, too large) is lost, as
        UDP allows, and logged at debug level. If cancelled, a part of the
        batch may have been sent.

        :raises trio.ClosedResourceError: if the socket was closed
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        for segments, address in _runs(datagrams) if self.gso else [([d], a) for d, a in datagrams]:
            # (self.gso is cleared if the kernel refuses a GSO send: plain sends from then on.)
            if len(segments) > 1 and self.gso and await self._send_segments(segments, address):
                continue
            for data in segments:
                await self._send_one(data, address)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _send_segments(self, segments: list[bytes], address: AddressType) -> bool:
        """One GSO send; ``False`` if the kernel refused GSO here (then this socket stops using it)."""
        ancillary = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(segments[0])))]
        while True:
            self._check_open()
            try:
                self._sock.sendmsg(segments, ancillary, 0, address)
                return True
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT):
                    log.debug("UDP GSO refused (%s): one sendto per datagram from now on", exc)
                    self.gso = False
                    return False
                self._lost(exc, address)
                return True

    async def _send_one(self, data: bytes, address: AddressType) -> None:
        while True:
            self._check_open()
            try:
                self._sock.sendto(data, address)
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
            except OSError as exc:
                self._lost(exc, address)
                return

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the UDP socket is closed")

    def _lost(self, exc: OSError, address: AddressType) -> None:
        if exc.errno == errno.EBADF:
            raise trio.ClosedResourceError("the UDP socket is closed") from None
        if exc.errno == errno.ECONNREFUSED:
            self._refused = ConnectionRefusedError(exc.errno, "nobody listens at the UDP port")
        # UDP is unreliable anyway: a failed send is a lost datagram.
        log.debug("UDP send to %s failed: %s", address, exc)

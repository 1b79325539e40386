"""UDP for QUIC: a server socket shared by many connections, and client sockets.

Theory of operation
-------------------

A QUIC server has one UDP socket for all its connections. :class:`QUICListener`
is a :class:`trio.abc.Listener` whose :meth:`~QUICListener.accept` is also the
socket's receive loop: it reads datagrams, sends each one to the connection
that owns its destination connection ID, and returns when a datagram opens a
new connection. The HTTP listener calls ``accept`` in a loop, so routing never
stops while it serves.

* Each connection receives through a bounded Trio memory channel. The
  demultiplexer cannot push back on the network, so a full channel drops the
  datagram, as a congested network would, and counts the drop
  (:meth:`QUICListener.statistics`); QUIC recovers by retransmission.
* Only an Initial packet of a supported version, in a datagram of at least
  1200 bytes (RFC 9000 section 14.1), opens a connection. With address
  validation on, an Initial without a token gets a Retry packet, and only an
  Initial with a valid token from the same address opens the connection. A long header of
  another version is answered with Version Negotiation (RFC 9000 section 6);
  a Version Negotiation packet (version 0) is always dropped, even for a
  known connection ID, and never answered;
  a short header packet of an unknown connection is answered with a
  stateless reset (RFC 9000 section 10.3) when the server derives its reset
  tokens from a key, so a peer of a forgotten connection learns it at once
  instead of waiting for its idle timeout; anything else unknown is dropped.
* A connection tells its routes with :meth:`QUICStream.update_connection_ids`
  as it issues and retires connection IDs, so it keeps receiving when the
  client's address changes (routing is by connection ID, not address).
* The socket is a :class:`~._udp.UDPSocket`: the receive loop takes every
  datagram waiting per wakeup and routes them all before it yields, and a
  connection's flight goes out in one batch (UDP GSO where the kernel has it).
  A connection's reader takes the datagrams queued for it in one go too
  (:meth:`~.DatagramStream.receive_nowait`).
"""

from __future__ import annotations

import logging
import socket as stdlib_socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from .._typing import AddressType, DatagramType
from ..protocols.http3 import (
    QUICPacketType,
    QUICRetry,
    encode_stateless_reset,
    encode_version_negotiation,
    parse_quic_header,
    stateless_reset_token,
)
from ._abc import DatagramStream, QUICStream, QUICStreamListener
from ._forward import DatagramForwarder
from ._udp import UDPSocket

__all__ = [
    "QUICListener",
    "QUICListenerStatistics",
    "UDPStream",
    "open_quic_listeners",
    "open_udp_stream",
    "resolve_udp",
]

log = logging.getLogger(__name__)

#: Datagrams queued per connection before more are dropped: enough for a
#: full congestion window of 1200-byte packets at loopback speed.
CONNECTION_QUEUE_SIZE = 256

#: RFC 9000 section 14.1: a server discards Initial datagrams shorter than this.
MIN_INITIAL_SIZE = 1200

#: Stateless resets sent per second at most: they answer packets of unknown
#: connections, so an attacker must not turn them into a traffic amplifier.
STATELESS_RESETS_PER_SECOND = 100

#: RFC 9000 section 10.3: a reset has at least 21 bytes and, to avoid loops
#: between two endpoints, is smaller than the packet that triggered it.
MIN_STATELESS_RESET_SIZE = 21
MAX_STATELESS_RESET_SIZE = 64


def _address(raw: Any) -> AddressType:
    return (str(raw[0]), int(raw[1]))


def _always(address: AddressType) -> bool:
    return True


@dataclass(frozen=True)
class QUICListenerStatistics:
    """Counters of a :class:`QUICListener`."""

    #: Connections with at least one route.
    connections: int
    #: Connection IDs routed.
    routes: int
    #: Datagrams dropped because their connection's queue was full.
    dropped_queue_full: int
    #: Datagrams dropped because nobody owned them or they were not QUIC.
    dropped_unroutable: int
    #: Version Negotiation packets sent.
    version_negotiations: int
    #: Stateless resets sent for packets of unknown connections.
    stateless_resets: int
    #: Retry packets sent (address validation).
    retries: int
    #: Initial packets dropped because their Retry token was invalid or expired.
    invalid_tokens: int
    #: Initial packets of new connections dropped because the admission check said no
    #: (the server is at its connection limit).
    refused_busy: int = 0


class _ServerQUICStream(QUICStream):
    """The datagrams of one server-side QUIC connection."""

    def __init__(
        self, listener: QUICListener, address: AddressType, validation: tuple[bytes, bytes] | None = None
    ) -> None:
        self._listener = listener
        self._address = address
        self._validation = validation
        self._send_channel, self._receive_channel = trio.open_memory_channel[DatagramType](
            CONNECTION_QUEUE_SIZE
        )
        self._cids: set[bytes] = set()
        self._closed = False

    @property
    def remote_address(self) -> AddressType:
        """Where the connection's first datagram came from."""
        return self._address

    @property
    def local_address(self) -> AddressType:
        """The listener's address."""
        return self._listener.address

    @property
    def address_validation(self) -> tuple[bytes, bytes] | None:
        return self._validation

    def receive_nowait(self) -> DatagramType:
        try:
            return self._receive_channel.receive_nowait()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("the QUIC listener was closed") from None

    def _deliver(self, datagram: DatagramType) -> None:
        try:
            self._send_channel.send_nowait(datagram)
        except trio.WouldBlock:
            self._listener._dropped_queue_full += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._listener._dropped_unroutable += 1

    async def send(self, value: DatagramType) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the QUIC stream is closed")
        await self._listener._send_batch([value])

    async def send_batch(self, datagrams: Sequence[DatagramType]) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the QUIC stream is closed")
        await self._listener._send_batch(datagrams)

    async def receive(self) -> DatagramType:
        try:
            return await self._receive_channel.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("the QUIC listener was closed") from None

    def update_connection_ids(self, connection_ids: Sequence[bytes]) -> None:
        if not self._closed:
            self._listener._update_routes(self, set(connection_ids))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._listener._update_routes(self, set())
            self._send_channel.close()
            self._receive_channel.close()
        await trio.lowlevel.checkpoint()

    def _listener_closed(self) -> None:
        self._send_channel.close()


class QUICListener(QUICStreamListener):
    """A UDP socket that accepts QUIC connections and routes their datagrams.

    Obtain instances from :meth:`.SystemNetworking.listen_quic`. Its
    :meth:`accept` must be called continuously (the HTTP listener does): it
    also routes the datagrams of the connections already accepted.

    :param sock: a bound Trio UDP socket, which the listener owns
    :param connection_id_length: the length of our connection IDs
    :param supported_versions: QUIC versions that may open connections
    :param stateless_reset_key: the key the connections' reset tokens derive
        from, or ``None`` to send no stateless resets
    :param retry: validate client addresses with Retry before accepting
    :param retry_key: the Retry token key that several listeners (worker
        processes) share; their tokens are then dated by the system's
        monotonic clock, which every process shares. ``None``: a key of this
        listener's own, and Trio's clock
    """

    def __init__(
        self,
        sock: trio.socket.SocketType,
        *,
        connection_id_length: int,
        supported_versions: Sequence[int],
        stateless_reset_key: bytes | None = None,
        retry: bool = False,
        retry_key: bytes | None = None,
    ) -> None:
        self._retry = QUICRetry(connection_id_length, retry_key) if retry else None
        self._retry_clock: Callable[[], float] = trio.current_time if retry_key is None else time.monotonic
        self._retries = 0
        self._invalid_tokens = 0
        self._reset_key = stateless_reset_key
        self._stateless_resets = 0
        self._reset_budget = float(STATELESS_RESETS_PER_SECOND)
        self._reset_budget_time = trio.current_time()
        self._udp = UDPSocket(sock)
        # Datagrams received but not routed yet: what is left of one batch
        # when a datagram in it opened a connection.
        self._pending: deque[DatagramType] = deque()
        self._cid_length = connection_id_length
        self._versions = list(supported_versions)
        self._routes: dict[bytes, _ServerQUICStream] = {}
        self._streams: set[_ServerQUICStream] = set()
        self._closed = False
        self._accepting = True
        self._admit: Callable[[AddressType], bool] = _always
        self._refused_busy = 0
        self._dropped_queue_full = 0
        self._dropped_unroutable = 0
        self._version_negotiations = 0
        self._forwarder: DatagramForwarder | None = None

    def set_forwarder(self, forwarder: DatagramForwarder) -> None:
        """Send datagrams of connections owned by other worker processes to them (see ``_forward.py``).

        Also receives what the other workers forward here; the listener closes *forwarder*.
        """
        self._forwarder = forwarder

    @property
    def address(self) -> AddressType:
        """The ``(host, port)`` the socket is bound to."""
        return _address(self._udp.getsockname())

    def statistics(self) -> QUICListenerStatistics:
        """Return the listener's counters."""
        return QUICListenerStatistics(
            connections=len(self._streams),
            routes=len(self._routes),
            dropped_queue_full=self._dropped_queue_full,
            dropped_unroutable=self._dropped_unroutable,
            version_negotiations=self._version_negotiations,
            stateless_resets=self._stateless_resets,
            retries=self._retries,
            invalid_tokens=self._invalid_tokens,
            refused_busy=self._refused_busy,
        )

    def set_admission(self, admit: Callable[[AddressType], bool]) -> bool:
        """Ask ``admit(address)`` before accepting each new connection from *address*.

        While it returns false, the Initial packets of new connections are
        dropped (and counted); clients retransmit them. Routing of the
        connections already accepted goes on.

        :returns: ``True``: this listener asks
        """
        self._admit = admit
        return True

    async def accept(self) -> QUICStream:
        """Route datagrams until one opens a new connection; return its stream.

        :raises trio.ClosedResourceError: if the listener was closed
        """
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the QUIC listener is closed")
            if not self._pending:
                try:
                    if self._forwarder is None:
                        self._pending.extend(await self._udp.receive_batch())
                    else:
                        self._pending.extend(await self._forwarder.receive_with(self._udp))
                except trio.ClosedResourceError:
                    raise trio.ClosedResourceError("the QUIC listener is closed") from None
            while self._pending:
                data, address = self._pending.popleft()
                stream = await self._route(data, address)
                if stream is not None:
                    return stream

    async def _route(self, data: bytes, address: AddressType) -> _ServerQUICStream | None:
        header = parse_quic_header(data, self._cid_length)
        if header is None or header.packet_type is QUICPacketType.VERSION_NEGOTIATION:
            # A server never acts on Version Negotiation (RFC 9000 section 6.1),
            # even when it names one of our connections: it is dropped here.
            self._dropped_unroutable += 1
            return None
        stream = self._routes.get(header.destination_cid)
        if stream is not None:
            stream._deliver((data, address))
            return None
        if self._forwarder is not None and self._forwarder.forward(header.destination_cid, data, address):
            return None
        if header.is_long_header and header.version not in self._versions:
            if len(data) >= MIN_INITIAL_SIZE:
                packet = encode_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=self._versions,
                )
                self._version_negotiations += 1
                await self._send(packet, address)
            else:
                self._dropped_unroutable += 1
            return None
        if not header.is_long_header and await self._stateless_reset(
            header.destination_cid, len(data), address
        ):
            return None
        if header.is_initial and len(data) >= MIN_INITIAL_SIZE and self._accepting:
            if not self._admit(address):
                self._refused_busy += 1
                return None
            validation: tuple[bytes, bytes] | None = None
            if self._retry is not None:
                now = self._retry_clock()
                if not header.token:
                    self._retries += 1
                    await self._send(self._retry.retry_packet(header, address, now), address)
                    return None
                validation = self._retry.validate(header, address, now)
                if validation is None:
                    self._invalid_tokens += 1
                    return None
            stream = _ServerQUICStream(self, address, validation)
            self._streams.add(stream)
            self._update_routes(stream, {header.destination_cid})
            stream._deliver((data, address))
            return stream
        self._dropped_unroutable += 1
        return None

    async def _stateless_reset(self, cid: bytes, size: int, address: AddressType) -> bool:
        """Answer a packet of an unknown connection with a stateless reset, if allowed."""
        if self._reset_key is None or size - 1 < MIN_STATELESS_RESET_SIZE:
            return False
        now = trio.current_time()
        self._reset_budget = min(
            float(STATELESS_RESETS_PER_SECOND),
            self._reset_budget + (now - self._reset_budget_time) * STATELESS_RESETS_PER_SECOND,
        )
        self._reset_budget_time = now
        if self._reset_budget < 1:
            return False
        self._reset_budget -= 1
        token = stateless_reset_token(self._reset_key, cid)
        packet = encode_stateless_reset(token, min(size - 1, MAX_STATELESS_RESET_SIZE))
        self._stateless_resets += 1
        self._dropped_unroutable += 1
        await self._send(packet, address)
        return True

    async def _send(self, data: bytes, address: AddressType) -> None:
        await self._send_batch([(data, address)])

    async def _send_batch(self, datagrams: Sequence[DatagramType]) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the QUIC listener is closed")
        try:
            await self._udp.send_batch(datagrams)
        except trio.ClosedResourceError:
            raise trio.ClosedResourceError("the QUIC listener is closed") from None

    def _update_routes(self, stream: _ServerQUICStream, cids: set[bytes]) -> None:
        for cid in stream._cids - cids:
            if self._routes.get(cid) is stream:
                del self._routes[cid]
        for cid in cids - stream._cids:
            self._routes[cid] = stream
        stream._cids = set(cids)
        if not cids:
            self._streams.discard(stream)

    def stop_accepting(self) -> bool:
        """Accept no new connection, but go on routing the datagrams of those accepted.

        :meth:`accept` then never returns; close the listener with
        :meth:`aclose` once the connections are done.

        :returns: ``True``: this listener goes on routing
        """
        self._accepting = False
        return True

    async def aclose(self) -> None:
        """Close the socket; every connection's stream ends. Idempotent."""
        if not self._closed:
            self._closed = True
            self._udp.close()
            if self._forwarder is not None:
                self._forwarder.close()
            self._pending.clear()
            for stream in list(self._streams):
                stream._listener_closed()
            self._routes.clear()
            self._streams.clear()
        await trio.lowlevel.checkpoint()


class UDPStream(DatagramStream):
    """A client's UDP socket, connected to its peer.

    Datagrams from other addresses are not received, and an ICMP "port
    unreachable" for the peer makes :meth:`receive` raise
    :exc:`ConnectionRefusedError` (a closed UDP port is known at once
    instead of after a handshake timeout). Sends may still name an address.

    Obtain instances from :meth:`.SystemNetworking.connect_udp`.
    """

    def __init__(self, sock: trio.socket.SocketType, remote_address: AddressType) -> None:
        self._udp = UDPSocket(sock)
        self._remote_address = remote_address
        # The rest of the last batch received: at most one batch.
        self._pending: deque[DatagramType] = deque()

    @property
    def local_address(self) -> AddressType:
        """Our ``(host, port)``."""
        return _address(self._udp.getsockname())

    @property
    def remote_address(self) -> AddressType:
        """The address this stream was opened for."""
        return self._remote_address

    async def send(self, value: DatagramType) -> None:
        await self.send_batch([value])

    async def send_batch(self, datagrams: Sequence[DatagramType]) -> None:
        try:
            await self._udp.send_batch(datagrams)
        except trio.ClosedResourceError:
            raise trio.ClosedResourceError("the UDP stream is closed") from None

    async def receive(self) -> DatagramType:
        if self._pending:
            await trio.lowlevel.checkpoint()
        # The stream may have been closed (and the rest of its batch dropped)
        # while this task yielded: then the socket says it is closed.
        while not self._pending:
            try:
                self._pending.extend(await self._udp.receive_batch())
            except trio.ClosedResourceError:
                raise trio.ClosedResourceError("the UDP stream is closed") from None
        return self._pending.popleft()

    def receive_nowait(self) -> DatagramType:
        if not self._pending:
            try:
                self._pending.extend(self._udp.receive_nowait())
            except trio.ClosedResourceError:
                raise trio.ClosedResourceError("the UDP stream is closed") from None
            if not self._pending:
                raise trio.WouldBlock
        return self._pending.popleft()

    async def aclose(self) -> None:
        self._udp.close()
        self._pending.clear()
        await trio.lowlevel.checkpoint()


async def open_quic_listeners(
    local_address: AddressType,
    *,
    connection_id_length: int,
    supported_versions: Sequence[int],
    stateless_reset_key: bytes | None = None,
    retry: bool = False,
    retry_key: bytes | None = None,
) -> list[QUICListener]:
    """Bind a UDP socket for each address *local_address* resolves to.

    With port 0, the first socket's port is reused for the others, so all of
    them share one port number.
    """
    host, port = local_address
    infos = await trio.socket.getaddrinfo(
        host or None, port, type=stdlib_socket.SOCK_DGRAM, flags=stdlib_socket.AI_PASSIVE
    )
    listeners: list[QUICListener] = []
    try:
        for family, kind, proto, _, sockaddr in infos:
            sock = trio.socket.socket(family, kind, proto)
            try:
                if family == stdlib_socket.AF_INET6:
                    sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
                address = list(sockaddr)
                if port == 0 and listeners:
                    address[1] = listeners[0].address[1]
                await sock.bind(tuple(address))
            except BaseException:
                sock.close()
                raise
            listeners.append(
                QUICListener(
                    sock,
                    connection_id_length=connection_id_length,
                    supported_versions=supported_versions,
                    stateless_reset_key=stateless_reset_key,
                    retry=retry,
                    retry_key=retry_key,
                )
            )
    except BaseException:
        for listener in listeners:
            await listener.aclose()
        raise
    return listeners


async def resolve_udp(remote_address: AddressType) -> list[AddressType]:
    """Resolve *remote_address* to IP addresses for UDP, in the resolver's preference order."""
    host, port = remote_address
    infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_DGRAM)
    seen: list[AddressType] = []
    for *_, sockaddr in infos:
        address = _address(sockaddr)
        if address not in seen:
            seen.append(address)
    return seen


async def open_udp_stream(remote_address: AddressType) -> UDPStream:
    """Open a UDP socket for talking to *remote_address* (an IP address or the first one a name resolves to)."""
    host, port = remote_address
    infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, sockaddr = infos[0]
    sock = trio.socket.socket(family, kind, proto)
    try:
        await sock.bind(("::", 0) if family == stdlib_socket.AF_INET6 else ("0.0.0.0", 0))
        # Connected, as QUIC clients (curl, Chromium) usually are: the kernel then
        # reports ICMP port unreachable to the socket, and filters other senders.
        await sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return UDPStream(sock, _address(sockaddr))

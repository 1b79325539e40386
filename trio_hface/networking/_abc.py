"""Networking interfaces: what the connection layer needs from the network.

TCP connections are plain Trio streams (:class:`trio.abc.Stream`, in practice
:class:`trio.SocketStream` and :class:`trio.SSLStream`). QUIC runs over
datagram streams, Trio-style channels of ``(payload, address)`` pairs.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence

import trio

from .._models import ClientTLSConfig, ServerTLSConfig
from .._typing import AddressType, DatagramType

__all__ = [
    "ByteStream",
    "DatagramStream",
    "QUICStream",
    "TCPServerNetworking",
    "QUICServerNetworking",
    "ServerNetworking",
    "TCPClientNetworking",
    "UDPClientNetworking",
    "ClientNetworking",
]

#: A reliable byte stream: Trio's own :class:`trio.abc.Stream`.
ByteStream = trio.abc.Stream


class DatagramStream(trio.abc.Channel[DatagramType]):
    """A stream of UDP datagrams, each a ``(payload, (host, port))`` pair.

    :meth:`send` sends a datagram to its address, :meth:`receive` waits for
    the next datagram, :meth:`aclose` releases the socket. Datagrams may be
    lost, as on the network.
    """

    def update_connection_ids(self, connection_ids: Sequence[bytes]) -> None:
        """Tell the stream which QUIC connection IDs are in use now.

        A plain datagram stream (a client's socket) receives every datagram
        and ignores this; a :class:`QUICStream` routes by these IDs.

        :param connection_ids: the IDs the QUIC connection currently uses
        """

    async def send_batch(self, datagrams: Sequence[DatagramType]) -> None:
        """Send several datagrams, in order (a QUIC flight).

        The default calls :meth:`send` for each; the system's streams send a
        flight with as few syscalls as the kernel allows (UDP GSO). If
        cancelled, a part of the batch may have been sent.

        :param datagrams: ``(payload, address)`` pairs
        """
        for datagram in datagrams:
            await self.send(datagram)
        if not datagrams:
            await trio.lowlevel.checkpoint()

    def receive_nowait(self) -> DatagramType:
        """Return a datagram that has already arrived, without waiting.

        Lets a reader take a whole burst per wakeup. The default has none
        to give and raises :exc:`trio.WouldBlock`; :meth:`receive` still
        gets every datagram.

        :raises trio.WouldBlock: if no datagram is waiting
        :raises trio.ClosedResourceError: if the stream was closed
        """
        raise trio.WouldBlock


class QUICStream(DatagramStream):
    """The datagrams of one QUIC connection on a shared server socket.

    Extends :class:`DatagramStream`.
    """

    @property
    def address_validation(self) -> tuple[bytes, bytes] | None:
        """``(original destination CID, retry source CID)`` if the client's
        address was validated with a Retry before this stream was created, else ``None``.

        Pass it to :meth:`.HTTPOverQUICProtocol.address_validated`.
        """
        return None

    @abstractmethod
    def update_connection_ids(self, connection_ids: Sequence[bytes]) -> None:
        """Route datagrams with these destination connection IDs (and no others) here.

        :param connection_ids: the IDs the QUIC connection currently uses
        """


class QUICStreamListener(trio.abc.Listener[QUICStream]):
    """Accepts QUIC connections, each as a :class:`QUICStream`; what a QUIC
    server networking object listens with.

    Beyond :class:`trio.abc.Listener`, it may offer admission control and a
    stop that keeps routing; the defaults say they are not offered, and the
    connection layer then does without (see each method).
    """

    def set_admission(self, admit: Callable[[AddressType], bool]) -> bool:
        """Ask ``admit(address)`` before accepting each new connection from *address*.

        :returns: whether the listener will ask. The default returns
            ``False``: every connection is accepted, so a connection limit
            cannot hold new QUIC connections back on this listener.
        """
        return False

    def stop_accepting(self) -> bool:
        """Accept no new connection, but go on routing the datagrams of those accepted.

        :returns: whether the listener does so. The default returns
            ``False``, and the caller closes the listener instead (which
            ends the connections it routes).
        """
        return False


class TCPServerNetworking(metaclass=ABCMeta):
    """Listens for TCP connections, with or without TLS."""

    @abstractmethod
    async def listen_tcp(self, local_address: AddressType) -> Sequence[trio.SocketListener]:
        """Listen for cleartext TCP connections.

        :param local_address: ``(host, port)``; port 0 picks a free port
        :returns: one listener per bound address (a host name may bind IPv4 and IPv6)
        """

    @abstractmethod
    async def listen_tcp_tls(
        self,
        local_address: AddressType,
        *,
        tls_config: ServerTLSConfig,
        alpn_protocols: Sequence[str],
    ) -> Sequence[trio.SSLListener[trio.SocketStream]]:
        """Listen for TLS connections.

        Accepted streams have not shaken hands yet: the caller performs
        :meth:`trio.SSLStream.do_handshake`, under its own timeout.

        :param local_address: ``(host, port)``; port 0 picks a free port
        :param tls_config: the certificate and key to present
        :param alpn_protocols: ALPN protocol IDs to accept, most preferred first
        """


class QUICServerNetworking(metaclass=ABCMeta):
    """Listens for QUIC connections."""

    @abstractmethod
    async def listen_quic(
        self,
        local_address: AddressType,
        *,
        quic_connection_id_length: int,
        quic_supported_versions: Sequence[int],
        quic_stateless_reset_key: bytes | None = None,
        quic_retry: bool = False,
        quic_retry_key: bytes | None = None,
    ) -> Sequence[QUICStreamListener]:
        """Bind UDP sockets and accept QUIC connections on them.

        :param local_address: ``(host, port)``; port 0 picks a free port
            (the same one for every address of the host)
        :param quic_connection_id_length: the length of our connection IDs,
            needed to route short header packets
        :param quic_supported_versions: versions that may open connections;
            others get Version Negotiation
        :param quic_stateless_reset_key: the key that the connections' reset
            tokens derive from, for stateless resets; ``None`` sends none
        :param quic_retry: validate client addresses with Retry packets before
            accepting a connection (costs a round trip; limits spoofed floods)
        :param quic_retry_key: a Retry token key shared with other listeners
            (worker processes), so that each validates the others' tokens;
            ``None`` for a key of their own. The server passes it only when
            it has one, so implementations without it keep working
        :returns: one listener per bound address
        """


class ServerNetworking(TCPServerNetworking, QUICServerNetworking):
    """Listens for TCP and QUIC connections.

    Extends :class:`TCPServerNetworking` and :class:`QUICServerNetworking`.
    """


class TCPClientNetworking(metaclass=ABCMeta):
    """Opens TCP connections, with or without TLS."""

    @abstractmethod
    async def connect_tcp(self, remote_address: AddressType) -> trio.SocketStream:
        """Open a TCP connection (happy eyeballs over IPv6 and IPv4).

        :raises OSError: if no address accepted the connection
        """

    @abstractmethod
    async def connect_tcp_tls(
        self,
        remote_address: AddressType,
        *,
        server_name: str,
        tls_config: ClientTLSConfig,
        alpn_protocols: Sequence[str],
    ) -> trio.SSLStream[trio.SocketStream]:
        """Open a TCP connection and shake hands with TLS.

        :param server_name: the name sent in SNI and verified in the certificate
        :raises OSError: if no address accepted the connection
        :raises trio.BrokenResourceError: if the TLS handshake failed
        """


class UDPClientNetworking(metaclass=ABCMeta):
    """Opens UDP datagram streams (for QUIC)."""

    @abstractmethod
    async def connect_udp(self, remote_address: AddressType) -> DatagramStream:
        """Open a UDP socket for talking to *remote_address*.

        :param remote_address: an IP address and port (a name resolves to its first address)
        """


class ClientNetworking(TCPClientNetworking, UDPClientNetworking):
    """Opens TCP and UDP connections.

    Extends :class:`TCPClientNetworking` and :class:`UDPClientNetworking`.
    """

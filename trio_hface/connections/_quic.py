"""Listeners and openers of HTTP over QUIC (HTTP/3), and a listener of listeners."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, NoReturn

import trio

from .._models import ClientTLSConfig, ServerTLSConfig
from .._typing import AddressType
from ..errors import ConnectError
from ..events import ConnectionTerminated
from ..networking import (
    DatagramStream,
    QUICServerNetworking,
    QUICStream,
    QUICStreamListener,
    SystemNetworking,
    UDPClientNetworking,
    resolve_udp,
)
from ..protocols import HTTPOverQUICClientFactory, HTTPOverQUICProtocol, HTTPOverQUICServerFactory
from ._connections import CLOSE_TIMEOUT, HTTPConnection
from ._limit import ConnectionLimit, ConnectionSlot
from ._listener import AcceptingListener, Handler, HTTPListener, _AcceptGate
from ._quic_connection import HTTPOverQUICConnection
from ._tcp import DEFAULT_HANDSHAKE_TIMEOUT, HTTPOpener

__all__ = ["HTTPOverQUICListener", "HTTPOverQUICOpener", "HTTPMultiListener"]

log = logging.getLogger(__name__)

#: Seconds between attempts on successive addresses of a host, as in
#: :func:`trio.open_tcp_stream` (RFC 8305 recommends 250 ms).
HAPPY_EYEBALLS_DELAY = 0.25


class HTTPOverQUICListener(AcceptingListener[QUICStream]):
    """Accepts HTTP/3 connections over QUIC.

    Create instances with :meth:`create`.

    Implements :class:`HTTPListener`.
    """

    def __init__(
        self,
        http_factory: HTTPOverQUICServerFactory,
        listeners: Sequence[QUICStreamListener],
        *,
        tls_config: ServerTLSConfig,
        connection_limit: ConnectionLimit | None = None,
    ) -> None:
        super().__init__(listeners, connection_limit)
        self._http_factory = http_factory
        self._tls_config = tls_config
        self._quic_listeners = listeners
        self._serving = False
        if connection_limit is not None:
            for listener in self._quic_listeners:
                if not listener.set_admission(self._admits):
                    log.warning(
                        "%r has no admission control: the connection limit cannot hold QUIC back", listener
                    )

    def _admits(self, address: AddressType) -> bool:
        limit = self._limit
        if limit is None:
            return True
        if not limit.admits_address(address[0]):
            return False
        if limit.full:
            # Ask the connection idle longest to go; the client retransmits
            # its Initial packet (after about 0.3 s) and finds its place.
            limit.make_room()
            return False
        return True

    async def _accept(
        self, listener: trio.abc.Listener[QUICStream], gate: _AcceptGate
    ) -> tuple[QUICStream, trio.CancelScope, ConnectionSlot | None]:
        # The accept loop also routes the datagrams of the running connections,
        # so it never waits for room: the QUIC listener refuses new connections
        # while the limit is full (see _admits).
        stream = await self._accept_one(listener, gate)
        scope = trio.CancelScope()
        slot = None
        if self._limit is not None:
            address = getattr(stream, "remote_address", None)
            slot = self._limit.acquire_nowait(scope.cancel, address[0] if address is not None else None)
        return stream, scope, slot

    @classmethod
    async def create(
        cls,
        http_factory: HTTPOverQUICServerFactory,
        networking: QUICServerNetworking | None = None,
        *,
        local_address: AddressType,
        tls_config: ServerTLSConfig,
        retry: bool = False,
        retry_key: bytes | None = None,
        connection_limit: ConnectionLimit | None = None,
    ) -> HTTPOverQUICListener:
        """Bind UDP sockets and prepare to accept QUIC connections.

        :param http_factory: creates the protocol of each connection
        :param networking: the sockets to use (default :class:`.SystemNetworking`)
        :param local_address: ``(host, port)``; port 0 picks a free port
        :param tls_config: the certificate (QUIC always uses TLS 1.3)
        :param retry: validate client addresses with a Retry round trip before
            accepting connections (RFC 9000 section 8.1.2)
        :param retry_key: the Retry token key, shared by the listeners of
            several worker processes so that each validates the others'
            tokens (``None``: a key of this listener's own)
        :param connection_limit: a budget of connections, which other
            listeners may share; ``None`` for no limit. When it is full, a new
            connection's Initial packet is dropped and the connection idle
            longest is asked to close, so that the retransmitted Initial finds
            a place; while every connection is busy, Initial packets are dropped.
        """
        networking = networking or SystemNetworking()
        listeners = await networking.listen_quic(
            local_address,
            quic_connection_id_length=http_factory.quic_connection_id_length,
            quic_supported_versions=http_factory.quic_supported_versions,
            quic_stateless_reset_key=http_factory.quic_stateless_reset_key,
            quic_retry=retry,
            **({"quic_retry_key": retry_key} if retry_key is not None else {}),
        )
        return cls(http_factory, listeners, tls_config=tls_config, connection_limit=connection_limit)

    @property
    def addresses(self) -> list[AddressType]:
        return [lst.address for lst in self._listeners if hasattr(lst, "address")]

    async def _connect(self, stream: QUICStream) -> HTTPConnection:
        extra: dict[str, Any] = {
            "tls_version": "TLSv1.3",
            "alpn_protocol": "h3",
            "peer_certificate": None,
            "local_address": getattr(stream, "local_address", None),
            "remote_address": getattr(stream, "remote_address", None),
        }
        protocol = self._http_factory(tls_config=self._tls_config)
        if stream.address_validation is not None:
            protocol.address_validated(*stream.address_validation)
        return HTTPOverQUICConnection(protocol, stream, extra)

    async def aclose(self) -> None:
        """Stop accepting new connections; those accepted go on.

        The UDP sockets, which the running connections share, stay open until
        :meth:`serve` ends, or close at once if it does not run.
        """
        if self._closed:
            return
        self._closed = True
        for listener in self._quic_listeners:
            if not (self._serving and listener.stop_accepting()):
                await trio.aclose_forcefully(listener)

    async def _serve_ended(self) -> None:
        self._serving = False
        for listener in self._listeners:
            await trio.aclose_forcefully(listener)

    async def serve(
        self,
        handler: Handler,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[AddressType]] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        self._serving = True
        await super().serve(handler, handler_nursery=handler_nursery, task_status=task_status)


class HTTPOverQUICOpener(HTTPOpener):
    """Opens HTTP/3 connections.

    The host's addresses are tried the way :func:`trio.open_tcp_stream` tries
    them: the first at once, the next 0.25 seconds later (RFC 8305's delay)
    if that attempt has not failed yet, and so on; the first QUIC
    handshake to complete wins. The returned connection has shaken hands;
    use it in ``async with``.

    Implements :class:`HTTPOpener`.

    :param http_factory: creates the protocol of each connection
    :param networking: the sockets to use (default :class:`.SystemNetworking`)
    :param tls_config: TLS settings (certificate verification is on by default)
    :param handshake_timeout: seconds the QUIC handshake may take
    """

    def __init__(
        self,
        http_factory: HTTPOverQUICClientFactory,
        networking: UDPClientNetworking | None = None,
        *,
        tls_config: ClientTLSConfig | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self._http_factory = http_factory
        self._networking = networking or SystemNetworking()
        self._tls_config = tls_config or ClientTLSConfig()
        self._handshake_timeout = handshake_timeout

    async def __call__(
        self,
        remote_address: AddressType,
        *,
        tls: bool = True,
        server_name: str | None = None,
    ) -> HTTPConnection:
        if not tls:
            raise ValueError("HTTP/3 always uses TLS; tls=False is not possible")
        server_name = server_name or remote_address[0]
        try:
            addresses = await resolve_udp(remote_address)
        except OSError as exc:
            raise ConnectError(f"cannot resolve {remote_address[0]}: {exc}") from exc
        return await self._connect(addresses, server_name)

    async def _attempt(self, address: AddressType, server_name: str) -> HTTPOverQUICConnection:
        """Shake hands with one address; return the connection, not yet entered."""
        stream = await self._networking.connect_udp(address)
        try:
            protocol = self._http_factory(
                remote_address=address, server_name=server_name, tls_config=self._tls_config
            )
            with trio.move_on_after(self._handshake_timeout) as scope:
                await _handshake(protocol, stream)
            if scope.cancelled_caught:
                raise ConnectError(
                    f"no QUIC handshake with {address[0]}:{address[1]} in {self._handshake_timeout} s"
                ) from trio.TooSlowError()
        except ConnectionRefusedError as exc:
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await stream.aclose()
            raise ConnectError(f"nobody listens at UDP port {address[1]} of {address[0]}") from exc
        except BaseException:
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await stream.aclose()
            raise
        extra: dict[str, Any] = {
            "tls_version": "TLSv1.3",
            "alpn_protocol": "h3",
            "peer_certificate": None,
            "local_address": getattr(stream, "local_address", None),
            "remote_address": address,
        }
        return HTTPOverQUICConnection(protocol, stream, extra)

    async def _connect(self, addresses: list[AddressType], server_name: str) -> HTTPOverQUICConnection:
        winner: HTTPOverQUICConnection | None = None
        errors: list[BaseException] = []

        async with trio.open_nursery() as nursery:

            async def attempt(address: AddressType, failed: trio.Event) -> None:
                nonlocal winner
                try:
                    connection = await self._attempt(address, server_name)
                except (ConnectError, OSError) as exc:
                    errors.append(exc)
                    failed.set()
                    return
                if winner is None:
                    winner = connection
                    nursery.cancel_scope.cancel()
                else:  # a slower attempt also succeeded: drop it
                    await connection._close_transport()

            for address in addresses:
                failed = trio.Event()
                nursery.start_soon(attempt, address, failed)
                with trio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await failed.wait()
        if winner is None:
            detail = "; ".join(str(e) for e in errors) or "no address"
            raise ConnectError(f"cannot open an HTTP/3 connection to {server_name}: {detail}") from (
                errors[0] if errors else None
            )
        return winner


async def _handshake(protocol: HTTPOverQUICProtocol, stream: DatagramStream) -> None:
    """Drive a client protocol until its QUIC handshake is done.

    :raises ConnectError: if the connection ended instead (for example a bad certificate)
    """
    while True:
        protocol.clock(trio.current_time())
        for datagram in protocol.datagrams_to_send():
            await stream.send(datagram)
        if protocol.handshake_completed:
            return
        if protocol.has_expired():
            detail = "closed"
            while (event := protocol.next_event()) is not None:
                if isinstance(event, ConnectionTerminated):
                    detail = event.message or f"error {event.error_code:#x}"
            raise ConnectError(f"QUIC handshake failed: {detail}")
        timer = protocol.get_timer()
        with trio.move_on_at(math.inf if timer is None else timer):
            datagram = await stream.receive()
            protocol.clock(trio.current_time())
            protocol.datagram_received(datagram)


class HTTPMultiListener(HTTPListener):
    """Serves several listeners as one (for example HTTP/1.1 + HTTP/2 on TCP and HTTP/3 on QUIC).

    Implements :class:`HTTPListener`.

    :param listeners: the listeners to serve together
    """

    def __init__(self, listeners: Sequence[HTTPListener]) -> None:
        self._listeners = list(listeners)

    @property
    def addresses(self) -> list[AddressType]:
        return [address for listener in self._listeners for address in listener.addresses]

    async def serve(
        self,
        handler: Handler,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[AddressType]] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        async with trio.open_nursery() as nursery:
            addresses: list[AddressType] = []
            for listener in self._listeners:
                addresses += await nursery.start(
                    lambda task_status, lst=listener: lst.serve(
                        handler, handler_nursery=handler_nursery, task_status=task_status
                    )
                )
            task_status.started(addresses)
        raise AssertionError("listeners do not return")  # pragma: no cover

    async def aclose(self) -> None:
        for listener in self._listeners:
            await listener.aclose()

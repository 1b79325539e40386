"""Listeners and openers of HTTP over TCP (HTTP/1.1 and HTTP/2, with or without TLS)."""

from __future__ import annotations

import logging
import math
import socket
import ssl
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Any

import trio

from .._models import ClientTLSConfig, ServerTLSConfig
from .._typing import AddressType
from ..errors import ALPNError, ConnectError
from ..networking import SystemNetworking, TCPClientNetworking, TCPServerNetworking
from ..protocols import HTTPOverTCPFactory
from ._connections import HTTPConnection
from ._limit import ConnectionLimit
from ._listener import ACCEPT_TASKS, AcceptingListener, Handler, HTTPListener
from ._tcp_connection import LINGERING_CLOSE, HTTPOverTCPConnection

__all__ = ["HTTPListener", "HTTPOverTCPListener", "HTTPOpener", "HTTPOverTCPOpener", "Handler"]

log = logging.getLogger(__name__)

#: Seconds a TLS handshake may take before the connection is dropped.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

#: Seconds without traffic after which a server closes a connection
#: (the order of common servers' keep-alive timeouts).
DEFAULT_IDLE_TIMEOUT = 60.0


def _address(sockname: Any) -> AddressType:
    return (str(sockname[0]), int(sockname[1]))


def _stream_attributes(stream: trio.abc.Stream) -> dict[str, Any]:
    """Addresses and TLS facts of a (possibly TLS-wrapped) socket stream."""
    extra: dict[str, Any] = {
        "tls_version": None,
        "alpn_protocol": None,
        "peer_certificate": None,
        "local_address": None,
        "remote_address": None,
    }
    inner: Any = stream
    if isinstance(stream, trio.SSLStream):
        extra["tls_version"] = stream.version()
        extra["alpn_protocol"] = stream.selected_alpn_protocol()
        extra["peer_certificate"] = stream.getpeercert()
        inner = stream.transport_stream
    if isinstance(inner, trio.SocketStream):
        extra["local_address"] = _address(inner.socket.getsockname())
        extra["remote_address"] = _address(inner.socket.getpeername())
    return extra


class HTTPOverTCPListener(AcceptingListener[trio.abc.Stream]):
    """Accepts HTTP/1.1 and HTTP/2 connections over TCP, with or without TLS.

    Create instances with :meth:`create`. With TLS, the ALPN protocol the
    client chose picks the protocol from the factory (see :class:`.ALPNHTTPFactory`).
    Without TLS, a connection is set up (and the handler called) once its
    first bytes arrive, as with Linux's ``TCP_DEFER_ACCEPT``: until then it
    holds its place in the connection limit, idle, and is closed after
    *idle_timeout*, or at once if the peer closes it first.

    Implements :class:`HTTPListener`.
    """

    _accept_tasks = ACCEPT_TASKS

    def __init__(
        self,
        http_factory: HTTPOverTCPFactory,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        connection_limit: ConnectionLimit | None = None,
    ) -> None:
        super().__init__(listeners, connection_limit)
        self._http_factory = http_factory
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout

    @classmethod
    async def create(
        cls,
        http_factory: HTTPOverTCPFactory,
        networking: TCPServerNetworking | None = None,
        *,
        local_address: AddressType,
        tls_config: ServerTLSConfig | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        connection_limit: ConnectionLimit | None = None,
    ) -> HTTPOverTCPListener:
        """Bind and listen.

        :param http_factory: creates the protocol of each connection
        :param networking: the sockets to use (default :class:`.SystemNetworking`)
        :param local_address: ``(host, port)``; port 0 picks a free port
        :param tls_config: the certificate for TLS, or ``None`` for cleartext
        :param handshake_timeout: seconds a TLS handshake may take
        :param idle_timeout: seconds without traffic after which a connection
            is closed, or ``None`` for never
        :param connection_limit: a budget of connections, which other
            listeners may share; ``None`` for no limit
        """
        networking = networking or SystemNetworking()
        listeners: Sequence[trio.abc.Listener[Any]]
        if tls_config is None:
            listeners = await networking.listen_tcp(local_address)
        else:
            listeners = await networking.listen_tcp_tls(
                local_address, tls_config=tls_config, alpn_protocols=http_factory.alpn_protocols
            )
        return cls(
            http_factory,
            listeners,
            handshake_timeout=handshake_timeout,
            idle_timeout=idle_timeout,
            connection_limit=connection_limit,
        )

    @property
    def addresses(self) -> list[AddressType]:
        result = []
        for listener in self._listeners:
            inner: Any = listener.transport_listener if isinstance(listener, trio.SSLListener) else listener
            if isinstance(inner, trio.SocketListener):
                result.append(_address(inner.socket.getsockname()))
        return result

    async def _connect(self, stream: trio.abc.Stream) -> HTTPConnection:
        if isinstance(stream, trio.SSLStream):
            with trio.fail_after(self._handshake_timeout):
                await stream.do_handshake()
        elif isinstance(stream, trio.SocketStream):
            # Set the connection up once its first bytes arrive (what
            # TCP_DEFER_ACCEPT does in the kernel): a peer that connects and
            # sends nothing costs a waiting task, not a connection, so a
            # full server evicts such squatters several times faster.
            with trio.fail_after(math.inf if self._idle_timeout is None else self._idle_timeout):
                first = await stream.socket.recv(1, socket.MSG_PEEK)
            if not first:
                raise trio.BrokenResourceError("the peer closed the connection before sending anything")
        extra = _stream_attributes(stream)
        protocol = self._http_factory(tls_version=extra["tls_version"], alpn_protocol=extra["alpn_protocol"])
        return HTTPOverTCPConnection(
            protocol, stream, extra, idle_timeout=self._idle_timeout, lingering_close=LINGERING_CLOSE
        )


class HTTPOpener(metaclass=ABCMeta):
    """Opens client HTTP connections."""

    @abstractmethod
    async def __call__(
        self,
        remote_address: AddressType,
        *,
        tls: bool = False,
        server_name: str | None = None,
    ) -> HTTPConnection:
        """Open a connection; use it in ``async with``.

        :param remote_address: the server's ``(host, port)``
        :param tls: whether to use TLS
        :param server_name: the name for SNI and certificate checks (default: the host)
        :raises ConnectError: if no connection could be opened
        """


class HTTPOverTCPOpener(HTTPOpener):
    """Opens HTTP/1.1 or HTTP/2 connections over TCP.

    With TLS and an :class:`.ALPNHTTPFactory`, the version is the one ALPN chose.

    Implements :class:`HTTPOpener`.

    :param http_factory: creates the protocol of each connection
    :param networking: the sockets to use (default :class:`.SystemNetworking`)
    :param tls_config: TLS settings (certificate verification is on by default)
    :param idle_timeout: seconds without traffic after which a connection is
        closed, or ``None`` (the default) for never
    """

    def __init__(
        self,
        http_factory: HTTPOverTCPFactory,
        networking: TCPClientNetworking | None = None,
        *,
        tls_config: ClientTLSConfig | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self._http_factory = http_factory
        self._networking = networking or SystemNetworking()
        self._tls_config = tls_config or ClientTLSConfig()
        self._idle_timeout = idle_timeout

    async def __call__(
        self,
        remote_address: AddressType,
        *,
        tls: bool = False,
        server_name: str | None = None,
    ) -> HTTPConnection:
        stream: trio.abc.Stream
        try:
            if tls:
                stream = await self._networking.connect_tcp_tls(
                    remote_address,
                    server_name=server_name or remote_address[0],
                    tls_config=self._tls_config,
                    alpn_protocols=self._http_factory.alpn_protocols,
                )
            else:
                stream = await self._networking.connect_tcp(remote_address)
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            if isinstance(exc, trio.BrokenResourceError):
                detail = f"TLS handshake failed ({exc.__cause__ or 'the peer closed the connection'})"
            else:
                detail = str(exc) or getattr(exc, "strerror", None) or type(exc).__name__
            raise ConnectError(
                f"cannot connect to {remote_address[0]}:{remote_address[1]}: {detail}"
            ) from exc
        extra = _stream_attributes(stream)
        try:
            protocol = self._http_factory(
                tls_version=extra["tls_version"], alpn_protocol=extra["alpn_protocol"]
            )
        except ALPNError as exc:
            await trio.aclose_forcefully(stream)
            raise ALPNError(f"cannot use {remote_address[0]}:{remote_address[1]}: {exc}") from exc
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return HTTPOverTCPConnection(protocol, stream, extra, idle_timeout=self._idle_timeout)

"""Listeners and openers of HTTP over TCP (HTTP/1.1 and HTTP/2, with or without TLS)."""

from __future__ import annotations

import errno
import logging
import ssl
from abc import ABCMeta, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import trio

from .._models import ClientTLSConfig, ServerTLSConfig
from .._typing import AddressType
from ..errors import ConnectError
from ..networking import SystemNetworking, TCPClientNetworking, TCPServerNetworking
from ..protocols import HTTPOverTCPFactory
from ._connections import HTTPConnection, HTTPOverTCPConnection

__all__ = ["HTTPListener", "HTTPOverTCPListener", "HTTPOpener", "HTTPOverTCPOpener", "Handler"]

log = logging.getLogger(__name__)

#: Handler of one accepted connection.
Handler = Callable[[HTTPConnection], Awaitable[object]]

#: Seconds a TLS handshake may take before the connection is dropped.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

#: Seconds without traffic after which a server closes a connection
#: (the order of common servers' keep-alive timeouts).
DEFAULT_IDLE_TIMEOUT = 60.0

# Errors from accept() that mean "out of resources, try again later"
# (the same set trio.serve_listeners sleeps on).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_SLEEP = 0.1


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
        """Stop accepting. Idempotent. Running connections are not touched."""

    async def __aenter__(self) -> HTTPListener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class HTTPOverTCPListener(HTTPListener):
    """Accepts HTTP/1.1 and HTTP/2 connections over TCP, with or without TLS.

    Create instances with :meth:`create`. With TLS, the ALPN protocol the
    client chose picks the protocol from the factory (see :class:`.ALPNHTTPFactory`).

    Implements :class:`HTTPListener`.
    """

    def __init__(
        self,
        http_factory: HTTPOverTCPFactory,
        listeners: Sequence[trio.abc.Listener[Any]],
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self._http_factory = http_factory
        self._listeners = list(listeners)
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._closed = False

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
    ) -> HTTPOverTCPListener:
        """Bind and listen.

        :param http_factory: creates the protocol of each connection
        :param networking: the sockets to use (default :class:`.SystemNetworking`)
        :param local_address: ``(host, port)``; port 0 picks a free port
        :param tls_config: the certificate for TLS, or ``None`` for cleartext
        :param handshake_timeout: seconds a TLS handshake may take
        :param idle_timeout: seconds without traffic after which a connection
            is closed, or ``None`` for never
        """
        networking = networking or SystemNetworking()
        listeners: Sequence[trio.abc.Listener[Any]]
        if tls_config is None:
            listeners = await networking.listen_tcp(local_address)
        else:
            listeners = await networking.listen_tcp_tls(
                local_address, tls_config=tls_config, alpn_protocols=http_factory.alpn_protocols
            )
        return cls(http_factory, listeners, handshake_timeout=handshake_timeout, idle_timeout=idle_timeout)

    @property
    def addresses(self) -> list[AddressType]:
        result = []
        for listener in self._listeners:
            inner: Any = listener.transport_listener if isinstance(listener, trio.SSLListener) else listener
            if isinstance(inner, trio.SocketListener):
                result.append(_address(inner.socket.getsockname()))
        return result

    async def serve(
        self,
        handler: Handler,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[list[AddressType]] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        async with trio.open_nursery() as nursery:
            target = handler_nursery or nursery
            for listener in self._listeners:
                nursery.start_soon(self._accept_loop, listener, handler, target)
            task_status.started(self.addresses)
        raise AssertionError("accept loops do not return")  # pragma: no cover

    async def _accept_loop(
        self, listener: trio.abc.Listener[Any], handler: Handler, nursery: trio.Nursery
    ) -> NoReturn:
        while True:
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                if not self._closed:
                    raise
                # Closed by aclose(): accept no more; running connections go on.
                await trio.sleep_forever()
            except OSError as exc:
                if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                    log.error("accept failed (%s); sleeping %.1f s", exc, _ACCEPT_SLEEP)
                    await trio.sleep(_ACCEPT_SLEEP)
                    continue
                raise
            nursery.start_soon(self._handle, stream, handler)

    async def _handle(self, stream: trio.abc.Stream, handler: Handler) -> None:
        try:
            if isinstance(stream, trio.SSLStream):
                with trio.fail_after(self._handshake_timeout):
                    await stream.do_handshake()
            extra = _stream_attributes(stream)
            protocol = self._http_factory(
                tls_version=extra["tls_version"], alpn_protocol=extra["alpn_protocol"]
            )
            connection = HTTPOverTCPConnection(protocol, stream, extra, idle_timeout=self._idle_timeout)
        except (trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            log.debug("connection dropped before HTTP: %r", exc)
            await trio.aclose_forcefully(stream)
            return
        except Exception:
            log.exception("cannot set up a connection")
            await trio.aclose_forcefully(stream)
            return
        try:
            async with connection:
                await handler(connection)
        except Exception:
            log.exception("handler failed on connection from %s", extra["remote_address"])
        finally:
            await trio.aclose_forcefully(stream)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            await trio.aclose_forcefully(listener)


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
            raise ConnectError(f"cannot connect to {remote_address[0]}:{remote_address[1]}: {exc}") from exc
        extra = _stream_attributes(stream)
        protocol = self._http_factory(tls_version=extra["tls_version"], alpn_protocol=extra["alpn_protocol"])
        return HTTPOverTCPConnection(protocol, stream, extra, idle_timeout=self._idle_timeout)

"""ServerConfig: the settings that the ASGI server and the proxy server share."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypedDict, TypeVar, overload

from .._models import ServerTLSConfig
from ..protocols import HTTPOverQUICServerFactory, HTTPOverTCPFactory
from ._models import ServerProtocol

__all__ = ["DEFAULT_MAX_CONNECTIONS", "ConfigAttribute", "ServerConfig", "ServerSettings"]

#: Connections a server serves at once by default (under the usual limit of
#: 1024 open files per process, which leaves room for the application's own).
DEFAULT_MAX_CONNECTIONS = 768


@dataclass(frozen=True)
class ServerConfig:
    """The settings that :class:`ASGIServer` and :class:`ProxyServer` share.

    Build one and hand it to any number of servers as ``config=``. Each
    field is also a keyword argument of the servers (see
    :class:`ServerSettings`), which overrides the field:
    ``ASGIServer(app, config=config, idle_timeout=5)`` is
    ``ASGIServer(app, config=dataclasses.replace(config, idle_timeout=5))``.
    A server's ``config`` attribute is the configuration in effect, with its
    keyword arguments applied and each ``None`` that stands for "the
    server's default" filled in; its fields are attributes of the server too
    (``server.graceful_timeout``).

    :raises ValueError: for a negative or NaN timeout, or a connection limit below 1
    """

    #: Certificate and key for ``https`` endpoints.
    tls_config: ServerTLSConfig | None = None
    #: Which HTTP versions to offer.
    protocol: ServerProtocol = ServerProtocol.ALL
    #: The HTTP/1.1 implementation (``None``: :class:`.HTTP1ServerFactory`).
    http1_factory: HTTPOverTCPFactory | None = None
    #: The HTTP/2 implementation (``None``: :class:`.HTTP2ServerFactory`).
    http2_factory: HTTPOverTCPFactory | None = None
    #: The HTTP/3 implementation (``None``: :class:`.HTTP3ServerFactory`).
    http3_factory: HTTPOverQUICServerFactory | None = None
    #: Advertise HTTP/3 with ``Alt-Svc`` on TCP responses when HTTP/3 is
    #: served. :class:`ProxyServer` ignores it: a proxy never sends ``alt-svc``.
    alt_svc: bool = True
    #: Seconds requests (or tunnels) in flight may take to finish once
    #: shutdown starts.
    graceful_timeout: float = 10.0
    #: The keep-alive timeout: seconds a connection of any HTTP version may
    #: go without a request (or tunnel) in progress, counted from its start or
    #: the end of its last request (input that is not a complete request head
    #: does not reset it); also the longest silence on TCP. ``None``: the
    #: server's default, 60 for :class:`ASGIServer` and 300 for :class:`ProxyServer`.
    idle_timeout: float | None = None
    #: Seconds a TLS handshake may take.
    handshake_timeout: float = 10.0
    #: Connections served at once, over every endpoint and HTTP version. When
    #: they are all taken, a new connection evicts the one idle longest (no
    #: request or tunnel in flight); only while every connection is busy do
    #: more wait (TCP) or get dropped (QUIC) until one ends. ``None`` for no limit.
    max_connections: int | None = DEFAULT_MAX_CONNECTIONS
    #: Connections one client host may have at once; more are closed at once
    #: (TCP) or dropped (QUIC). ``None`` for no such limit.
    max_connections_per_address: int | None = None
    #: Validate the addresses of HTTP/3 clients with a Retry round trip
    #: before accepting their connections (RFC 9000 section 8.1.2): a round
    #: trip more per connection, and no work for spoofed Initial packets.
    #: Worker processes share the token key, so any of them validates a token.
    quic_retry: bool = False

    def __post_init__(self) -> None:
        timeouts = {
            "graceful_timeout": self.graceful_timeout,
            "idle_timeout": self.idle_timeout,
            "handshake_timeout": self.handshake_timeout,
        }
        for name, seconds in timeouts.items():
            if seconds is not None and (math.isnan(seconds) or seconds < 0):
                raise ValueError(f"{name} must be a number of seconds, at least 0, not {seconds!r}")
        limits = {
            "max_connections": self.max_connections,
            "max_connections_per_address": self.max_connections_per_address,
        }
        for name, count in limits.items():
            if count is not None and count < 1:
                raise ValueError(f"{name} must be at least 1, or None for no limit, not {count!r}")


class ServerSettings(TypedDict, total=False):
    """The fields of :class:`ServerConfig` as keyword arguments of a server.

    Each one is optional; one that is given overrides the field of the
    server's ``config``.
    """

    tls_config: ServerTLSConfig | None
    protocol: ServerProtocol
    http1_factory: HTTPOverTCPFactory | None
    http2_factory: HTTPOverTCPFactory | None
    http3_factory: HTTPOverQUICServerFactory | None
    alt_svc: bool
    graceful_timeout: float
    idle_timeout: float | None
    handshake_timeout: float
    max_connections: int | None
    max_connections_per_address: int | None
    quic_retry: bool


class _Configured(Protocol):
    config: ServerConfig

    def _configure(self, config: ServerConfig) -> ServerConfig: ...


_T = TypeVar("_T")


class ConfigAttribute(Generic[_T]):
    """A server attribute that reads and writes a field of its ``config``.

    Keeps ``server.graceful_timeout`` (and its assignment) working now that
    the value lives in a :class:`ServerConfig`; an assignment is validated
    as the field of a new configuration.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type) -> ConfigAttribute[_T]: ...

    @overload
    def __get__(self, server: _Configured, owner: type) -> _T: ...

    def __get__(self, server: _Configured | None, owner: type) -> ConfigAttribute[_T] | _T:
        if server is None:
            return self
        value: _T = getattr(server.config, self._name)
        return value

    def __set__(self, server: _Configured, value: _T) -> None:
        changes: dict[str, Any] = {self._name: value}
        server.config = server._configure(dataclasses.replace(server.config, **changes))

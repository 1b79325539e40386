"""Which transport and which address a request's connection uses: one policy for every decision.

The route follows from three things only: the client's protocol setting, the
proxy, and the Alt-Svc cache. :meth:`RoutePolicy.route` is synchronous and
pure (the time is handed in), so the pool can decide before any I/O and the
tests can check every case without a network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._altsvc import AltSvcCache
from ._models import ClientProtocol, Origin

__all__ = ["Route", "RoutePolicy", "Transport"]


class Transport(enum.Enum):
    """How a connection is carried."""

    #: TCP (TLS for https): HTTP/1.1, HTTP/2 by ALPN.
    TCP = "tcp"
    #: QUIC: HTTP/3.
    QUIC = "quic"


@dataclass(frozen=True)
class Route:
    """Where and how to open a connection to an origin."""

    #: TCP or QUIC.
    transport: Transport
    #: The host to connect to (an Alt-Svc alternative's for HTTP/3 by advertisement).
    host: str
    #: The port to connect to.
    port: int
    #: The proxy whose CONNECT tunnel carries the connection, if any (TCP only).
    proxy: Origin | None = None
    #: Whether the route is an advertised alternative: if it fails, the
    #: request falls back to TCP to the origin itself.
    alternative: bool = False

    @property
    def quic(self) -> bool:
        """Whether the connection is HTTP/3 over QUIC."""
        return self.transport is Transport.QUIC


class RoutePolicy:
    """Answers "which transport, which address" for each origin.

    :param protocol: the client's protocol setting
    :param proxy: the proxy every TCP connection is tunnelled through, if any
    :param alt_svc: what origins advertised
    """

    def __init__(self, protocol: ClientProtocol, proxy: Origin | None, alt_svc: AltSvcCache) -> None:
        self.protocol = protocol
        self.proxy = proxy
        self.alt_svc = alt_svc

    def route(self, origin: Origin, now: float) -> Route:
        """The route of a new connection to *origin* at time *now*."""
        if self.proxy is not None:
            return Route(Transport.TCP, origin.host, origin.port, proxy=self.proxy)  # tunnels carry TCP
        if self.protocol is ClientProtocol.HTTP3:
            return Route(Transport.QUIC, origin.host, origin.port)
        if self.protocol is ClientProtocol.ALL and origin.tls:
            alternative = self.alt_svc.get(origin, now)
            if alternative is not None:
                return Route(Transport.QUIC, alternative.host, alternative.port, alternative=True)
        return Route(Transport.TCP, origin.host, origin.port)

    def learns_alt_svc(self, origin: Origin, http_version: str) -> bool:
        """Whether a response from *origin* over *http_version* may teach an alternative."""
        return (
            self.protocol is ClientProtocol.ALL and self.proxy is None and origin.tls and http_version != "3"
        )

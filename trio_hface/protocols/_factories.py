"""Factories: the way to create protocol objects of any implementation.

A protocol's constructor is not part of the interface; each implementation
takes its own options. Factories hold those options and create protocol
objects from what a connection learns at run time (the TLS version and the
negotiated ALPN protocol for TCP; the address, server name and TLS
configuration for QUIC), so servers and clients can switch implementations.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

from .._models import ClientTLSConfig, ServerTLSConfig
from .._typing import AddressType
from ..errors import ALPNError
from ._cids import ConnectionIDRouting
from ._protocols import HTTPOverQUICProtocol, HTTPOverTCPProtocol

__all__ = [
    "HTTPOverTCPFactory",
    "ALPNHTTPFactory",
    "HTTPOverQUICClientFactory",
    "HTTPOverQUICServerFactory",
]


class HTTPOverTCPFactory(metaclass=ABCMeta):
    """Creates :class:`.HTTPOverTCPProtocol` objects (HTTP/1 or HTTP/2)."""

    @property
    @abstractmethod
    def alpn_protocols(self) -> Sequence[str]:
        """ALPN protocol IDs to offer in the TLS handshake, most preferred first."""

    @abstractmethod
    def __call__(
        self,
        *,
        tls_version: str | None = None,
        alpn_protocol: str | None = None,
    ) -> HTTPOverTCPProtocol:
        """Create a protocol for a new connection.

        :param tls_version: the TLS version of the connection (such as
            ``"TLSv1.3"``), or ``None`` for cleartext
        :param alpn_protocol: the ALPN protocol negotiated in the TLS
            handshake, or ``None``
        :returns: a fresh protocol object
        """


class ALPNHTTPFactory(HTTPOverTCPFactory):
    """Chooses between other factories by the negotiated ALPN protocol.

    The first factory that offers an ALPN ID wins it. A connection that
    negotiated no ALPN protocol (cleartext, or a peer without ALPN) gets the
    factory of *default_alpn_protocol*.

    Any set of factories is accepted, HTTP/2 alone included (an HTTP/2-only
    TLS client, as in hface). The default matters only when nothing was
    negotiated: if no factory offers it then, creating the protocol raises
    :class:`~trio_hface.errors.ALPNError` and that connection is not used.

    Implements :class:`.HTTPOverTCPFactory`.

    :param factories: the factories to choose from, most preferred first
    :param default_alpn_protocol: the ALPN ID to assume when none was negotiated
    """

    def __init__(
        self,
        factories: Sequence[HTTPOverTCPFactory],
        default_alpn_protocol: str = "http/1.1",
    ) -> None:
        self._factories: dict[str, HTTPOverTCPFactory] = {}
        for factory in factories:
            for alpn in factory.alpn_protocols:
                self._factories.setdefault(alpn, factory)
        self._default_alpn_protocol = default_alpn_protocol

    @property
    def alpn_protocols(self) -> Sequence[str]:
        return list(self._factories)

    def __call__(
        self,
        *,
        tls_version: str | None = None,
        alpn_protocol: str | None = None,
    ) -> HTTPOverTCPProtocol:
        """Create the protocol of the factory that offers *alpn_protocol*.

        :raises ALPNError: if ALPN negotiated nothing and no factory offers
            the default protocol, or if no factory offers *alpn_protocol*
        """
        if alpn_protocol is None:
            factory = self._factories.get(self._default_alpn_protocol)
            if factory is None:
                raise ALPNError(
                    f"ALPN negotiated no protocol, and {self._default_alpn_protocol} is not offered "
                    f"(offered: {', '.join(self._factories) or 'nothing'})"
                )
            alpn_protocol = self._default_alpn_protocol
        else:
            factory = self._factories.get(alpn_protocol)
            if factory is None:
                raise ALPNError(f"no factory for the ALPN protocol {alpn_protocol!r}")
        return factory(tls_version=tls_version, alpn_protocol=alpn_protocol)


class HTTPOverQUICClientFactory(metaclass=ABCMeta):
    """Creates :class:`.HTTPOverQUICProtocol` objects for clients (HTTP/3)."""

    @property
    @abstractmethod
    def alpn_protocols(self) -> Sequence[str]:
        """ALPN protocol IDs offered in the QUIC handshake, most preferred first."""

    @abstractmethod
    def __call__(
        self,
        *,
        remote_address: AddressType,
        server_name: str,
        tls_config: ClientTLSConfig,
    ) -> HTTPOverQUICProtocol:
        """Create a protocol for a new client connection.

        :param remote_address: the server's address (QUIC picks the
            destination of its datagrams itself)
        :param server_name: the name sent in SNI and verified in the certificate
        :param tls_config: TLS settings (the TLS handshake is part of QUIC)
        :returns: a fresh protocol object, which starts its handshake at the
            first :meth:`~.HTTPOverQUICProtocol.clock` call
        """


class HTTPOverQUICServerFactory(metaclass=ABCMeta):
    """Creates :class:`.HTTPOverQUICProtocol` objects for servers (HTTP/3).

    A server must route datagrams before a connection exists, so the factory
    also tells the connection-ID length and the QUIC versions it supports.
    """

    @property
    @abstractmethod
    def alpn_protocols(self) -> Sequence[str]:
        """ALPN protocol IDs accepted in the QUIC handshake."""

    @property
    @abstractmethod
    def quic_connection_id_length(self) -> int:
        """Length in bytes of the connection IDs that this server issues."""

    @property
    @abstractmethod
    def quic_supported_versions(self) -> Sequence[int]:
        """QUIC versions accepted in Initial packets."""

    @property
    def quic_stateless_reset_key(self) -> bytes | None:
        """The secret that connection IDs' stateless reset tokens derive from, if any.

        With it, the server can send a stateless reset for a connection it no
        longer knows (RFC 9000 section 10.3). The default is ``None``: no resets.
        """
        return None

    def for_worker(
        self, routing: ConnectionIDRouting, *, stateless_reset_key: bytes | None = None
    ) -> HTTPOverQUICServerFactory | None:
        """A copy whose connection IDs follow *routing* (name a worker process), if it can.

        Worker processes call it (see :meth:`.ASGIServer.run_workers`) so that
        every datagram of a connection reaches its worker. The default is
        ``None``: the factory cannot, and more than one worker cannot serve
        HTTP/3 with it.

        :param routing: the worker index, the number of workers, and an
            optional QUIC-LB configuration
        :param stateless_reset_key: a key that every worker shares, or ``None``
            to keep this factory's
        """
        return None

    @abstractmethod
    def __call__(
        self,
        *,
        tls_config: ServerTLSConfig,
    ) -> HTTPOverQUICProtocol:
        """Create a protocol for a new server connection.

        :param tls_config: the certificate and key to present
        :returns: a fresh protocol object, ready for the client's first datagram
        """

"""ProxyClient: TCP and TLS connections tunnelled through an HTTP proxy of any version."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from .._models import ClientTLSConfig
from .._typing import AddressType
from ..networking import client_ssl_context
from ._client import Client, ClientSession
from ._models import ClientProtocol, Origin
from ._tunnel import TunnelStream

__all__ = ["ProxyClient", "ProxyClientSession"]


class ProxyClient:
    """Opens TCP connections through an HTTP proxy with CONNECT.

    The proxy may be spoken to over HTTP/1.1, HTTP/2 or HTTP/3; over the
    latter two, many tunnels share one connection, each its own stream::

        async with ProxyClient("https://proxy.example:8443").session() as proxy:
            stream = await proxy.connect_tcp_tls(("example.com", 443))

    :param proxy_url: the proxy, as ``http(s)://host:port``
    :param tls_config: TLS settings for the proxy (and the default for
        :meth:`ProxyClientSession.connect_tcp_tls`)
    :param protocol: the HTTP version spoken with the proxy
    :param connect_timeout: seconds to reach the proxy
    :param read_timeout: seconds to wait for each piece of data from the proxy
    """

    def __init__(
        self,
        proxy_url: str | Origin,
        *,
        tls_config: ClientTLSConfig | None = None,
        protocol: ClientProtocol = ClientProtocol.TCP,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = None,
    ) -> None:
        self.proxy_origin = Origin.parse(proxy_url) if isinstance(proxy_url, str) else proxy_url
        self.tls_config = tls_config or ClientTLSConfig()
        if protocol is ClientProtocol.ALL:
            protocol = ClientProtocol.TCP
        self._client = Client(
            tls_config=self.tls_config,
            protocol=protocol,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ProxyClientSession]:
        """Open a session; its connections to the proxy live until the ``async with`` ends."""
        async with self._client.session() as session:
            yield ProxyClientSession(self, session)


class ProxyClientSession:
    """Tunnels through one proxy; obtain it from :meth:`ProxyClient.session`."""

    def __init__(self, client: ProxyClient, session: ClientSession) -> None:
        self._client = client
        self._session = session

    async def connect_tcp(self, remote_address: AddressType) -> TunnelStream:
        """Open a TCP tunnel to *remote_address* through the proxy.

        :returns: a :class:`trio.abc.HalfCloseableStream`
        :raises ProxyError: if the proxy refused the CONNECT or could not reach the target
        :raises ConnectError: if the proxy cannot be reached
        """
        host, port = remote_address
        return await self._session.open_tunnel(self._client.proxy_origin, host, port)

    async def connect_tcp_tls(
        self,
        remote_address: AddressType,
        *,
        server_name: str | None = None,
        tls_config: ClientTLSConfig | None = None,
        alpn_protocols: Sequence[str] = (),
    ) -> trio.SSLStream[TunnelStream]:
        """Open a tunnel and shake hands with TLS over it (end to end with the target).

        :param server_name: the name for SNI and certificate checks (default: the host)
        :param tls_config: TLS settings for the target (default: the client's)
        :param alpn_protocols: ALPN protocol IDs to offer
        """
        tunnel = await self.connect_tcp(remote_address)
        context = client_ssl_context(tls_config or self._client.tls_config, alpn_protocols)
        stream = trio.SSLStream(
            tunnel, context, server_hostname=server_name or remote_address[0], https_compatible=True
        )
        try:
            await stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tunnel)
            raise
        return stream

    async def aclose(self) -> None:
        """Close the connections to the proxy (and every tunnel)."""
        await self._session.aclose()

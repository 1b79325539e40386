"""Networking on the operating system's sockets, through Trio."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .._models import ClientTLSConfig, ServerTLSConfig
from .._typing import AddressType
from ._abc import ClientNetworking, DatagramStream, QUICStreamListener, ServerNetworking
from ._quic import open_quic_listeners, open_udp_stream
from ._tls import client_ssl_context, server_ssl_context

__all__ = ["SystemNetworking"]


class SystemNetworking(ServerNetworking, ClientNetworking):
    """Networking on real sockets: :func:`trio.open_tcp_listeners`,
    :func:`trio.open_tcp_stream`, :class:`trio.SSLStream` and Trio UDP sockets
    with a QUIC connection-ID demultiplexer (:class:`.QUICListener`).

    Implements :class:`.ServerNetworking` and :class:`.ClientNetworking`.
    """

    async def listen_tcp(self, local_address: AddressType) -> Sequence[trio.SocketListener]:
        host, port = local_address
        return await trio.open_tcp_listeners(port, host=host or None)

    async def listen_tcp_tls(
        self,
        local_address: AddressType,
        *,
        tls_config: ServerTLSConfig,
        alpn_protocols: Sequence[str],
    ) -> Sequence[trio.SSLListener[trio.SocketStream]]:
        context = server_ssl_context(tls_config, alpn_protocols)
        listeners = await self.listen_tcp(local_address)
        return [trio.SSLListener(lst, context, https_compatible=True) for lst in listeners]

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
        return await open_quic_listeners(
            local_address,
            connection_id_length=quic_connection_id_length,
            supported_versions=quic_supported_versions,
            stateless_reset_key=quic_stateless_reset_key,
            retry=quic_retry,
            retry_key=quic_retry_key,
        )

    async def connect_udp(self, remote_address: AddressType) -> DatagramStream:
        return await open_udp_stream(remote_address)

    async def connect_tcp(self, remote_address: AddressType) -> trio.SocketStream:
        host, port = remote_address
        return await trio.open_tcp_stream(host, port)

    async def connect_tcp_tls(
        self,
        remote_address: AddressType,
        *,
        server_name: str,
        tls_config: ClientTLSConfig,
        alpn_protocols: Sequence[str],
    ) -> trio.SSLStream[trio.SocketStream]:
        context = client_ssl_context(tls_config, alpn_protocols)
        stream = await self.connect_tcp(remote_address)
        ssl_stream = trio.SSLStream(stream, context, server_hostname=server_name, https_compatible=True)
        try:
            await ssl_stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return ssl_stream

"""Factories of :class:`~._protocol.HTTP3ProtocolImpl` for clients and servers."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.packet import QuicProtocolVersion
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..._models import ClientTLSConfig, ServerTLSConfig
from ..._typing import AddressType
from .._cids import ConnectionIDRouting
from .._factories import HTTPOverQUICClientFactory, HTTPOverQUICServerFactory
from ._protocol import HTTP3ProtocolImpl
from ._stacks import AIOQUIC, QuicStack

__all__ = ["HTTP3ClientFactory", "HTTP3ServerFactory"]

# aioquic's default (QuicConfiguration.idle_timeout), in seconds.
DEFAULT_IDLE_TIMEOUT = 60.0
# Receive windows: 1 MiB per stream (aioquic's default), and four times that
# for the connection, so that a stream whose reader stalls (holding its
# window) leaves the other streams room to go on. This also bounds the data
# a connection may buffer.
DEFAULT_MAX_DATA = 4 * 1024 * 1024
DEFAULT_MAX_STREAM_DATA = 1024 * 1024
# RFC 9000 section 14: every QUIC path carries 1200-byte datagrams.
DEFAULT_MAX_DATAGRAM_SIZE = SMALLEST_MAX_DATAGRAM_SIZE
#: The largest datagram the stacks build correctly: aioquic (and qh3) write the
#: length of a packet, and of its STREAM and CRYPTO frames, as two-byte
#: variable-length integers, so none of them may exceed 16,383 bytes.
MAX_UDP_PAYLOAD_SIZE = 16384
#: The ceiling of path MTU discovery: as large as the stacks allow (loopback carries 64 KiB).
DEFAULT_MAX_PROBED_DATAGRAM_SIZE = MAX_UDP_PAYLOAD_SIZE
# aioquic's default local connection-ID length (QuicConfiguration.connection_id_length).
DEFAULT_CONNECTION_ID_LENGTH = 8
# RFC 9114 section 6.1: a server should allow at least 100 concurrent requests.
DEFAULT_MAX_CONCURRENT_STREAMS = 100
# QUIC v1 (RFC 9000) and v2 (RFC 9369), aioquic's default, most preferred first.
DEFAULT_SUPPORTED_VERSIONS: tuple[int, ...] = (QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2)
# RFC 9000 section 17.2: connection IDs are 0 to 20 bytes; our routing needs
# at least 8 (RFC 9000 section 7.2 asks clients for at least 8 in Initial packets).
MIN_CONNECTION_ID_LENGTH = 8
MAX_CONNECTION_ID_LENGTH = 20
# As HTTP/2's DEFAULT_MAX_HEADER_LIST_SIZE: 64 KiB of decoded fields, counted
# as RFC 9114 section 4.2.2 does (name + value + 32 per field).
DEFAULT_MAX_FIELD_SECTION_SIZE = 64 * 1024


class _QUICSettings:
    """Validated QUIC settings shared by both factories."""

    def __init__(
        self,
        *,
        idle_timeout: float,
        max_data: int,
        max_stream_data: int,
        max_datagram_size: int,
        max_probed_datagram_size: int | None,
        quic_connection_id_length: int,
        quic_supported_versions: Sequence[int],
        max_concurrent_streams: int,
        max_field_section_size: int,
    ) -> None:
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout!r}")
        if max_data < 1 or max_stream_data < 1:
            raise ValueError(
                f"flow-control windows must be positive, not {max_data!r} and {max_stream_data!r}"
            )
        if not SMALLEST_MAX_DATAGRAM_SIZE <= max_datagram_size <= MAX_UDP_PAYLOAD_SIZE:
            raise ValueError(
                f"max_datagram_size must be in {SMALLEST_MAX_DATAGRAM_SIZE}-{MAX_UDP_PAYLOAD_SIZE}, "
                f"not {max_datagram_size!r}"
            )
        if max_probed_datagram_size is not None and not (
            max_datagram_size <= max_probed_datagram_size <= MAX_UDP_PAYLOAD_SIZE
        ):
            raise ValueError(
                f"max_probed_datagram_size must be None or in {max_datagram_size}-{MAX_UDP_PAYLOAD_SIZE}, "
                f"not {max_probed_datagram_size!r}"
            )
        if not MIN_CONNECTION_ID_LENGTH <= quic_connection_id_length <= MAX_CONNECTION_ID_LENGTH:
            raise ValueError(
                f"quic_connection_id_length must be in {MIN_CONNECTION_ID_LENGTH}-"
                f"{MAX_CONNECTION_ID_LENGTH}, not {quic_connection_id_length!r}"
            )
        known = {int(v) for v in QuicProtocolVersion if v != QuicProtocolVersion.NEGOTIATION}
        versions = [int(v) for v in quic_supported_versions]
        if not versions or any(v not in known for v in versions):
            raise ValueError(f"quic_supported_versions must be among {sorted(known)!r}, not {versions!r}")
        if max_concurrent_streams < 1:
            raise ValueError(f"max_concurrent_streams must be positive, not {max_concurrent_streams!r}")
        if max_field_section_size < 1:
            raise ValueError(f"max_field_section_size must be positive, not {max_field_section_size!r}")
        self.idle_timeout = idle_timeout
        self.max_data = max_data
        self.max_stream_data = max_stream_data
        self.max_datagram_size = max_datagram_size
        self.max_probed_datagram_size = max_probed_datagram_size
        self.connection_id_length = quic_connection_id_length
        self.supported_versions = versions
        self.max_concurrent_streams = max_concurrent_streams
        self.max_field_section_size = max_field_section_size

    def configuration(self, stack: QuicStack, *, is_client: bool) -> Any:
        # No secrets log and no qlog: nothing is written anywhere.
        return stack.configuration(
            alpn_protocols=list(H3_ALPN),
            is_client=is_client,
            idle_timeout=self.idle_timeout,
            max_data=self.max_data,
            max_stream_data=self.max_stream_data,
            max_datagram_size=self.max_datagram_size,
            connection_id_length=self.connection_id_length,
            supported_versions=list(self.supported_versions),
            quic_logger=None,
            secrets_log_file=None,
        )


class HTTP3ClientFactory(HTTPOverQUICClientFactory):
    """Creates HTTP/3 client connections on aioquic (a subclass may choose another QUIC stack).

    Implements :class:`.HTTPOverQUICClientFactory`.

    :param idle_timeout: seconds without activity before the connection ends
        (the smaller of ours and the peer's applies)
    :param max_data: the connection's receive window, in bytes: how far the
        peer may send beyond what the application consumed
    :param max_stream_data: each stream's receive window, in bytes
    :param max_datagram_size: the largest UDP payload to send before path MTU
        discovery found more; the default, 1200 bytes (RFC 9000 section 14),
        crosses every path. Set it higher only for paths known to carry more
    :param max_probed_datagram_size: the largest UDP payload that path MTU
        discovery (RFC 8899, RFC 9000 section 14.3) probes for once the handshake
        is confirmed: sizes from 1452 up to this (and the peer's
        ``max_udp_payload_size``) are tried in turn with padded PINGs, and each
        one acknowledged becomes the datagram size. Larger datagrams move the
        same bytes in fewer packets, and aioquic's cost is per packet. ``None``
        turns discovery off. On the qh3 stack there is no discovery
    :param quic_connection_id_length: length of the connection IDs we issue (8-20)
    :param quic_supported_versions: QUIC versions, most preferred first
    :param max_concurrent_streams: how many request streams the peer may open at once
    :param max_field_section_size: the largest field section (headers or
        trailers) accepted, in decoded bytes counted as RFC 9114 section 4.2.2
        does, and advertised in SETTINGS_MAX_FIELD_SECTION_SIZE; a larger
        response is reset with H3_EXCESSIVE_LOAD
    """

    #: The QUIC stack the connections are made on.
    _stack: ClassVar[QuicStack] = AIOQUIC

    def __init__(
        self,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_data: int = DEFAULT_MAX_DATA,
        max_stream_data: int = DEFAULT_MAX_STREAM_DATA,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
        max_probed_datagram_size: int | None = DEFAULT_MAX_PROBED_DATAGRAM_SIZE,
        quic_connection_id_length: int = DEFAULT_CONNECTION_ID_LENGTH,
        quic_supported_versions: Sequence[int] = DEFAULT_SUPPORTED_VERSIONS,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        max_field_section_size: int = DEFAULT_MAX_FIELD_SECTION_SIZE,
    ) -> None:
        self._settings = _QUICSettings(
            idle_timeout=idle_timeout,
            max_data=max_data,
            max_stream_data=max_stream_data,
            max_datagram_size=max_datagram_size,
            max_probed_datagram_size=max_probed_datagram_size,
            quic_connection_id_length=quic_connection_id_length,
            quic_supported_versions=quic_supported_versions,
            max_concurrent_streams=max_concurrent_streams,
            max_field_section_size=max_field_section_size,
        )

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``["h3"]``."""
        return list(H3_ALPN)

    @property
    def quic_connection_id_length(self) -> int:
        """Length in bytes of the connection IDs that clients issue."""
        return self._settings.connection_id_length

    @property
    def quic_supported_versions(self) -> Sequence[int]:
        """QUIC versions offered, most preferred first."""
        return list(self._settings.supported_versions)

    def __call__(
        self,
        *,
        remote_address: AddressType,
        server_name: str,
        tls_config: ClientTLSConfig,
    ) -> HTTP3ProtocolImpl:
        """Create a client connection; its handshake starts at the first ``clock()`` call.

        :param remote_address: the server's address
        :param server_name: sent in SNI and verified in the server's certificate
        :param tls_config: CA certificates to trust, or *insecure* to verify nothing
        :returns: a fresh :class:`.HTTP3ProtocolImpl`
        :raises ValueError: if *tls_config* holds CA data that is not PEM or DER
        """
        stack = self._stack
        configuration = self._settings.configuration(stack, is_client=True)
        configuration.server_name = server_name
        if tls_config.insecure:
            configuration.verify_mode = ssl.CERT_NONE
        else:
            cadata = _ca_pem(tls_config.cadata) if tls_config.cadata is not None else None
            stack.verify(configuration, cafile=tls_config.cafile, capath=tls_config.capath, cadata=cadata)
        return HTTP3ProtocolImpl(
            configuration,
            connection_class=stack.connection_class,
            max_concurrent_streams=self._settings.max_concurrent_streams,
            max_field_section_size=self._settings.max_field_section_size,
            max_probed_datagram_size=self._settings.max_probed_datagram_size,
            enable_connect_protocol=False,
            remote_address=remote_address,
        )


class HTTP3ServerFactory(HTTPOverQUICServerFactory):
    """Creates HTTP/3 server connections on aioquic (a subclass may choose another QUIC stack).

    Implements :class:`.HTTPOverQUICServerFactory`.

    :param idle_timeout: seconds without activity before the connection ends
        (the smaller of ours and the peer's applies)
    :param max_data: the connection's receive window, in bytes: how far the
        peer may send beyond what the application consumed
    :param max_stream_data: each stream's receive window, in bytes
    :param max_datagram_size: the largest UDP payload to send before path MTU
        discovery found more; the default, 1200 bytes (RFC 9000 section 14),
        crosses every path. Set it higher only for paths known to carry more
    :param max_probed_datagram_size: the largest UDP payload that path MTU
        discovery (RFC 8899, RFC 9000 section 14.3) probes for once the handshake
        is confirmed: sizes from 1452 up to this (and the peer's
        ``max_udp_payload_size``) are tried in turn with padded PINGs, and each
        one acknowledged becomes the datagram size. Larger datagrams move the
        same bytes in fewer packets, and aioquic's cost is per packet. ``None``
        turns discovery off. On the qh3 stack there is no discovery
    :param quic_connection_id_length: length of the connection IDs we issue (8-20)
    :param quic_supported_versions: QUIC versions, most preferred first
    :param max_concurrent_streams: how many request streams the peer may open at once
    :param max_field_section_size: the largest field section (headers or
        trailers) accepted, in decoded bytes counted as RFC 9114 section 4.2.2
        does, and advertised in SETTINGS_MAX_FIELD_SECTION_SIZE; a larger
        request is answered 431, larger trailers are reset with H3_EXCESSIVE_LOAD
    :param enable_connect_protocol: whether clients may send extended CONNECT
        requests with ``:protocol`` (RFC 9220)
    :param stateless_reset_key: the secret from which stateless reset tokens
        are derived (default: random for this factory); servers that share a
        port across restarts should share it
    :param connection_id_routing: make the connection IDs name a worker (and,
        with QUIC-LB, this machine's server ID); then *quic_connection_id_length*
        is QUIC-LB's length if it has a configuration
    """

    #: The QUIC stack the connections are made on.
    _stack: ClassVar[QuicStack] = AIOQUIC

    def __init__(
        self,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_data: int = DEFAULT_MAX_DATA,
        max_stream_data: int = DEFAULT_MAX_STREAM_DATA,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
        max_probed_datagram_size: int | None = DEFAULT_MAX_PROBED_DATAGRAM_SIZE,
        quic_connection_id_length: int = DEFAULT_CONNECTION_ID_LENGTH,
        quic_supported_versions: Sequence[int] = DEFAULT_SUPPORTED_VERSIONS,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        max_field_section_size: int = DEFAULT_MAX_FIELD_SECTION_SIZE,
        enable_connect_protocol: bool = True,
        stateless_reset_key: bytes | None = None,
        connection_id_routing: ConnectionIDRouting | None = None,
    ) -> None:
        self._stateless_reset_key = stateless_reset_key or os.urandom(32)
        self._certificates: dict[ServerTLSConfig, tuple[Any, Any, Any]] = {}
        self._routing = connection_id_routing
        if connection_id_routing is not None:
            quic_connection_id_length = connection_id_routing.connection_id_length(quic_connection_id_length)
        self._settings = _QUICSettings(
            idle_timeout=idle_timeout,
            max_data=max_data,
            max_stream_data=max_stream_data,
            max_datagram_size=max_datagram_size,
            max_probed_datagram_size=max_probed_datagram_size,
            quic_connection_id_length=quic_connection_id_length,
            quic_supported_versions=quic_supported_versions,
            max_concurrent_streams=max_concurrent_streams,
            max_field_section_size=max_field_section_size,
        )
        self._enable_connect_protocol = enable_connect_protocol

    @property
    def alpn_protocols(self) -> Sequence[str]:
        """``["h3"]``."""
        return list(H3_ALPN)

    @property
    def quic_connection_id_length(self) -> int:
        """Length in bytes of the connection IDs that the server issues."""
        return self._settings.connection_id_length

    @property
    def quic_supported_versions(self) -> Sequence[int]:
        """QUIC versions accepted in Initial packets, most preferred first."""
        return list(self._settings.supported_versions)

    @property
    def quic_stateless_reset_key(self) -> bytes:
        """The secret from which the stateless reset tokens of connection IDs are derived."""
        return self._stateless_reset_key

    @property
    def quic_connection_id_routing(self) -> ConnectionIDRouting | None:
        """How the connection IDs name their worker, if they do."""
        return self._routing

    def for_worker(self, routing: ConnectionIDRouting, *, stateless_reset_key: bytes | None = None) -> Self:
        """A copy of this factory whose connection IDs follow *routing*.

        :param routing: the worker (and QUIC-LB server ID) to name
        :param stateless_reset_key: the key every worker shares (default: this factory's)
        """
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._certificates = {}
        copy._routing = routing
        copy._stateless_reset_key = stateless_reset_key or self._stateless_reset_key
        settings = _QUICSettings.__new__(_QUICSettings)
        settings.__dict__.update(self._settings.__dict__)
        settings.connection_id_length = routing.connection_id_length(settings.connection_id_length)
        copy._settings = settings
        return copy

    def __getstate__(self) -> dict[str, object]:
        # Parsed certificates do not pickle (worker processes get the factory
        # by pickle): they are parsed again where the copy serves.
        state = dict(self.__dict__)
        state["_certificates"] = {}
        return state

    def __call__(self, *, tls_config: ServerTLSConfig) -> HTTP3ProtocolImpl:
        """Create a server connection, ready for the client's first datagram.

        :param tls_config: the certificate chain and key, from files or memory
        :returns: a fresh :class:`.HTTP3ProtocolImpl`
        :raises TLSConfigError: if the certificate or key cannot be read or used
        """
        stack = self._stack
        configuration = self._settings.configuration(stack, is_client=False)
        loaded = self._certificates.get(tls_config)
        if loaded is None:
            # Parsed once per configuration, not per connection; bounded by the
            # number of configurations a server uses (normally one).
            credentials = tls_config._credentials()
            loaded = stack.credentials(credentials.certificates, credentials.private_key)
            if len(self._certificates) < _MAX_CACHED_CERTIFICATES:
                self._certificates[tls_config] = loaded
        certificate, chain, private_key = loaded
        configuration.certificate = certificate
        configuration.certificate_chain = list(chain)
        configuration.private_key = private_key
        return HTTP3ProtocolImpl(
            configuration,
            connection_class=stack.connection_class,
            max_concurrent_streams=self._settings.max_concurrent_streams,
            max_field_section_size=self._settings.max_field_section_size,
            max_probed_datagram_size=self._settings.max_probed_datagram_size,
            enable_connect_protocol=self._enable_connect_protocol,
            stateless_reset_key=self._stateless_reset_key,
            connection_id_routing=self._routing,
        )


#: Certificate configurations a server factory keeps parsed.
_MAX_CACHED_CERTIFICATES = 16


def _ca_pem(cadata: str | bytes) -> bytes:
    """Return CA certificates as PEM bytes, as aioquic wants them (``ssl`` takes PEM str or DER bytes)."""
    if isinstance(cadata, str):
        return cadata.encode("ascii")
    if b"-----BEGIN CERTIFICATE-----" in cadata:
        return cadata
    pems: list[bytes] = []
    rest = cadata
    while rest:
        size = _der_size(rest)
        try:
            certificate = x509.load_der_x509_certificate(rest[:size])
        except ValueError as exc:
            raise ValueError(f"cannot load DER CA certificates: {exc}") from exc
        pems.append(certificate.public_bytes(serialization.Encoding.PEM))
        rest = rest[size:]
    return b"".join(pems)


def _der_size(data: bytes) -> int:
    """Return the size of the DER element (a certificate SEQUENCE) at the start of *data*."""
    if len(data) < 2 or data[0] != 0x30:
        raise ValueError("CA data is neither PEM nor DER certificates")
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        raise ValueError("CA data has an invalid DER length")
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")

"""HTTP/3 on aioquic: the default HTTP/3 implementation, and QUIC header sniffing.

:class:`HTTP3ClientFactory` and :class:`HTTP3ServerFactory` create
:class:`HTTP3ProtocolImpl` objects. :func:`parse_quic_header` and
:func:`encode_version_negotiation` are pure helpers for routing QUIC datagrams
before a connection exists.
"""

from __future__ import annotations

from ._factories import HTTP3ClientFactory, HTTP3ServerFactory
from ._header import (
    QUICHeader,
    QUICPacketType,
    QUICRetry,
    encode_stateless_reset,
    encode_version_negotiation,
    parse_quic_header,
    stateless_reset_token,
)
from ._protocol import HTTP3ProtocolImpl

__all__ = [
    "HTTP3ClientFactory",
    "HTTP3ServerFactory",
    "HTTP3ProtocolImpl",
    "QUICHeader",
    "QUICPacketType",
    "QUICRetry",
    "parse_quic_header",
    "encode_version_negotiation",
    "stateless_reset_token",
    "encode_stateless_reset",
]

"""HTTP/3 on aioquic: the default HTTP/3 implementation, and QUIC header sniffing.

:class:`HTTP3ClientFactory` and :class:`HTTP3ServerFactory` create
:class:`HTTP3ProtocolImpl` objects. :class:`Qh3ClientFactory` and
:class:`Qh3ServerFactory` create the same over qh3's QUIC; they are imported
on first use, and raise :class:`ImportError` then if qh3 is not installed
(``pip install trio_hface[qh3]``). :func:`parse_quic_header` and
:func:`encode_version_negotiation` are pure helpers for routing QUIC datagrams
before a connection exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ._qh3 import Qh3ClientFactory, Qh3ServerFactory

__all__ = [
    "HTTP3ClientFactory",
    "HTTP3ServerFactory",
    "HTTP3ProtocolImpl",
    "Qh3ClientFactory",
    "Qh3ServerFactory",
    "QUICHeader",
    "QUICPacketType",
    "QUICRetry",
    "parse_quic_header",
    "encode_version_negotiation",
    "stateless_reset_token",
    "encode_stateless_reset",
]

_OPTIONAL = ("Qh3ClientFactory", "Qh3ServerFactory")


def __getattr__(name: str) -> Any:
    if name in _OPTIONAL:
        from . import _qh3

        return getattr(_qh3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

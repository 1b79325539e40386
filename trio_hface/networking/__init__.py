"""Networking on Trio: TCP and TLS streams, UDP datagram streams for QUIC."""

from __future__ import annotations

from ._abc import (
    ByteStream,
    DatagramStream,
    QUICStream,
    TCPClientNetworking,
    TCPServerNetworking,
)
from ._system import SystemNetworking

__all__ = [
    "ByteStream",
    "DatagramStream",
    "QUICStream",
    "TCPServerNetworking",
    "TCPClientNetworking",
    "SystemNetworking",
]

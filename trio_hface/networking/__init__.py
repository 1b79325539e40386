"""Networking on Trio: TCP and TLS streams, UDP datagram streams for QUIC."""

from __future__ import annotations

from ._abc import (
    ByteStream,
    ClientNetworking,
    DatagramStream,
    QUICServerNetworking,
    QUICStream,
    QUICStreamListener,
    ServerNetworking,
    TCPClientNetworking,
    TCPServerNetworking,
    UDPClientNetworking,
)
from ._quic import QUICListener, QUICListenerStatistics, UDPStream, resolve_udp
from ._system import SystemNetworking
from ._tls import can_receive_without_waiting, client_ssl_context, send_space_probe, server_ssl_context

__all__ = [
    "ByteStream",
    "DatagramStream",
    "QUICStream",
    "QUICStreamListener",
    "TCPServerNetworking",
    "QUICServerNetworking",
    "ServerNetworking",
    "TCPClientNetworking",
    "UDPClientNetworking",
    "ClientNetworking",
    "SystemNetworking",
    "QUICListener",
    "QUICListenerStatistics",
    "UDPStream",
    "resolve_udp",
    "can_receive_without_waiting",
    "client_ssl_context",
    "send_space_probe",
    "server_ssl_context",
]

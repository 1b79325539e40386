"""trio_hface: hackable HTTP/1.1, HTTP/2 and HTTP/3 for Trio."""

from __future__ import annotations

from ._models import ClientTLSConfig, HTTPErrorCodes, ServerTLSConfig
from ._typing import AddressType, DatagramType, HeadersType, HeaderType
from .errors import (
    ASGIError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    FlowControlError,
    HFaceError,
    HTTPStatusError,
    ListenError,
    LocalProtocolError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    RedirectError,
    RemoteProtocolError,
    RequestRefused,
    StreamResetError,
    TimeoutError,
    TLSConfigError,
    TooManyRedirects,
    WebSocketClosed,
    WebSocketHandshakeError,
    WriteTimeout,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "ClientTLSConfig",
    "ServerTLSConfig",
    "HTTPErrorCodes",
    "AddressType",
    "DatagramType",
    "HeaderType",
    "HeadersType",
    "HFaceError",
    "ProtocolError",
    "LocalProtocolError",
    "FlowControlError",
    "RemoteProtocolError",
    "StreamResetError",
    "RequestRefused",
    "ConnectError",
    "ConnectionLost",
    "TimeoutError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "HTTPStatusError",
    "RedirectError",
    "TooManyRedirects",
    "ProxyError",
    "ASGIError",
    "TLSConfigError",
    "ListenError",
    "WebSocketClosed",
    "WebSocketHandshakeError",
]

"""Connections: sans-IO protocols driven over Trio transports; listeners and openers."""

from __future__ import annotations

from ._connections import CLOSE_TIMEOUT, CONNECTION_ERRORS, HTTPConnection
from ._dispatch import DispatchEnd, StreamDispatcher
from ._inbox import StreamInbox
from ._limit import ConnectionLimit, ConnectionSlot
from ._listener import Handler, HTTPListener
from ._quic import HTTPMultiListener, HTTPOverQUICListener, HTTPOverQUICOpener
from ._quic_connection import HTTPOverQUICConnection
from ._tcp import HTTPOpener, HTTPOverTCPListener, HTTPOverTCPOpener
from ._tcp_connection import HTTPOverTCPConnection
from ._websocket import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUE,
    WebSocketStream,
    open_websocket,
)
from ._ws_handshake import (
    BoundedDeflate,
    accept_extensions,
    accept_key,
    header_tokens,
    is_websocket_request,
    new_key,
    valid_key,
)

__all__ = [
    "CONNECTION_ERRORS",
    "CLOSE_TIMEOUT",
    "HTTPConnection",
    "HTTPOverTCPConnection",
    "HTTPOverQUICConnection",
    "HTTPListener",
    "HTTPOverTCPListener",
    "HTTPOverQUICListener",
    "HTTPMultiListener",
    "HTTPOpener",
    "HTTPOverTCPOpener",
    "HTTPOverQUICOpener",
    "Handler",
    "ConnectionLimit",
    "ConnectionSlot",
    "StreamInbox",
    "StreamDispatcher",
    "DispatchEnd",
    "WebSocketStream",
    "open_websocket",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_CLOSE_TIMEOUT",
    "BoundedDeflate",
    "accept_extensions",
    "accept_key",
    "header_tokens",
    "is_websocket_request",
    "new_key",
    "valid_key",
]

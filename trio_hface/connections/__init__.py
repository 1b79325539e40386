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
]

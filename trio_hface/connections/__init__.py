"""Connections: sans-IO protocols driven over Trio transports; listeners and openers."""

from __future__ import annotations

from ._connections import (
    CLOSE_TIMEOUT,
    CONNECTION_ERRORS,
    HTTPConnection,
    HTTPOverQUICConnection,
    HTTPOverTCPConnection,
)
from ._dispatch import DispatchEnd, StreamDispatcher
from ._inbox import StreamInbox
from ._limit import ConnectionLimit, ConnectionSlot
from ._quic import HTTPMultiListener, HTTPOverQUICListener, HTTPOverQUICOpener
from ._tcp import Handler, HTTPListener, HTTPOpener, HTTPOverTCPListener, HTTPOverTCPOpener

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

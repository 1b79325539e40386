"""Connections: sans-IO protocols driven over Trio transports; listeners and openers."""

from __future__ import annotations

from ._connections import HTTPConnection, HTTPOverTCPConnection
from ._tcp import HTTPListener, HTTPOpener, HTTPOverTCPListener, HTTPOverTCPOpener

__all__ = [
    "HTTPConnection",
    "HTTPOverTCPConnection",
    "HTTPListener",
    "HTTPOverTCPListener",
    "HTTPOpener",
    "HTTPOverTCPOpener",
]

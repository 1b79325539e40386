"""Sans-IO HTTP/1.1, HTTP/2 and HTTP/3 protocols behind one interface.

Nothing in this package performs I/O, reads a clock or imports Trio.
"""

from __future__ import annotations

from ._cids import ConnectionIDRouting, QUICLBConfig
from ._factories import (
    ALPNHTTPFactory,
    HTTPOverQUICClientFactory,
    HTTPOverQUICServerFactory,
    HTTPOverTCPFactory,
)
from ._protocols import (
    HTTP1Protocol,
    HTTP2Protocol,
    HTTP3Protocol,
    HTTPOverQUICProtocol,
    HTTPOverTCPProtocol,
    HTTPProtocol,
)
from ._registry import ProtocolRegistry, protocol_registry

__all__ = [
    "HTTPProtocol",
    "HTTPOverTCPProtocol",
    "HTTPOverQUICProtocol",
    "HTTP1Protocol",
    "HTTP2Protocol",
    "HTTP3Protocol",
    "HTTPOverTCPFactory",
    "HTTPOverQUICClientFactory",
    "HTTPOverQUICServerFactory",
    "ALPNHTTPFactory",
    "ProtocolRegistry",
    "protocol_registry",
    "ConnectionIDRouting",
    "QUICLBConfig",
]

"""The default HTTP/1.1 implementation, on h11."""

from __future__ import annotations

from ._factories import HTTP1ClientFactory, HTTP1ServerFactory
from ._protocol import HTTP1ProtocolImpl

__all__ = ["HTTP1ClientFactory", "HTTP1ServerFactory", "HTTP1ProtocolImpl"]

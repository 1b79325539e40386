"""The default HTTP/2 implementation, on h2."""

from __future__ import annotations

from ._factories import HTTP2ClientFactory, HTTP2ServerFactory
from ._protocol import HTTP2ProtocolImpl

__all__ = ["HTTP2ClientFactory", "HTTP2ServerFactory", "HTTP2ProtocolImpl"]

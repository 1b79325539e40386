"""Ready-to-use clients: an HTTP client and a proxy client for every HTTP version."""

from __future__ import annotations

from ._client import Client, ClientSession, StreamingResponse
from ._errors import PoolTimeout, ReadTimeout
from ._models import URL, ClientProtocol, Origin, Request, RequestHeaders, Response
from ._pool import PoolStatistics
from ._proxy import ProxyClient, ProxyClientSession
from ._tunnel import TunnelStream
from ._websocket import WebSocket

__all__ = [
    "Client",
    "ClientSession",
    "StreamingResponse",
    "PoolStatistics",
    "PoolTimeout",
    "ReadTimeout",
    "ProxyClient",
    "ProxyClientSession",
    "TunnelStream",
    "WebSocket",
    "ClientProtocol",
    "Origin",
    "URL",
    "Request",
    "RequestHeaders",
    "Response",
]

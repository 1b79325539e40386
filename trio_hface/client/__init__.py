"""Ready-to-use clients: an HTTP client and a proxy client for every HTTP version."""

from __future__ import annotations

from ..errors import (
    ConnectTimeout,
    HTTPStatusError,
    PoolTimeout,
    ReadTimeout,
    RedirectError,
    TimeoutError,
    TooManyRedirects,
    WriteTimeout,
)
from ._api import EventHooks
from ._client import Client, ClientSession
from ._models import (
    URL,
    ClientProtocol,
    Headers,
    Origin,
    QueryParams,
    Request,
    RequestHeaders,
    Response,
    ResponseHead,
)
from ._pool import PoolStatistics
from ._proxy import ProxyClient, ProxyClientSession
from ._redirects import redirect_request
from ._response import StreamingResponse
from ._tunnel import TunnelStream
from ._websocket import WebSocket

__all__ = [
    "Client",
    "ClientSession",
    "StreamingResponse",
    "EventHooks",
    "PoolStatistics",
    "TimeoutError",
    "ConnectTimeout",
    "PoolTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "HTTPStatusError",
    "RedirectError",
    "TooManyRedirects",
    "redirect_request",
    "ProxyClient",
    "ProxyClientSession",
    "TunnelStream",
    "WebSocket",
    "ClientProtocol",
    "Origin",
    "URL",
    "Request",
    "RequestHeaders",
    "QueryParams",
    "Headers",
    "ResponseHead",
    "Response",
]

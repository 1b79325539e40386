"""Ready-to-use clients: an HTTP client for every HTTP version."""

from __future__ import annotations

from ._client import Client, ClientSession, StreamingResponse
from ._models import URL, ClientProtocol, Origin, Request, Response

__all__ = [
    "Client",
    "ClientSession",
    "StreamingResponse",
    "ClientProtocol",
    "Origin",
    "URL",
    "Request",
    "Response",
]

"""HTTP/1.1: the default implementation on h11, and one on httptools (the ``speedups`` extra).

:class:`HTTPToolsClientFactory`, :class:`HTTPToolsServerFactory` and
:class:`HTTPToolsProtocol` are imported on first use, and raise
:class:`ImportError` then if httptools is not installed
(``pip install trio_hface[speedups]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._factories import HTTP1ClientFactory, HTTP1ServerFactory
from ._protocol import HTTP1ProtocolImpl

if TYPE_CHECKING:
    from ._httptools import HTTPToolsClientFactory, HTTPToolsProtocol, HTTPToolsServerFactory

__all__ = [
    "HTTP1ClientFactory",
    "HTTP1ServerFactory",
    "HTTP1ProtocolImpl",
    "HTTPToolsClientFactory",
    "HTTPToolsServerFactory",
    "HTTPToolsProtocol",
]

_OPTIONAL = ("HTTPToolsClientFactory", "HTTPToolsServerFactory", "HTTPToolsProtocol")


def __getattr__(name: str) -> Any:
    if name in _OPTIONAL:
        from . import _httptools

        return getattr(_httptools, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Factories of the default HTTP/1.1 implementation."""

from __future__ import annotations

from collections.abc import Sequence

from .._factories import HTTPOverTCPFactory
from ._protocol import DEFAULT_MAX_BUFFER_SIZE, DEFAULT_MAX_HEADER_SIZE, HTTP1ProtocolImpl

__all__ = ["HTTP1ClientFactory", "HTTP1FactoryBase", "HTTP1ServerFactory"]


class HTTP1FactoryBase(HTTPOverTCPFactory):
    """The limits and ALPN name every HTTP/1.1 implementation's factory shares."""

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
    ) -> None:
        if max_header_size <= 0 or max_buffer_size < max_header_size:
            raise ValueError(
                f"need 0 < max_header_size <= max_buffer_size, not {max_header_size!r}, {max_buffer_size!r}"
            )
        self.max_header_size = max_header_size
        self.max_buffer_size = max_buffer_size

    @property
    def alpn_protocols(self) -> Sequence[str]:
        return ["http/1.1"]


class _HTTP1Factory(HTTP1FactoryBase):
    _client: bool

    def __call__(
        self,
        *,
        tls_version: str | None = None,
        alpn_protocol: str | None = None,
    ) -> HTTP1ProtocolImpl:
        return HTTP1ProtocolImpl(
            client=self._client,
            scheme="http" if tls_version is None else "https",
            max_header_size=self.max_header_size,
            max_buffer_size=self.max_buffer_size,
        )


class HTTP1ClientFactory(_HTTP1Factory):
    """Creates client-side HTTP/1.1 protocols (h11).

    Implements :class:`.HTTPOverTCPFactory`.

    :param max_header_size: the largest status line and header block accepted, in bytes
    :param max_buffer_size: the most unparsed input held, in bytes
    """

    _client = True


class HTTP1ServerFactory(_HTTP1Factory):
    """Creates server-side HTTP/1.1 protocols (h11).

    Received requests carry ``:scheme`` ``https`` when the connection uses TLS.

    Implements :class:`.HTTPOverTCPFactory`.

    :param max_header_size: the largest request line and header block accepted, in bytes
    :param max_buffer_size: the most unparsed input held, in bytes
    """

    _client = False

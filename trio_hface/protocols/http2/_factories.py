"""Factories of the default HTTP/2 implementation."""

from __future__ import annotations

from collections.abc import Sequence

from .._factories import HTTPOverTCPFactory
from ._protocol import (
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_HEADER_LIST_SIZE,
    DEFAULT_STREAM_WINDOW,
    HTTP2ProtocolImpl,
)

__all__ = ["HTTP2ClientFactory", "HTTP2ServerFactory"]

# RFC 9113 section 6.9.2: a window may not exceed 2**31 - 1.
_MAX_WINDOW = 2**31 - 1


class _HTTP2Factory(HTTPOverTCPFactory):
    _client: bool

    def __init__(
        self,
        *,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        connection_window: int = DEFAULT_CONNECTION_WINDOW,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
    ) -> None:
        for name, value in (("stream_window", stream_window), ("connection_window", connection_window)):
            if not 0 < value <= _MAX_WINDOW:
                raise ValueError(f"{name} must be in 1-{_MAX_WINDOW}, not {value!r}")
        if max_concurrent_streams < 1:
            raise ValueError(f"max_concurrent_streams must be positive, not {max_concurrent_streams!r}")
        self.max_concurrent_streams = max_concurrent_streams
        self.stream_window = stream_window
        self.connection_window = connection_window
        self.max_header_list_size = max_header_list_size
        self.enable_connect_protocol = False

    @property
    def alpn_protocols(self) -> Sequence[str]:
        return ["h2"]

    def __call__(
        self,
        *,
        tls_version: str | None = None,
        alpn_protocol: str | None = None,
    ) -> HTTP2ProtocolImpl:
        return HTTP2ProtocolImpl(
            client=self._client,
            max_concurrent_streams=self.max_concurrent_streams,
            stream_window=self.stream_window,
            connection_window=self.connection_window,
            max_header_list_size=self.max_header_list_size,
            enable_connect_protocol=self.enable_connect_protocol,
        )


class HTTP2ClientFactory(_HTTP2Factory):
    """Creates client-side HTTP/2 protocols (h2).

    Implements :class:`.HTTPOverTCPFactory`.

    :param max_concurrent_streams: the MAX_CONCURRENT_STREAMS we advertise (server push is refused anyway)
    :param stream_window: our receive window per stream, in bytes
    :param connection_window: our receive window for the connection, in bytes
    :param max_header_list_size: the largest header list accepted, in bytes
    """

    _client = True


class HTTP2ServerFactory(_HTTP2Factory):
    """Creates server-side HTTP/2 protocols (h2).

    Implements :class:`.HTTPOverTCPFactory`.

    :param max_concurrent_streams: how many streams a client may open at once
    :param stream_window: our receive window per stream, in bytes
    :param connection_window: our receive window for the connection, in bytes
    :param max_header_list_size: the largest header list accepted, in bytes
    :param enable_connect_protocol: advertise extended CONNECT (RFC 8441),
        so clients may send ``:protocol`` (WebSockets over HTTP/2); on by
        default, as for HTTP/3 (RFC 9220)
    """

    _client = False

    def __init__(
        self,
        *,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        connection_window: int = DEFAULT_CONNECTION_WINDOW,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
        enable_connect_protocol: bool = True,
    ) -> None:
        super().__init__(
            max_concurrent_streams=max_concurrent_streams,
            stream_window=stream_window,
            connection_window=connection_window,
            max_header_list_size=max_header_list_size,
        )
        self.enable_connect_protocol = enable_connect_protocol

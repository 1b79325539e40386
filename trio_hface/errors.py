"""The exceptions that trio_hface raises.

Everything derives from :class:`HFaceError`. Misuse of an API by the caller
raises :class:`LocalProtocolError` at once; misbehaviour of the peer becomes an
event (:class:`~trio_hface.events.ConnectionTerminated`,
:class:`~trio_hface.events.StreamResetSent`) in the sans-IO layer, and a
:class:`RemoteProtocolError` or :class:`StreamResetError` where an API has to
raise.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "HFaceError",
    "ProtocolError",
    "LocalProtocolError",
    "FlowControlError",
    "ALPNError",
    "RemoteProtocolError",
    "StreamResetError",
    "StreamResetByPeerError",
    "RequestRefused",
    "ConnectError",
    "ConnectionLost",
    "TimeoutError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "HTTPStatusError",
    "RedirectError",
    "TooManyRedirects",
    "ProxyError",
    "ASGIError",
    "StartupFailed",
    "UsageError",
    "TLSConfigError",
    "ListenError",
    "WebSocketClosed",
    "WebSocketHandshakeError",
]


class HFaceError(Exception):
    """Root of every exception that trio_hface raises."""


class ProtocolError(HFaceError):
    """An HTTP protocol rule was broken.

    :param message: what was wrong
    :param error_code: the error code in the numbering of the HTTP version
        (a status code for HTTP/1, an error code for HTTP/2 and HTTP/3), or 0
    """

    #: The error code in the numbering of the HTTP version, or 0.
    error_code: int

    def __init__(self, message: str, error_code: int = 0) -> None:
        super().__init__(message)
        self.error_code = error_code


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow.

    Examples: an unknown or closed stream ID, data after ``end_stream``, an
    invalid header. The protocol state is unchanged, so the caller may go on
    after fixing the call.
    """


class FlowControlError(LocalProtocolError):
    """The caller submitted more DATA than the peer's flow-control window allows.

    Ask :meth:`.HTTPProtocol.get_send_window` how much may be submitted, and
    wait for the peer to grant more before submitting the rest.
    """


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol."""


class StreamResetError(HFaceError):
    """A stream was reset while it was in use.

    :param stream_id: the stream that was reset
    :param error_code: the reset's error code
    """

    #: The stream that was reset.
    stream_id: int
    #: The reset's error code.
    error_code: int

    def __init__(self, stream_id: int, error_code: int, message: str | None = None) -> None:
        super().__init__(message or f"stream {stream_id} was reset with error code {error_code:#x}")
        self.stream_id = stream_id
        self.error_code = error_code


class StreamResetByPeerError(StreamResetError, LocalProtocolError):
    """Headers or data were submitted on a stream that the peer reset.

    Raised instead of a plain :class:`LocalProtocolError` when the stream
    cannot take them because the peer reset it (RST_STREAM in HTTP/2,
    RESET_STREAM or STOP_SENDING in HTTP/3): the caller did nothing wrong,
    the peer gave up. It is both a :class:`StreamResetError` (with the
    peer's error code) and a :class:`LocalProtocolError`.
    """

    def __init__(self, stream_id: int, error_code: int, message: str | None = None) -> None:
        StreamResetError.__init__(
            self, stream_id, error_code, message or f"the peer reset stream {stream_id} ({error_code:#x})"
        )


class RequestRefused(StreamResetError):
    """The server did not process a request, so sending it again is safe.

    Raised for a stream the server reset with REFUSED_STREAM (HTTP/2) or
    H3_REQUEST_REJECTED (HTTP/3) before any response, and for a request on a
    stream that the server's GOAWAY left out (a stream ID above its last
    stream ID: RFC 9113 section 6.8, RFC 9114 section 5.2). The client sends
    such requests again on its own, on another connection, when their body
    can be replayed; it raises this once it gives up.
    """


class ConnectError(HFaceError):
    """No connection could be opened."""


class ALPNError(LocalProtocolError, ConnectError):
    """No protocol factory speaks what the TLS handshake negotiated.

    Raised by :class:`.ALPNHTTPFactory` when the peer negotiated no ALPN
    protocol (cleartext, or a TLS peer without ALPN) and the default
    protocol (``http/1.1`` unless configured) is not among the factories,
    or when it negotiated an ID that no factory offers. The connection
    cannot be used: offer the default protocol too, or talk to a peer that
    negotiates one of the offered IDs. It is both a
    :class:`LocalProtocolError` (the factories do not fit the connection)
    and a :class:`ConnectError` (the connection was not opened).
    """


class ConnectionLost(HFaceError):
    """A connection ended before the response was complete."""


class TimeoutError(HFaceError, builtins.TimeoutError):
    """A timeout of the client ran out: the base of :class:`ConnectTimeout`,
    :class:`ReadTimeout`, :class:`WriteTimeout` and :class:`PoolTimeout`.

    Also the built-in :exc:`TimeoutError`, so ``except TimeoutError`` catches it
    whether or not the name is imported from here. (These used to be
    :exc:`trio.TooSlowError`; this layer does not import Trio.)
    """


class ConnectTimeout(TimeoutError, ConnectError):
    """No connection was opened within the client's ``connect_timeout``.

    Also a :class:`ConnectError`, which it used to be.
    """


class ReadTimeout(TimeoutError):
    """No piece of a response came within the client's ``read_timeout``."""


class WriteTimeout(TimeoutError):
    """Sending a request's body made no progress within the client's ``write_timeout``."""


class PoolTimeout(TimeoutError):
    """No pooled connection could take the request within the client's ``pool_timeout``."""


# The response attributes below are trio_hface.client.Response (or its streaming
# counterpart): Any, since this base layer may not import the client's models.


class HTTPStatusError(HFaceError):
    """The response has a 4xx or 5xx status: raised by ``raise_for_status()``.

    The message reads like httpx's: ``404 Not Found for url https://example.com/x``.

    :param message: what happened
    :param response: the response (a :class:`trio_hface.client.Response`)
    """

    def __init__(self, message: str, *, response: Any) -> None:
        super().__init__(message)
        #: The response, with its :attr:`~trio_hface.client.Response.request`.
        self.response: Any = response

    @property
    def status(self) -> int:
        """The response's status code."""
        status: int = self.response.status
        return status


class RedirectError(HFaceError):
    """A redirect could not be followed.

    Raised when a 307 or 308 would send a streamed body again (an async
    iterable cannot be replayed: give the body as ``bytes``), or when the
    ``location`` is not an http or https URL.

    :param message: what happened
    :param response: the redirect response
    """

    def __init__(self, message: str, *, response: Any) -> None:
        super().__init__(message)
        #: The redirect response that could not be followed.
        self.response: Any = response


class TooManyRedirects(RedirectError):
    """More than the client's ``max_redirects`` redirects in a row."""


class ProxyError(HFaceError):
    """A proxy refused a CONNECT request.

    :param message: what happened
    :param status: the proxy's status code, if it answered
    """

    #: The proxy's status code, or ``None``.
    status: int | None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ASGIError(HFaceError):
    """An ASGI application broke the ASGI contract."""


class StartupFailed(HFaceError, RuntimeError):
    """The ASGI application answered ``lifespan.startup.failed``: the server serves nothing.

    Also a :class:`RuntimeError`, which it used to be.
    """


class UsageError(HFaceError, RuntimeError):
    """An object was used where it cannot be, such as a connection outside its ``async with``.

    Also a :class:`RuntimeError`, which it used to be.
    """


class TLSConfigError(HFaceError, ValueError):
    """A server's certificate or private key cannot be used.

    Raised by :meth:`.ServerTLSConfig.check`, and by the servers before they
    listen, for a file that is missing or unreadable, not PEM, a key where a
    certificate belongs (or the other way round), an encrypted key, or a key
    that is not the certificate's. The message is one line that names the
    file (or ``certdata``/``keydata``) and the problem. Also a
    :class:`ValueError`, which such problems used to raise.

    :param message: what is wrong, naming the file
    :param path: the file at fault, or ``None`` (data in memory, or no file)
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        #: The file at fault (``"certdata"`` or ``"keydata"`` for data in memory), or ``None``.
        self.path = path

    def __reduce__(self) -> tuple[type[TLSConfigError], tuple[str, str | None]]:
        return (type(self), (str(self), self.path))


class ListenError(HFaceError, OSError):
    """An endpoint could not be bound: its message names it.

    Such as ``cannot listen on https://127.0.0.1:6443: address already in
    use`` (``(UDP)`` after the endpoint when the UDP socket of HTTP/3 was the
    one that failed). An :class:`OSError` with the operating system's
    :attr:`~OSError.errno`, which the servers raised before.

    :param errno: the operating system's error number, or ``None``
    :param message: the whole message
    """

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(errno, message)

    def __str__(self) -> str:
        return str(self.strerror)


class WebSocketClosed(HFaceError):
    """The WebSocket is closed: raised by its ``send`` and ``receive`` after the close.

    :param code: the close code (RFC 6455 section 7.4): the peer's, or 1006
        when the connection ended without a close frame
    :param reason: the reason that came with it
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"the WebSocket is closed (code {code}{': ' + reason if reason else ''})")
        #: The close code.
        self.code = code
        #: The reason given with the code.
        self.reason = reason


class WebSocketHandshakeError(HFaceError):
    """The server refused to open a WebSocket (or answered the handshake wrongly).

    :param message: what happened
    :param status: the response's status code (0 if there was no valid response)
    :param headers: the response's headers
    :param body: the response's body (at most the first 64 KiB)
    """

    def __init__(
        self,
        message: str,
        status: int = 0,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        #: The status code of the response.
        self.status = status
        #: The headers of the response.
        self.headers = headers or []
        #: The body of the response.
        self.body = body

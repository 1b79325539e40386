"""The client's WebSockets: the handshake on a connection of any version, then the shared driver.

Theory of operation
-------------------

:func:`open_session_websocket` (behind ``session.websocket(url)``) takes a
connection to the origin as a request would, from the session's pool. On
HTTP/2 and HTTP/3 the WebSocket is an extended CONNECT stream of that pooled
connection (RFC 8441, RFC 9220), beside other requests, when the server
advertised ``SETTINGS_ENABLE_CONNECT_PROTOCOL``; otherwise, and on
HTTP/1.1, it is an Upgrade on a connection of its own, which ends with the
WebSocket. :func:`connect_websocket` does the handshake on a given
connection and its dispatcher; then
:func:`~trio_hface.connections.open_websocket` drives the frames.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import trio

from .._groups import single_exception
from .._typing import HeadersType
from ..connections import (
    CLOSE_TIMEOUT,
    CONNECTION_ERRORS,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUE,
    BoundedDeflate,
    HTTPConnection,
    StreamDispatcher,
    StreamInbox,
    WebSocketStream,
    accept_key,
    header_tokens,
    new_key,
    open_websocket,
)
from ..errors import WebSocketHandshakeError
from ..events import DataReceived, HeadersReceived, StreamReset
from ._connection import PooledConnection
from ._models import URL, Origin

__all__ = ["WebSocket", "connect_websocket", "open_session_websocket", "websocket_url"]

log = logging.getLogger(__name__)

#: Bytes of a refusal's body kept for :class:`~trio_hface.WebSocketHandshakeError`.
MAX_ERROR_BODY = 64 * 1024

#: Seconds to wait for a new HTTP/2 connection's SETTINGS (a PING's round trip).
SETTINGS_TIMEOUT = 5.0

#: Seconds between looks at whether an HTTP/3 connection's SETTINGS arrived.
SETTINGS_POLL = 0.005

_DEFLATE_OFFER = b"permessage-deflate; client_max_window_bits"


def websocket_url(url: str) -> URL:
    """Parse a ``ws://``, ``wss://``, ``http://`` or ``https://`` URL into the HTTP URL of the handshake.

    :raises ValueError: for another scheme or no host
    """
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    if parts.fragment:
        raise ValueError(f"a WebSocket URL has no fragment: {url!r}")
    return URL.parse(urlunsplit((scheme, parts.netloc, parts.path, parts.query, "")))


class WebSocket:
    """A WebSocket opened by the client; obtain one with ``session.websocket(url)``.

    Messages are ``str`` (text) or ``bytes`` (binary). Iterating gives the
    received messages until the peer closes.
    """

    def __init__(
        self,
        stream: WebSocketStream,
        *,
        subprotocol: str | None,
        http_version: str,
        response_headers: HeadersType,
    ) -> None:
        self._stream = stream
        #: The subprotocol the server chose, if any.
        self.subprotocol = subprotocol
        #: ``"1.1"``, ``"2"`` or ``"3"``: the HTTP version the WebSocket runs over.
        self.http_version = http_version
        #: The headers of the server's handshake response.
        self.response_headers = list(response_headers)

    async def send(self, message: str | bytes) -> None:
        """Send a text or binary message.

        :raises WebSocketClosed: once the WebSocket is closed
        """
        await self._stream.send(message)

    async def receive(self) -> str | bytes:
        """The next message.

        :raises WebSocketClosed: once the peer closed (with its code and reason) or the connection ended
        """
        return await self._stream.receive()

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._stream.__aiter__()

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong.

        :raises WebSocketClosed: if the WebSocket closes first
        """
        await self._stream.ping(payload)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close: send a close frame with *code* and *reason*, wait (bounded) for the server's."""
        await self._stream.aclose(code, reason)

    @property
    def close_code(self) -> int | None:
        """The close code (the server's, or 1006 if the connection ended without one); ``None`` while open."""
        return self._stream.close_code

    @property
    def close_reason(self) -> str:
        """The reason that came with :attr:`close_code`."""
        return self._stream.close_reason


def _handshake_headers(
    connection: HTTPConnection,
    url: URL,
    key: bytes,
    subprotocols: Sequence[str],
    headers: HeadersType,
    compression: bool,
) -> list[tuple[bytes, bytes]]:
    origin = url.origin
    if connection.multiplexed:
        head = [(b":method", b"CONNECT"), (b":protocol", b"websocket")]
    else:
        head = [(b":method", b"GET")]
    head += [
        (b":scheme", origin.scheme.encode()),
        (b":authority", origin.authority),
        (b":path", url.target.encode("ascii")),
    ]
    if not connection.multiplexed:
        head += [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-key", key)]
    head.append((b"sec-websocket-version", b"13"))
    if subprotocols:
        head.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("ascii")))
    if compression:
        head.append((b"sec-websocket-extensions", _DEFLATE_OFFER))
    reserved = {b"host", b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-version"}
    head += [(n.lower(), v) for n, v in headers if n.lower() not in reserved]
    return head


async def _refusal(
    inbox: StreamInbox, status: int, headers: list[tuple[bytes, bytes]], ended: bool
) -> WebSocketHandshakeError:
    body = bytearray()
    with trio.move_on_after(CLOSE_TIMEOUT):
        while not ended and len(body) < MAX_ERROR_BODY:
            try:
                event = await inbox.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(event, DataReceived):
                body += event.data
                ended = event.end_stream
            elif isinstance(event, (StreamReset, HeadersReceived)):
                break
    return WebSocketHandshakeError(
        f"the server refused the WebSocket with status {status}",
        status,
        headers,
        bytes(body[:MAX_ERROR_BODY]),
    )


async def _receive_response(inbox: StreamInbox, read_timeout: float | None) -> HeadersReceived:
    with trio.move_on_after(read_timeout if read_timeout is not None else float("inf")):
        while True:
            try:
                event = await inbox.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise WebSocketHandshakeError("the connection ended during the WebSocket handshake") from None
            if isinstance(event, HeadersReceived):
                status = dict(event.headers).get(b":status", b"0")
                if status != b"101" and status.startswith(b"1"):
                    continue  # 100 and the like: the answer comes after
                return event
            if isinstance(event, StreamReset):
                raise WebSocketHandshakeError(f"the server reset the WebSocket's stream ({event.error_code})")
    raise WebSocketHandshakeError(f"no answer to the WebSocket handshake in {read_timeout} s")


def _accepted(
    connection: HTTPConnection,
    key: bytes,
    status: int,
    fields: list[tuple[bytes, bytes]],
    subprotocols: Sequence[str],
    compression: bool,
    max_message_size: int,
) -> tuple[list[str], list[BoundedDeflate]]:
    """Check the server's acceptance; return the subprotocol chosen (or none) and the extensions."""
    if not connection.multiplexed:
        accept = next((v for n, v in fields if n == b"sec-websocket-accept"), None)
        if accept != accept_key(key):
            raise WebSocketHandshakeError("wrong Sec-WebSocket-Accept in the server's 101", status, fields)
    chosen = header_tokens(fields, b"sec-websocket-protocol")
    if len(chosen) > 1 or (chosen and chosen[0] not in subprotocols):
        raise WebSocketHandshakeError(f"the server chose a subprotocol not offered: {chosen}", status, fields)
    extensions: list[BoundedDeflate] = []
    for offer in header_tokens(fields, b"sec-websocket-extensions"):
        name = offer.split(";", 1)[0].strip().lower()
        if not compression or name != "permessage-deflate" or extensions:
            raise WebSocketHandshakeError(
                f"the server chose an extension not offered: {offer}", status, fields
            )
        extension = BoundedDeflate(max_message_size)
        extension.finalize(offer)
        extensions.append(extension)
    return chosen, extensions


@asynccontextmanager
async def connect_websocket(
    connection: HTTPConnection,
    dispatcher: StreamDispatcher,
    url: URL,
    *,
    subprotocols: Sequence[str] = (),
    headers: HeadersType = (),
    compression: bool = True,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_queue: int = DEFAULT_MAX_QUEUE,
    ping_interval: float | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    read_timeout: float | None = 60.0,
) -> AsyncIterator[WebSocket]:
    """Open a WebSocket on *connection*, whose events *dispatcher* routes (a task runs it).

    HTTP/1.1: ``GET`` with ``Upgrade: websocket``, answered 101; HTTP/2 and
    HTTP/3: extended CONNECT, answered 2xx (the server must allow it).

    :raises WebSocketHandshakeError: if the server refused, or answered wrongly
    """
    stream_id = connection.get_available_stream_id()
    inbox = dispatcher.open_inbox(stream_id)
    try:
        key = new_key()
        request = _handshake_headers(connection, url, key, subprotocols, headers, compression)
        await connection.send_headers(stream_id, request, end_stream=not connection.multiplexed)
        response = await _receive_response(inbox, read_timeout)
        fields = [(n, v) for n, v in response.headers if not n.startswith(b":")]
        status = int(dict(response.headers).get(b":status", b"0"))
        expected = 200 <= status < 300 if connection.multiplexed else status == 101
        if not expected:
            raise await _refusal(inbox, status, fields, response.end_stream)
        chosen, extensions = _accepted(
            connection, key, status, fields, subprotocols, compression, max_message_size
        )
        version = {"1": "1.1"}.get(connection.http_version, connection.http_version)
        async with open_websocket(
            connection,
            stream_id,
            inbox,
            client=True,
            extensions=extensions,
            max_message_size=max_message_size,
            max_queue=max_queue,
            ping_interval=ping_interval,
            close_timeout=close_timeout,
        ) as stream:
            yield WebSocket(
                stream,
                subprotocol=chosen[0] if chosen else None,
                http_version=version,
                response_headers=fields,
            )
    except BaseException:
        if not inbox_done(dispatcher, stream_id):
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                try:
                    await connection.send_stream_reset(stream_id, connection.error_codes.cancel)
                except CONNECTION_ERRORS:
                    pass
        raise
    finally:
        dispatcher.close_inbox(stream_id)


def inbox_done(dispatcher: StreamDispatcher, stream_id: int) -> bool:
    """Whether the stream's inbox is gone (the WebSocket ended it properly)."""
    return stream_id not in dispatcher.inboxes


async def _settings_known(connection: HTTPConnection, pooled_pong: trio.Event) -> None:
    """Give a new connection's SETTINGS time to arrive, so that extended CONNECT is known to be allowed or not.

    HTTP/2's precede the reply to our PING. HTTP/3's come on the server's
    control stream, usually in its first flight; until they did, look again
    every few milliseconds (no event says so), for at most SETTINGS_TIMEOUT.
    """
    protocol = connection.protocol
    if protocol.peer_allows_extended_connect:
        return
    with trio.move_on_after(SETTINGS_TIMEOUT):
        if protocol.supports_ping:
            try:
                await connection.send_ping(b"wssettng")
            except CONNECTION_ERRORS:
                return
            await pooled_pong.wait()
        while not protocol.peer_settings_received:  # noqa: ASYNC110 (no event tells it)
            await trio.sleep(SETTINGS_POLL)


@dataclass(frozen=True)
class SessionRoute:
    """What :func:`open_session_websocket` needs of a session: its pool and the settings of its client."""

    #: Take a pooled connection to an origin, as a request would.
    acquire: Callable[[Origin], Awaitable[PooledConnection]]
    #: Open a new HTTP/1.1 connection to an origin, by the session's route
    #: (through its proxy too), for a WebSocket of its own.
    open_http1: Callable[[Origin], Awaitable[HTTPConnection]]
    connect_timeout: float | None
    read_timeout: float | None


@asynccontextmanager
async def open_session_websocket(
    session: SessionRoute, url: str, *, subprotocols: Sequence[str], headers: HeadersType
) -> AsyncIterator[WebSocket]:
    """``session.websocket(url)``: over the version the session would use for the origin."""
    parsed = websocket_url(url)
    over = functools.partial(
        connect_websocket,
        url=parsed,
        subprotocols=subprotocols,
        headers=headers,
        read_timeout=session.read_timeout,
    )
    pooled = await session.acquire(parsed.origin)
    if pooled.connection.multiplexed:
        pong = pooled._pong = trio.Event()
        await _settings_known(pooled.connection, pong)
        if pooled.connection.protocol.peer_allows_extended_connect:
            pooled.last_used = trio.current_time()
            try:
                async with over(pooled.connection, pooled.dispatcher) as ws:
                    yield ws
            finally:
                pooled.last_used = trio.current_time()
                pooled.pool.changed()
            return
        log.debug("%s does not allow extended CONNECT: WebSocket over HTTP/1.1", parsed.origin)
    else:
        # The pooled HTTP/1.1 connection becomes the WebSocket's tunnel and ends with it.
        pooled.dead = True
        pooled.pool.changed()
        async with over(pooled.connection, pooled.dispatcher) as ws:
            yield ws
        return
    timeout = session.connect_timeout
    with trio.fail_after(timeout if timeout is not None else float("inf")):
        connection = await session.open_http1(parsed.origin)
    with single_exception():
        async with connection, trio.open_nursery() as nursery:
            dispatcher = StreamDispatcher(connection)
            nursery.start_soon(dispatcher.run)
            try:
                async with over(connection, dispatcher) as ws:
                    yield ws
            finally:
                nursery.cancel_scope.cancel()

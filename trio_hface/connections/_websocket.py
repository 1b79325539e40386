"""WebSocket messages over one HTTP stream, for the server and the client alike.

Theory of operation
-------------------

Once the handshake (HTTP, see ``_ws_handshake.py``) opened the stream,
:func:`open_websocket` drives wsproto's framing over the stream's bytes:
DATA of an HTTP/2 or HTTP/3 extended CONNECT stream, or the tunnel of an
HTTP/1.1 Upgrade, which all reach us through the stream's
:class:`.StreamInbox` and leave through :meth:`.HTTPConnection.send_data`.

One reader task takes data from the inbox, feeds wsproto and puts each
complete message into a channel of *max_queue* messages. When the
application does not receive, that channel fills, the reader stops taking
data from the inbox, and the inbox stops returning flow-control credit
(HTTP/2, HTTP/3) or stops the connection's reading (HTTP/1.1): the peer is
held back instead of a buffer growing. A message being assembled is bounded
by *max_message_size* (1009), its inflated size too (``BoundedDeflate``).

The reader answers pings and the peer's close at once. Writes of frames go
through one lock, so that frames leave in the order wsproto made them; a
control frame the reader must send while an application's send holds the
lock (waiting for the peer's credit) waits in a slot of one, and the lock's
holder sends it next: the reader never waits behind a big send, so credit
keeps flowing both ways.

Closing: :meth:`WebSocketStream.aclose` sends a close frame and waits for the
peer's, at most *close_timeout*; then we end our side of the stream. Leaving
:func:`open_websocket` does the same with 1000 if nothing was closed yet,
waits (bounded) for the peer to end its side, and otherwise resets the
stream: no task and no stream outlive the block.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio
import wsproto.events as ws_events
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.extensions import Extension
from wsproto.utilities import LocalProtocolError as WSLocalProtocolError

from .._groups import single_exception
from ..errors import WebSocketClosed
from ..events import ConnectionTerminated, DataReceived, StreamReset
from ._connections import CONNECTION_ERRORS, HTTPConnection
from ._inbox import StreamInbox

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_QUEUE",
    "WebSocketStream",
    "open_websocket",
]

log = logging.getLogger(__name__)

#: The largest message received, in bytes (as hypercorn and the websockets
#: library: 16 MiB); a bigger one closes with 1009.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Received messages that wait for the application before the reading stops.
DEFAULT_MAX_QUEUE = 16

#: Seconds the close handshake may take (each way) before the stream is reset.
DEFAULT_CLOSE_TIMEOUT = 10.0

#: Close codes (RFC 6455 section 7.4.1).
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS = 1005
ABNORMAL_CLOSURE = 1006
INTERNAL_ERROR = 1011

Message = str | bytes


class WebSocketStream:
    """A WebSocket over one HTTP stream: messages in and out, pings, the close handshake.

    Obtain one with :func:`open_websocket` (the server's ASGI ``websocket``
    cycle and the client's ``session.websocket(...)`` do); the constructor is
    not public.
    """

    def __init__(
        self,
        connection: HTTPConnection,
        stream_id: int,
        inbox: StreamInbox,
        *,
        client: bool,
        extensions: Sequence[Extension],
        max_message_size: int,
        max_queue: int,
        close_timeout: float,
    ) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self._inbox = inbox
        self._client = client
        self._ws = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER, list(extensions))
        self._max_message_size = max_message_size
        self._close_timeout = close_timeout
        self._send_messages, self._messages = trio.open_memory_channel[Message](max_queue)
        self._lock = trio.Lock()
        self._pending: ws_events.Event | None = None  # a control frame for the lock's holder
        self._pongs: dict[bytes, trio.Event] = {}
        self._ping_count = 0
        self._parts: list[Message] = []
        self._size = 0
        #: Set once the close handshake is over (or the stream ended without one).
        self.closed = trio.Event()
        self._peer_ended = trio.Event()
        self._end_sent = False
        self._failed = False
        self._broken = False  # a send was cancelled part way: only a reset may follow
        self._stream_ended = False  # the peer ended its side (or the stream is gone)
        self._going_away = trio.Event()
        #: The close code: the peer's (or ours, if we failed the connection); ``None`` while open.
        self.close_code: int | None = None
        #: The reason that came with :attr:`close_code`.
        self.close_reason = ""

    # -- application side -------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send a text (``str``) or binary (``bytes``) message, waiting for the peer's credit.

        :raises WebSocketClosed: once the WebSocket is closing or closed
        """
        if isinstance(message, str):
            event: ws_events.Event = ws_events.TextMessage(data=message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            event = ws_events.BytesMessage(data=bytes(message))
        else:
            raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
        await self._write(event)

    async def receive(self) -> Message:
        """The next message: ``str`` for text, ``bytes`` for binary.

        :raises WebSocketClosed: once the peer closed (with its code and reason)
            or the stream ended (1006)
        """
        try:
            return await self._messages.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._closed_error() from None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                message = await self.receive()
            except WebSocketClosed:
                return
            yield message

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping and wait for its pong.

        :param payload: at most 125 bytes (default: a counter)
        :raises WebSocketClosed: if the WebSocket closes first
        """
        if payload is None:
            self._ping_count += 1
            payload = b"%d" % self._ping_count
        if len(payload) > 125:
            raise ValueError(f"a ping payload has at most 125 bytes, not {len(payload)}")
        pong = self._pongs.setdefault(payload, trio.Event())
        await self._write(ws_events.Ping(payload=payload))
        async with trio.open_nursery() as nursery:

            async def until_closed() -> None:
                await self.closed.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_closed)
            await pong.wait()
            nursery.cancel_scope.cancel()
        if not pong.is_set():
            raise self._closed_error()

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake and wait for the peer's close frame, at most the close timeout.

        Idempotent; after it, our side of the stream has ended.
        """
        if self._broken:
            return  # the stream gets reset when the WebSocket's block ends
        try:
            if self._ws.state is ConnectionState.OPEN:
                await self._write(ws_events.CloseConnection(code=code, reason=reason))
        except WebSocketClosed:
            pass
        with trio.move_on_after(self._close_timeout):
            await self.closed.wait()
            if self._client:
                # RFC 6455 section 7.1.1: the server ends the connection (here:
                # its side of the stream) first; the client waits for it.
                await self._peer_ended.wait()
        await self._end_stream()

    def go_away(self) -> None:
        """Close with 1001 (going away) soon, without waiting: the server shuts down."""
        self._going_away.set()

    @property
    def state(self) -> ConnectionState:
        """wsproto's state of the WebSocket."""
        return self._ws.state

    def _closed_error(self) -> WebSocketClosed:
        code = self.close_code if self.close_code is not None else ABNORMAL_CLOSURE
        return WebSocketClosed(code, self.close_reason)

    # -- writing ----------------------------------------------------------------

    async def _write(self, event: ws_events.Event) -> None:
        async with self._lock:
            try:
                data = self._ws.send(event)
            except WSLocalProtocolError:
                raise self._closed_error() from None
            await self._send_bytes(data)
            await self._flush_pending()

    async def _send_bytes(self, data: bytes) -> None:
        if self._end_sent or self._broken:
            raise self._closed_error()
        try:
            await self.connection.send_data(self.stream_id, data)
        except CONNECTION_ERRORS as exc:
            self._lost()
            raise self._closed_error() from exc
        except BaseException:
            # Cancelled part way: a frame may be cut, nothing may follow it.
            self._broken = True
            self._lost()
            raise

    async def _flush_pending(self) -> None:
        while self._pending is not None:
            event, self._pending = self._pending, None
            try:
                data = self._ws.send(event)
            except WSLocalProtocolError:
                continue  # a pong after the close: nothing to answer
            await self._send_bytes(data)

    async def _control(self, event: ws_events.Event) -> None:
        """Send a control frame from the reader without waiting behind a big send."""
        if isinstance(self._pending, ws_events.CloseConnection):
            return  # the close goes out first; nothing follows it
        self._pending = event  # a newer pong replaces an older one (RFC 6455 section 5.5.3)
        if self._lock.locked():
            return  # the holder sends it after its frame
        async with self._lock:
            try:
                await self._flush_pending()
            except WebSocketClosed:
                pass

    async def _end_stream(self) -> None:
        async with self._lock:
            if self._end_sent:  # (another task may have ended it while we waited)
                return
            if self._broken:
                return
            self._end_sent = True
            connection = self.connection
            try:
                if self._stream_ended and connection.multiplexed:
                    # The peer ended its side: close the stream with RST_STREAM
                    # (NO_ERROR) rather than an empty DATA frame, which some
                    # servers (hypercorn 0.18) no longer expect on the stream.
                    await connection.send_stream_reset(self.stream_id, connection.error_codes.no_error)
                else:
                    await connection.send_data(self.stream_id, b"", end_stream=True)
            except CONNECTION_ERRORS:
                self._lost()

    # -- reading ----------------------------------------------------------------

    async def _read(self) -> None:
        """The reader task: inbox -> wsproto -> messages, until the stream or the WebSocket ends."""
        try:
            while not self.closed.is_set() or not self._peer_ended.is_set():
                try:
                    event = await self._inbox.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    self._stream_ended = True
                    break
                if isinstance(event, DataReceived):
                    self._stream_ended = event.end_stream
                    if event.data and self._ws.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
                        self._ws.receive_data(event.data)
                        await self._handle_events()
                    if event.end_stream:
                        break
                elif isinstance(event, (StreamReset, ConnectionTerminated)):
                    self._stream_ended = True
                    break
        finally:
            self._peer_ended.set()
            self._lost()
        if self._client:
            await self._end_stream()  # the server ended its side: end ours

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, ws_events.Message):
                await self._on_message(event)
            elif isinstance(event, ws_events.Ping):
                await self._control(event.response())
            elif isinstance(event, ws_events.Pong):
                pong = self._pongs.pop(bytes(event.payload), None)
                if pong is not None:
                    pong.set()
            elif isinstance(event, ws_events.CloseConnection):
                await self._on_close(event)
                return

    async def _on_message(self, event: ws_events.Message) -> None:  # type: ignore[type-arg]
        data = event.data
        self._size += len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        if self._size > self._max_message_size:
            await self._fail(1009, f"message over {self._max_message_size} bytes")
            return
        self._parts.append(data)
        if not event.message_finished:
            return
        parts, self._parts, self._size = self._parts, [], 0
        message: Message = "".join(parts) if isinstance(data, str) else b"".join(parts)  # type: ignore[arg-type]
        await self._send_messages.send(message)

    async def _on_close(self, event: ws_events.CloseConnection) -> None:
        if self._ws.state is ConnectionState.OPEN:
            # Not a close frame: wsproto could not parse what came (a
            # protocol error, invalid UTF-8, a message too big): fail.
            await self._fail(event.code, event.reason or "")
            return
        self.close_code = NO_STATUS if event.code is None else int(event.code)
        self.close_reason = event.reason or ""
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            await self._control(event.response())  # echo the code (RFC 6455 section 5.5.1)
        self._send_messages.close()
        self.closed.set()
        if not self._client:
            await self._end_stream()  # the server ends first (a client waits for it, see aclose)

    async def _fail(self, code: int, reason: str) -> None:
        """Fail the WebSocket (RFC 6455 section 7.1.7): send our close with *code*, stop reading."""
        log.info("WebSocket on stream %d failed: %d %s", self.stream_id, code, reason)
        self.close_code, self.close_reason = code, reason
        self._failed = True
        self._send_messages.close()
        if self._ws.state is ConnectionState.OPEN:
            self._pending = None
            await self._control(ws_events.CloseConnection(code=code, reason=reason[:120]))
        self.closed.set()
        await self._end_stream()
        self._peer_ended.set()  # what follows is not read

    def _lost(self) -> None:
        """The stream ended: whatever was open is closed now (1006 if no close came)."""
        if self.close_code is None:
            self.close_code = ABNORMAL_CLOSURE
        self._send_messages.close()
        self.closed.set()

    # -- keeping alive ------------------------------------------------------------

    async def _keepalive(self, interval: float, pong_timeout: float) -> None:
        while not self.closed.is_set():
            await trio.sleep(interval)
            with trio.move_on_after(pong_timeout) as waited:
                try:
                    await self.ping()
                except WebSocketClosed:
                    return
            if waited.cancelled_caught:
                log.info("WebSocket on stream %d: no pong within %s s", self.stream_id, pong_timeout)
                self.close_code, self.close_reason = ABNORMAL_CLOSURE, "keepalive ping timeout"
                self._lost()
                return

    async def _watch_going_away(self) -> None:
        await self._going_away.wait()
        await self.aclose(GOING_AWAY, "going away")


@asynccontextmanager
async def open_websocket(
    connection: HTTPConnection,
    stream_id: int,
    inbox: StreamInbox,
    *,
    client: bool,
    extensions: Sequence[Extension] = (),
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_queue: int = DEFAULT_MAX_QUEUE,
    ping_interval: float | None = None,
    ping_timeout: float | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> AsyncIterator[WebSocketStream]:
    """Run a WebSocket over a stream whose handshake succeeded.

    :param connection: the stream's connection
    :param stream_id: the stream (an HTTP/1.1 tunnel after 101, or an
        accepted extended CONNECT)
    :param inbox: the stream's inbox, from the connection's dispatcher
    :param client: whether we are the client (we mask our frames)
    :param extensions: the negotiated extensions (permessage-deflate)
    :param max_message_size: the largest message received, in bytes
    :param max_queue: received messages that may wait for :meth:`~WebSocketStream.receive`
    :param ping_interval: seconds between our pings (``None``: no pings)
    :param ping_timeout: seconds a pong may take before the peer counts as gone
        (default: *ping_interval*)
    :param close_timeout: seconds each half of the close handshake may take

    Leaving the block closes the WebSocket with 1000 if it is still open,
    ends the stream, and resets it if the peer does not end its side within
    *close_timeout*. Cancellation leaves it reset.
    """
    ws = WebSocketStream(
        connection,
        stream_id,
        inbox,
        client=client,
        extensions=extensions,
        max_message_size=max_message_size,
        max_queue=max_queue,
        close_timeout=close_timeout,
    )
    with single_exception():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws._read)
            nursery.start_soon(ws._watch_going_away)
            if ping_interval is not None:
                nursery.start_soon(ws._keepalive, ping_interval, ping_timeout or ping_interval)
            try:
                yield ws
            finally:
                with trio.move_on_after(2 * close_timeout, shield=True):
                    await _finish(ws, close_timeout)
                nursery.cancel_scope.cancel()


async def _finish(ws: WebSocketStream, close_timeout: float) -> None:
    """Close (1000) if still open, end our side, give the peer time to end its side, else reset."""
    if ws._broken:
        pass  # a cut frame: reset at once
    elif not ws.closed.is_set():
        await ws.aclose(NORMAL_CLOSURE)
    else:
        await ws._end_stream()
    if not ws._broken:
        with trio.move_on_after(close_timeout):
            await ws._peer_ended.wait()
    if ws._failed or ws._broken or not ws._stream_ended:
        # The peer broke the protocol or does not end its side: reset (HTTP/1.1: close).
        try:
            await ws.connection.send_stream_reset(ws.stream_id, ws.connection.error_codes.cancel)
        except CONNECTION_ERRORS:
            pass

"""The connections of a client's pool, and the exchanges (request and response) on them.

Theory of operation
-------------------

Each pooled connection is owned by a *runner* task in the session's nursery:
it enters the connection (``async with``) and routes the connection's events
to the exchange (request/response) of each stream through a
:class:`~trio_hface.connections.StreamInbox`. An exchange takes its events
from the inbox as the caller reads the response, and only then does the
data's flow-control credit go back to the server: a caller that stops
reading holds back its own stream's window (HTTP/2, HTTP/3), and the other
streams of the connection go on; on HTTP/1.1 a full inbox stops the runner
and TCP pushes back. Memory stays bounded by the windows either way.

A connection knows its pool only through :class:`PoolNotifier` (tell it
that something changed, wait for a change, forget me), so this module does
not import the pool or the session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable
from typing import Protocol

import trio

from .._typing import HeadersType
from ..connections import CONNECTION_ERRORS, HTTPConnection, StreamDispatcher, StreamInbox
from ..errors import (
    ConnectionLost,
    ReadTimeout,
    RemoteProtocolError,
    RequestRefused,
    StreamResetError,
    WriteTimeout,
)
from ..events import (
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    StreamReset,
    StreamResetReceived,
)
from ._models import Origin, Request, Response

__all__ = ["Exchange", "PooledConnection", "PoolNotifier"]

log = logging.getLogger(__name__)

#: Informational (1xx) responses accepted before the final one.
MAX_INFORMATIONAL = 32

#: The largest piece of a ``bytes`` body sent under one ``write_timeout`` when
#: there is one: HTTP/2's default initial window (RFC 9113 section 6.9.2), so a
#: piece needs about one WINDOW_UPDATE, and a server that takes less than
#: 64 KiB per ``write_timeout`` (about 1 KiB/s with the default) is given up.
UPLOAD_CHUNK = 65535


class PoolNotifier(Protocol):
    """What a pooled connection tells its pool (:class:`.ConnectionPool` implements it)."""

    def changed(self, origin: Origin | None = None) -> None:
        """Something changed for *origin*: a connection became usable, ended, or an exchange finished."""

    def remove(self, pooled: PooledConnection) -> None:
        """The connection ended: forget it."""


class PooledConnection:
    """One connection of the pool and the task that routes its events.

    :param pool: what to tell of changes
    :param origin: the origin the connection serves
    :param connection: the connection, not yet entered
    :param keepalive_interval: seconds between PINGs of an idle HTTP/2 connection, or ``None``
    :param idle_timeout: seconds after which an unused connection is closed, or ``None``
    """

    def __init__(
        self,
        pool: PoolNotifier,
        origin: Origin,
        connection: HTTPConnection,
        *,
        keepalive_interval: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.pool = pool
        self.origin = origin
        self.connection = connection
        self.keepalive_interval = keepalive_interval
        self.idle_timeout = idle_timeout
        version = connection.http_version
        self._http_version = "1.1" if version == "1" else version
        self._one_at_a_time = not connection.multiplexed
        self.dispatcher = StreamDispatcher(
            connection, on_goaway=self._on_goaway, on_ping_ack=lambda _: self._pong.set()
        )
        self.dead = False
        self.goaway = False
        # Streams the server's GOAWAY left unprocessed: their requests may be sent again.
        self.refused: set[int] = set()
        # Why the connection ended, when the server broke the protocol: the
        # exchanges on it fail with this (and are not sent again).
        self.failure: str | None = None
        self.last_used = trio.current_time()
        self._pong = trio.Event()
        # Set when the last exchange in progress ends (the idle clock starts).
        self._idle = trio.Event()
        # Set by retire(): the pool needs the room, close the connection now.
        self._retired = trio.Event()

    @property
    def http_version(self) -> str:
        """``"1.1"``, ``"2"`` or ``"3"``."""
        return self._http_version

    @property
    def channels(self) -> dict[int, StreamInbox]:
        """The inbox of each exchange in progress, by stream."""
        return self.dispatcher.inboxes

    def usable(self) -> bool:
        """Whether a new request may start on this connection now."""
        if self.dead or self.goaway:
            return False
        if self._one_at_a_time and self.dispatcher.inboxes:
            return False  # HTTP/1.1 with an exchange in progress: no need to ask the protocol
        return self.connection.is_available()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the connection: enter it, route its events, forget it when it ends."""
        try:
            async with self.connection, trio.open_nursery() as nursery:
                task_status.started()
                if self.keepalive_interval is not None and self.connection.http_version == "2":
                    nursery.start_soon(self._keepalive, self.keepalive_interval)
                # Closes the connection when idle too long, or retired to make room.
                nursery.start_soon(self._expire, self.idle_timeout)
                await self.dispatcher.run()  # until it ends, or HTTP/1.1 the server closes
                event = self.dispatcher.terminated
                if event is not None:
                    log.debug("connection to %s ended: %r", self.origin, event)
                    if event.error_code != self.connection.error_codes.no_error:
                        self.failure = event.message
                # Done: the exchanges learn it now, not when the keep-alive task
                # notices, and the connection says goodbye on the way out.
                self._end_exchanges()
                nursery.cancel_scope.cancel()
        finally:
            self._end_exchanges()
            self.channels.clear()
            self.pool.remove(self)

    def _on_goaway(self, event: GoawayReceived) -> None:
        self.goaway = True
        self._refuse_above(event.last_stream_id)
        self.pool.changed(self.origin)

    def _end_exchanges(self) -> None:
        self.dead = True
        self.dispatcher.end_all()

    def _refuse_above(self, last_stream_id: int) -> None:
        """End the exchanges on streams the GOAWAY says the server will not process."""
        for stream_id in [s for s in self.channels if s > last_stream_id]:
            self.refused.add(stream_id)
            self.channels.pop(stream_id).end()
        if not self.channels:
            self._idle.set()

    def retire(self) -> None:
        """Take the connection out of the pool at once and have it closed (to make room for another).

        Synchronous: the pool no longer counts it, no request starts on it,
        and its runner closes it (saying goodbye) right after.
        """
        log.debug("closing the idle connection to %s to make room", self.origin)
        self.dead = True
        self._retired.set()
        self.pool.remove(self)

    async def _expire(self, idle_timeout: float | None) -> None:
        """Close the connection once no request has used it for *idle_timeout* seconds, or once retired."""
        while not self._retired.is_set():
            # Asleep until the idle deadline: not woken by each request (whose
            # start and end only move the deadline that it finds on waking).
            deadline = math.inf if idle_timeout is None else self.last_used + idle_timeout
            if trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await self._retired.wait()
                continue
            if self.channels:
                self._idle = trio.Event()
                await self._idle.wait()  # in use for that long: look again when its last request ends
                continue
            log.debug("connection to %s idle for %.0f s: closing it", self.origin, idle_timeout)
            break
        self.dead = True  # no request may start on it from now on
        self.pool.changed(self.origin)
        await self.connection.aclose()

    async def _keepalive(self, interval: float) -> None:
        """PING an idle HTTP/2 connection now and then; give it up when no acknowledgement comes."""
        while True:
            await trio.sleep(interval)
            if self.channels or trio.current_time() - self.last_used < interval:
                continue  # in use: its traffic shows it is alive
            self._pong = trio.Event()
            try:
                await self.connection.send_ping(b"keepaliv")
            except CONNECTION_ERRORS:
                return
            with trio.move_on_after(interval) as scope:
                await self._pong.wait()
            if scope.cancelled_caught:
                log.info(
                    "no PING acknowledgement from %s in %.0f s: closing the connection", self.origin, interval
                )
                self.dead = True
                self.pool.changed(self.origin)
                await self.connection.aclose()
                return

    def start_exchange(self) -> Exchange:
        """Reserve a stream for a request (before any checkpoint, so the ID is ours)."""
        stream_id = self.connection.get_available_stream_id()
        inbox = self.dispatcher.open_inbox(stream_id)
        self.last_used = trio.current_time()
        return Exchange(self, stream_id, inbox)

    def finish_exchange(self, exchange: Exchange) -> None:
        self.dispatcher.close_inbox(exchange.stream_id)
        self.refused.discard(exchange.stream_id)
        self.last_used = trio.current_time()
        if not self.channels:
            self._idle.set()
        self.pool.changed(self.origin)


class Exchange:
    """One request and its response on a pooled connection."""

    def __init__(self, pooled: PooledConnection, stream_id: int, events: StreamInbox) -> None:
        self.pooled = pooled
        self.connection = pooled.connection
        self.stream_id = stream_id
        self._events = events
        self.response_complete = False
        self.request_complete = False
        self.trailers: list[tuple[bytes, bytes]] = []

    async def send_request(
        self,
        request: Request,
        headers: HeadersType,
        nursery: trio.Nursery | None,
        write_timeout: float | None = None,
    ) -> None:
        """Send the headers now and the body in a task of *nursery*, alongside reading the response.

        A request without a body needs no nursery. The upload task raises
        :class:`.WriteTimeout` when a piece of the body (at most
        :data:`UPLOAD_CHUNK` bytes of a ``bytes`` body, or one chunk of an
        iterable) is not taken within *write_timeout* seconds.
        """
        content = request.content
        empty = isinstance(content, bytes) and not content
        # Not waited for: they go out now (written here when the socket takes
        # them at once, else by the writer while this task goes on to wait for
        # the response, or to send the body: a body may wait for a 100
        # Continue). A failed write ends the connection, and so the exchange.
        if empty:
            self.connection.submit_headers(self.stream_id, headers, end_stream=True, data_follows=True)
            await self.connection.send_submitted()
            self.request_complete = True
        else:
            self.connection.submit_headers(self.stream_id, headers, end_stream=False)
            await trio.lowlevel.checkpoint_if_cancelled()
            if nursery is None:
                raise ValueError("a request with a body needs a nursery for its upload")
            nursery.start_soon(self._send_body, content, write_timeout)

    async def _send_body(self, content: bytes | AsyncIterable[bytes], write_timeout: float | None) -> None:
        try:
            if isinstance(content, bytes):
                if write_timeout is None or len(content) <= UPLOAD_CHUNK:
                    await self._send_piece(content, True, write_timeout)
                else:
                    for start in range(0, len(content), UPLOAD_CHUNK):
                        end = start + UPLOAD_CHUNK
                        await self._send_piece(content[start:end], end >= len(content), write_timeout)
            else:
                async for chunk in content:
                    if chunk:
                        await self._send_piece(bytes(chunk), False, write_timeout)
                await self._send_piece(b"", True, write_timeout)
            self.request_complete = True
        except CONNECTION_ERRORS as exc:
            if isinstance(exc, WriteTimeout):
                raise
            # The response (or its absence) tells the caller what happened.
            log.debug("request body not sent completely: %r", exc)

    async def _send_piece(self, data: bytes, end_stream: bool, write_timeout: float | None) -> None:
        """Send a piece of the body; raise :class:`.WriteTimeout` if it is not taken in *write_timeout*."""
        if write_timeout is None:
            await self.connection.send_data(self.stream_id, data, end_stream=end_stream)
            return
        with trio.move_on_after(write_timeout) as scope:
            await self.connection.send_data(self.stream_id, data, end_stream=end_stream)
        if scope.cancelled_caught:
            raise WriteTimeout(
                f"{self.pooled.origin} took no request data for {write_timeout} s "
                f"({len(data)} bytes were waiting)"
            )

    @property
    def http_version(self) -> str:
        """``"1.1"``, ``"2"`` or ``"3"``: the version of the connection."""
        return self.pooled.http_version

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send *data* on the exchange's stream (a tunnel's bytes), waiting for flow-control credit."""
        await self.connection.send_data(self.stream_id, data, end_stream=end_stream)

    async def next_event(self, read_timeout: float | None) -> Event:
        """The next event of the exchange's stream (a checkpoint, as a stream's receive is).

        :raises ConnectionLost: if the connection ended first
        :raises RequestRefused: if the server said it will not process the request
        :raises RemoteProtocolError: if the server broke the protocol
        :raises ReadTimeout: if nothing came in *read_timeout* seconds
        """
        deadline = math.inf if read_timeout is None else trio.current_time() + read_timeout
        with trio.move_on_at(deadline):
            try:
                return await self._events.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise self._ended() from None
        raise ReadTimeout(f"no response data from {self.pooled.origin} in {read_timeout} s")

    async def _next_body_event(self, read_timeout: float | None) -> Event:
        """As :meth:`next_event`, but an event that already waits is taken at once, without a
        checkpoint or a cancel scope: the rest of a small response usually came with its head.
        (What waits is bounded by the inbox, so a reader still reaches a checkpoint soon.)"""
        try:
            return self._events.receive_nowait()
        except trio.WouldBlock:
            return await self.next_event(read_timeout)
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._ended() from None

    def _ended(self) -> Exception:
        """What a read of the stream raises once its events ended."""
        if self.stream_id in self.pooled.refused:
            return RequestRefused(
                self.stream_id,
                self.connection.error_codes.refused_stream,
                f"{self.pooled.origin} did not process the request (GOAWAY)",
            )
        if self.pooled.failure is not None:
            return RemoteProtocolError(
                f"the connection to {self.pooled.origin} failed: {self.pooled.failure}"
            )
        return ConnectionLost(f"the connection to {self.pooled.origin} ended")

    async def receive_head(self, read_timeout: float | None) -> Response:
        """Wait for the final response's headers (informational ones are collected)."""
        informational: list[tuple[int, list[tuple[bytes, bytes]]]] = []
        while True:
            event = await self.next_event(read_timeout)
            if isinstance(event, HeadersReceived):
                status_value = dict(event.headers).get(b":status", b"")
                try:
                    status = int(status_value)
                except ValueError:
                    raise RemoteProtocolError(f"invalid :status {status_value!r}") from None
                headers = [(n, v) for n, v in event.headers if not n.startswith(b":")]
                if 100 <= status < 200:
                    if len(informational) >= MAX_INFORMATIONAL:
                        raise RemoteProtocolError(f"more than {MAX_INFORMATIONAL} informational responses")
                    informational.append((status, headers))
                    continue
                self.response_complete = event.end_stream
                return Response(
                    status, headers, http_version=self.pooled.http_version, informational=informational
                )
            if isinstance(event, StreamResetReceived):
                if event.error_code == self.connection.error_codes.refused_stream:
                    raise RequestRefused(
                        self.stream_id, event.error_code, f"{self.pooled.origin} refused the request"
                    )
                raise StreamResetError(self.stream_id, event.error_code)
            if isinstance(event, StreamReset):
                raise StreamResetError(self.stream_id, event.error_code, "the stream was reset")

    async def receive_body(self, read_timeout: float | None) -> AsyncIterable[bytes]:
        """Yield body chunks until the response ends; collect trailers."""
        while not self.response_complete:
            chunk = self._body_event(await self._next_body_event(read_timeout))
            if chunk:
                yield chunk

    async def read_body_within(self, read_timeout: float | None, limit: int) -> bytes | None:
        """Read the rest of the body if it is at most *limit* bytes; else stop and return ``None``."""
        chunks: list[bytes] = []
        size = 0
        while not self.response_complete:
            chunk = self._body_event(await self._next_body_event(read_timeout))
            if chunk:
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    async def read_body(self, read_timeout: float | None) -> bytes:
        """Read the rest of the body (as :meth:`receive_body` does, in one piece)."""
        chunks: list[bytes] = []
        while not self.response_complete:
            chunk = self._body_event(await self._next_body_event(read_timeout))
            if chunk:
                chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _body_event(self, event: Event) -> bytes | None:
        """Take an event of the body: its data, if it has some; trailers are kept."""
        if isinstance(event, DataReceived):
            self.response_complete = event.end_stream
            return event.data
        if isinstance(event, HeadersReceived):
            self.trailers = [(n, v) for n, v in event.headers if not n.startswith(b":")]
            self.response_complete = True
        elif isinstance(event, StreamReset):
            raise StreamResetError(self.stream_id, event.error_code)
        return None

    def release_nowait(self) -> bool:
        """Release the stream if that needs no I/O (the response was read to its end, or the
        connection is gone); return whether it did. Otherwise :meth:`aclose` must reset it."""
        if not self.response_complete and not self.pooled.dead:
            return False
        self._events.close()
        self.pooled.finish_exchange(self)
        return True

    async def aclose(self) -> None:
        """Release the stream: reset it if the response was not read to the end."""
        if self.release_nowait():
            return
        self._events.close()
        try:
            await self.connection.send_stream_reset(self.stream_id, self.connection.error_codes.cancel)
        except CONNECTION_ERRORS:
            pass
        self.pooled.finish_exchange(self)

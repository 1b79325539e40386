"""ASGI 3 ``websocket`` scope on one HTTP stream: the handshake, then messages.

Theory of operation
-------------------

:class:`WebSocketCycle` takes over a request stream whose headers ask for a
WebSocket (``Upgrade: websocket`` on HTTP/1.1, extended CONNECT with
``:protocol websocket`` on HTTP/2 and HTTP/3). A request that breaks the
handshake (no valid ``Sec-WebSocket-Key``, another version) is answered 400
(426 on HTTP/1.1 for a version other than 13) without the application.
Otherwise the application sees ``websocket.connect``; its
``websocket.accept`` sends 101 (HTTP/1.1) or 200 (HTTP/2, HTTP/3) and starts
the shared WebSocket driver (:func:`trio_hface.connections.open_websocket`)
in a task of the cycle's own nursery, which ends with the application. A
``websocket.close`` before accepting answers 403; the denial response
extension (``websocket.http.response.start`` / ``.body``) answers with the
application's own response instead.

Backpressure, limits, pings and the close handshake are the driver's; see
:class:`WebSocketConfig` for the settings.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from .._typing import HeadersType
from ..connections import (
    CONNECTION_ERRORS,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUE,
    HTTPConnection,
    StreamInbox,
    WebSocketStream,
    accept_extensions,
    accept_key,
    header_tokens,
    open_websocket,
    valid_key,
)
from ..errors import ASGIError, WebSocketClosed
from . import _asgi
from ._access_log import AccessLog
from ._asgi import ASGIApp, ClientDisconnected, build_scope, request_target, wait_stream_end

__all__ = ["WebSocketConfig", "WebSocketCycle"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WebSocketConfig:
    """How :class:`ASGIServer` runs WebSockets (``ASGIServer(app, websocket_config=...)``)."""

    #: The largest message received, in bytes; a bigger one closes with 1009.
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: Received messages that wait for the application before the server
    #: stops reading the WebSocket (and flow control holds back the client).
    max_queue: int = DEFAULT_MAX_QUEUE
    #: Seconds between the server's pings (``None``: no pings).
    ping_interval: float | None = None
    #: Seconds a pong may take before the client counts as gone (default: the interval).
    ping_timeout: float | None = None
    #: Seconds each half of the close handshake may take.
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    #: Accept permessage-deflate when the client offers it.
    compression: bool = True

    def __post_init__(self) -> None:
        if self.max_message_size < 1 or self.max_queue < 1:
            raise ValueError(
                f"max_message_size and max_queue must be at least 1, not {self.max_message_size}, {self.max_queue}"
            )


class WebSocketCycle:
    """One WebSocket between a stream and an ASGI application. Created by the server; not public API."""

    def __init__(
        self,
        connection: HTTPConnection,
        stream_id: int,
        request_headers: HeadersType,
        events: StreamInbox,
        *,
        config: WebSocketConfig,
        open_sockets: set[WebSocketStream],
        extra_response_headers: HeadersType = (),
        root_path: str = "",
        request_ended: bool = False,
        access_log: AccessLog | None = None,
    ) -> None:
        self._started = trio.current_time()
        self._access_log = access_log
        self._body_sent = 0  # of a denial response
        self.connection = connection
        self.stream_id = stream_id
        self._headers = request_headers
        self._events = events
        self._config = config
        self._open_sockets = open_sockets
        self._extra_headers = list(extra_response_headers)
        self._request_ended = request_ended
        scope = build_scope(connection, request_headers, root_path=root_path)
        tls = bool(connection.extra_attributes.get("tls_version")) or scope["scheme"] == "https"
        del scope["method"]
        self.subprotocols = header_tokens(request_headers, b"sec-websocket-protocol")
        scope.update(
            type="websocket",
            asgi={"version": "3.0", "spec_version": "2.4"},
            scheme="wss" if tls else "ws",
            subprotocols=self.subprotocols,
            extensions={"websocket.http.response": {}},
        )
        self.scope = scope
        self._connect_sent = False
        self._ws: WebSocketStream | None = None
        self._start: Callable[[], Awaitable[WebSocketStream]] | None = None
        self._app_done = trio.Event()
        self._response_status: int | None = None  # the denial response, once started
        self._response_done = False
        self._disconnected = False
        self._failed = False
        self._extensions: list[Any] = []
        self.status = 0

    # -- the request ------------------------------------------------------------

    def _refusal(self) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """What is wrong with the handshake request, if anything: status, text, extra headers."""
        multiplexed = self.connection.multiplexed
        version = header_tokens(self._headers, b"sec-websocket-version")
        if version != ["13"]:
            # RFC 6455 section 4.4: say which version we speak.
            return (
                (400 if multiplexed else 426),
                "WebSocket version 13 only",
                [(b"sec-websocket-version", b"13")],
            )
        if multiplexed:
            if self._request_ended:
                return 400, "an extended CONNECT stream must stay open", []
            return None
        key = next((v for n, v in self._headers if n == b"sec-websocket-key"), None)
        if not valid_key(key):
            return 400, "invalid Sec-WebSocket-Key", []
        return None

    # -- ASGI receive -------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive`` callable."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        if self._ws is None:
            if not self._disconnected:
                await self._wait_gone()
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        try:
            message = await self._ws.receive()
        except WebSocketClosed as closed:
            self._disconnected = True
            return {"type": "websocket.disconnect", "code": closed.code, "reason": closed.reason}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def _wait_gone(self) -> None:
        """Before an accept, nothing comes but the end of the stream."""
        await wait_stream_end(self._events)
        self._disconnected = True

    # -- ASGI send ----------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        """The ASGI ``send`` callable.

        :raises ClientDisconnected: once the WebSocket is closed
        """
        try:
            await self._send(message)
        except WebSocketClosed as exc:
            raise ClientDisconnected(str(exc)) from exc
        except CONNECTION_ERRORS as exc:
            if isinstance(exc, ASGIError):
                raise
            self._disconnected = True
            raise ClientDisconnected(f"the client is gone: {exc}") from exc

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.accept":
            await self._accept(message)
        elif kind == "websocket.send":
            if self._ws is None:
                raise ASGIError("websocket.send before websocket.accept")
            text, data = message.get("text"), message.get("bytes")
            if (text is None) == (data is None):
                raise ASGIError("websocket.send needs exactly one of text and bytes")
            await self._ws.send(str(text) if text is not None else bytes(data or b""))
        elif kind == "websocket.close":
            if self._ws is None:
                if self._response_status is not None:
                    raise ASGIError("websocket.close after websocket.http.response.start")
                await self._respond(403, b"Forbidden\n")
                return
            await self._ws.aclose(int(message.get("code", 1000)), str(message.get("reason") or ""))
        elif kind == "websocket.http.response.start":
            if self._ws is not None or self._response_status is not None:
                raise ASGIError("websocket.http.response.start after the handshake was answered")
            status = message.get("status")
            if not isinstance(status, int) or not 200 <= status <= 999 or status == 101:
                raise ASGIError(f"invalid status {status!r} in websocket.http.response.start")
            self._response_status = status
            headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", [])]
            await self.connection.send_headers(
                self.stream_id, [(b":status", b"%d" % status), *headers, *self._extra_headers]
            )
        elif kind == "websocket.http.response.body":
            if self._response_status is None or self._response_done:
                raise ASGIError("websocket.http.response.body without a response in progress")
            more = bool(message.get("more_body", False))
            body = bytes(message.get("body", b""))
            await self.connection.send_data(self.stream_id, body, end_stream=not more)
            self._body_sent += len(body)
            if not more:
                self._response_done = True
                self._log(self._response_status)
        else:
            raise ASGIError(f"unexpected ASGI message {kind!r} on a websocket scope")

    async def _accept(self, message: MutableMapping[str, Any]) -> None:
        if self._ws is not None or self._response_status is not None:
            raise ASGIError("websocket.accept after the handshake was answered")
        if not self._connect_sent:
            raise ASGIError("websocket.accept before receiving websocket.connect")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ASGIError(f"subprotocol {subprotocol!r} was not offered by the client")
        headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", [])]
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
        extensions: list[Any] = []
        if self._config.compression:
            offers = header_tokens(self._headers, b"sec-websocket-extensions")
            extensions, value = accept_extensions(offers, self._config.max_message_size)
            if value is not None:
                headers.append((b"sec-websocket-extensions", value.encode("ascii")))
        if self.connection.multiplexed:
            head = [(b":status", b"200"), *headers]
        else:
            key = next(v for n, v in self._headers if n == b"sec-websocket-key")
            head = [
                (b":status", b"101"),
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", accept_key(key)),
                *headers,
            ]
        await self.connection.send_headers(self.stream_id, [*head, *self._extra_headers])
        self._log(int(head[0][1]))
        assert self._start is not None
        self._extensions = extensions
        self._ws = await self._start()

    async def _hold(self, task_status: trio.TaskStatus[WebSocketStream]) -> None:
        """The task that owns the WebSocket until the application returns."""
        config = self._config
        async with open_websocket(
            self.connection,
            self.stream_id,
            self._events,
            client=False,
            extensions=self._extensions,
            max_message_size=config.max_message_size,
            max_queue=config.max_queue,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            close_timeout=config.close_timeout,
        ) as ws:
            self._open_sockets.add(ws)
            try:
                task_status.started(ws)
                await self._app_done.wait()
                if self._failed and not ws.closed.is_set():
                    await ws.aclose(1011, "internal error")
            finally:
                self._open_sockets.discard(ws)

    async def _respond(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        head = [
            (b":status", b"%d" % status),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            *(headers or []),
            *self._extra_headers,
        ]
        self._response_status = status
        await self.connection.send_headers(self.stream_id, head)
        await self.connection.send_data(self.stream_id, body, end_stream=True)
        self._body_sent += len(body)
        self._response_done = True
        self._log(status)

    def _log(self, status: int) -> None:
        self.status = status
        if self._access_log is not None:
            self._access_log.write(
                self.scope,
                target=request_target(self._headers),
                method="WEBSOCKET",
                status=status,
                bytes_sent=self._body_sent,
                started=self._started,
                ended=trio.current_time(),
                worker=_asgi.worker_index,
            )

    # -- running ------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Check the handshake, run the application, and close what it left open."""
        refusal = self._refusal()
        if refusal is not None:
            status, text, headers = refusal
            log.info("WebSocket handshake refused on stream %d: %s", self.stream_id, text)
            try:
                await self._respond(status, text.encode() + b"\n", headers)
            except CONNECTION_ERRORS:
                pass
            return
        async with trio.open_nursery() as nursery:
            # The WebSocket's task lives in this nursery, which outlives the
            # application's call; accept starts it there.
            self._start = lambda: nursery.start(self._hold)
            try:
                await app(self.scope, self.receive, self.send)
            except Exception as exc:
                if not isinstance(exc, ClientDisconnected):
                    log.exception("ASGI application failed on WebSocket %s", self.scope["path"])
                    self._failed = True
            finally:
                self._app_done.set()
            await self._after_app()

    async def _after_app(self) -> None:
        """Answer a handshake the application left unanswered: 500 after a failure, else 403."""
        if self._ws is not None or self._response_done:
            return
        try:
            if self._response_status is not None:
                await self.connection.send_stream_reset(
                    self.stream_id, self.connection.error_codes.internal_error
                )
            elif not self._disconnected:
                if self._failed:
                    await self._respond(500, b"Internal Server Error\n")
                else:
                    await self._respond(403, b"Forbidden\n")
        except CONNECTION_ERRORS as exc:
            log.debug("cannot answer the WebSocket handshake: %r", exc)

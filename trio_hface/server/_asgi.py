"""ASGI 3 on one HTTP stream: the ``http`` scope, ``receive`` and ``send``.

Theory of operation
-------------------

The connection's dispatcher (see ``_server.py``) owns ``receive_event`` and
routes the events of each stream into that stream's
:class:`~trio_hface.connections.StreamInbox`; one task per request runs the
application with :class:`RequestCycle`'s ``receive`` and ``send``.
``receive`` takes body events from the inbox, and only then does the
data's flow-control credit go back to the peer: a slow application holds
back its own request's sender (HTTP/2 and HTTP/3 windows), never the other
requests of the connection. On HTTP/1.1 a full inbox stops the dispatcher,
and TCP pushes back. ``send`` writes through the connection, which waits
for the peer's credit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

import trio

from .._typing import AddressType, HeadersType
from ..connections import CONNECTION_ERRORS, HTTPConnection, StreamInbox
from ..errors import ASGIError
from ..events import ConnectionTerminated, DataReceived, HeadersReceived, StreamReset
from ._access_log import AccessLog

__all__ = ["ASGIApp", "ClientDisconnected", "RequestCycle", "build_scope", "request_target"]

log = logging.getLogger(__name__)

#: The index of this worker process, named in the access log (``None``: not a worker).
worker_index: int | None = None

#: An ASGI 3 application.
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

_ASGI_VERSIONS = {"1": "1.1", "2": "2", "3": "3"}


def build_scope(connection: HTTPConnection, headers: HeadersType, *, root_path: str = "") -> dict[str, Any]:
    """Build the ASGI ``http`` scope of a request from its HTTP/2-style headers.

    With a *root_path*, ``path`` and ``raw_path`` start with it: a path that
    does not (a reverse proxy removed the prefix) gets it put in front.
    """
    # One pass over the headers: the pseudo-headers (the last of a name wins),
    # the regular fields in order, and whether Host is among them.
    method_value = b"GET"
    authority = path_value = scheme_value = protocol = None
    regular: list[tuple[bytes, bytes]] = []
    has_host = False
    for name, value in headers:
        if name.startswith(b":"):
            if name == b":method":
                method_value = value
            elif name == b":path":
                path_value = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme_value = value
            elif name == b":protocol":
                protocol = value
        else:
            if name == b"host":
                has_host = True
            regular.append((name, value))
    method = method_value.decode("ascii", "replace")
    # A CONNECT has no path, but an extended CONNECT (:protocol, RFC 8441) has one.
    if method != "CONNECT" or protocol is not None:
        raw_path = b"/" if path_value is None else path_value
    else:
        raw_path = b""
    path, _, query = raw_path.partition(b"?")
    if root_path:
        # ASGI: the path includes root_path (PATH_INFO is the path with root_path
        # stripped), so the prefix that a reverse proxy took off goes back on.
        prefix = root_path.encode("utf-8")
        if path != prefix and not path.startswith(prefix + b"/"):
            path = prefix + path
    if authority is not None and not has_host:
        regular.insert(0, (b"host", authority))
    extra = connection.extra_attributes
    if scheme_value is not None:
        scheme = scheme_value
    else:
        scheme = b"https" if extra.get("tls_version") else b"http"
    server: AddressType | None = extra.get("local_address")
    client: AddressType | None = extra.get("remote_address")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": _ASGI_VERSIONS.get(connection.http_version, connection.http_version),
        "method": method,
        "scheme": scheme.decode("ascii", "replace"),
        "path": unquote_to_bytes(path).decode("utf-8", "replace"),
        "raw_path": path,
        "query_string": query,
        "root_path": root_path,
        "headers": regular,
        "client": list(client) if client else None,
        "server": list(server) if server else None,
        "extensions": {"http.response.trailers": {}},
    }
    if protocol is not None:
        scope["extensions"]["http.extended_connect"] = {"protocol": protocol.decode("ascii", "replace")}
    return scope


class ClientDisconnected(OSError):
    """Raised by ``send`` when the client went away (ASGI asks servers for an :exc:`OSError` subclass)."""


async def wait_stream_end(events: StreamInbox) -> None:
    """Wait until the request's stream ends: reset, the connection gone, or its inbox ended."""
    while True:
        try:
            event = await events.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return
        if isinstance(event, (StreamReset, ConnectionTerminated)):
            return


class RequestCycle:
    """One request and its response, between a stream and an ASGI application.

    Created by the server for each request; not public API.
    """

    def __init__(
        self,
        connection: HTTPConnection,
        stream_id: int,
        request_headers: HeadersType,
        events: StreamInbox,
        *,
        request_ended: bool,
        extra_response_headers: HeadersType = (),
        root_path: str = "",
        read_timeout: float | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self._started = trio.current_time()
        self._access_log = access_log
        self._read_timeout = read_timeout
        self.connection = connection
        self.stream_id = stream_id
        self.scope = build_scope(connection, request_headers, root_path=root_path)
        self._request_headers = request_headers
        self._events = events
        self._request_ended = request_ended
        self._body_complete_sent = False
        self._extra_headers = list(extra_response_headers)
        # A request that ended has no body to invite (and nothing to look for).
        self._expect_continue = not request_ended and any(
            name == b"expect" and value.lower() == b"100-continue" for name, value in request_headers
        )
        self._continue_sent = False
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._trailers_expected = False
        self._headers_sent = False
        self.response_started = False
        self.response_complete = False
        self.disconnected = False
        self.bytes_sent = 0

    # -- ASGI receive -------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive`` callable."""
        if self.disconnected:
            return {"type": "http.disconnect"}
        if self._request_ended:
            if not self._body_complete_sent:
                # A request without a body (or whose end came with its headers).
                self._body_complete_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Nothing more to read: wait until the peer goes away.
            await self._wait_disconnect()
            return {"type": "http.disconnect"}
        if self._expect_continue and not self._continue_sent and not self.response_started:
            # RFC 9110 section 10.1.1: the application reads the body, so invite it.
            self._continue_sent = True
            await self.connection.send_headers(self.stream_id, [(b":status", b"100")])
        while True:
            timeout = self._read_timeout if self._read_timeout is not None else float("inf")
            with trio.move_on_after(timeout) as waited:
                try:
                    event = await self._events.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    self.disconnected = True
                    return {"type": "http.disconnect"}
            if waited.cancelled_caught:
                await self._body_timed_out()
                return {"type": "http.disconnect"}
            if isinstance(event, DataReceived):
                self._request_ended = self._body_complete_sent = event.end_stream
                if not event.data and not event.end_stream:
                    continue
                return {"type": "http.request", "body": event.data, "more_body": not event.end_stream}
            if isinstance(event, HeadersReceived) and event.end_stream:  # trailers: the body is over
                self._request_ended = self._body_complete_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if isinstance(event, (StreamReset, ConnectionTerminated)):
                self.disconnected = True
                return {"type": "http.disconnect"}

    async def _respond_plain(self, status: int, body: bytes, *, close: bool = False) -> None:
        """Answer in the application's stead with a short text (an error it could not give)."""
        self._status = status
        self._headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        if close and not self.connection.multiplexed:  # connection-specific: HTTP/1.1 only
            self._headers.append((b"connection", b"close"))
        self._trailers_expected = False
        self.response_started = True
        await self._send_headers(end_stream=False)
        await self.connection.send_data(self.stream_id, body, end_stream=True)
        self.bytes_sent = len(body)
        self._finish()

    async def _body_timed_out(self) -> None:
        """The client stopped sending its body: answer 408 (or reset) and treat it as gone."""
        log.info("request body on stream %d stalled for %s s", self.stream_id, self._read_timeout)
        try:
            if not self.response_started:
                await self._respond_plain(408, b"Request Timeout\n", close=True)
            else:
                await self.connection.send_stream_reset(self.stream_id, self.connection.error_codes.cancel)
        except CONNECTION_ERRORS:
            pass
        self.disconnected = True

    async def _wait_disconnect(self) -> None:
        await wait_stream_end(self._events)
        self.disconnected = True

    # -- ASGI send ------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        """The ASGI ``send`` callable.

        :raises ClientDisconnected: if the client went away
        """
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        try:
            await self._send(message)
        except CONNECTION_ERRORS as exc:
            if isinstance(exc, ASGIError):
                raise
            self.disconnected = True
            raise ClientDisconnected(f"the response cannot be sent: {exc}") from exc

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self.response_started:
                raise ASGIError("http.response.start sent twice")
            status = message.get("status")
            if not isinstance(status, int) or not 100 <= status <= 999:
                raise ASGIError(f"invalid status {status!r} in http.response.start")
            if status < 200:
                raise ASGIError(
                    "informational responses are sent by the server, not with http.response.start"
                )
            self._status = status
            self._headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", [])]
            self._trailers_expected = bool(message.get("trailers", False))
            self.response_started = True
        elif kind == "http.response.body":
            if not self.response_started:
                raise ASGIError("http.response.body before http.response.start")
            if self.response_complete:
                raise ASGIError("http.response.body after the response ended")
            # RFC 9110 section 9.3.2: a response to HEAD has no content (its
            # content-length tells what GET would send); HTTP/2 and HTTP/3 peers
            # reset a stream that carries some.
            body = b"" if self.scope["method"] == "HEAD" else bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            end = not more and not self._trailers_expected
            if not self._headers_sent:
                if end and not body:
                    await self._send_headers(end_stream=True)
                    self._finish()
                    return
                # The head goes out with the first piece of the body, in one write
                # (an empty piece that does not end the body is not sent: the writer takes the head).
                self.connection.submit_headers(
                    self.stream_id, self._response_head(), end_stream=False, data_follows=bool(body)
                )
                self._headers_sent = True
            if body or end:
                await self.connection.send_data(self.stream_id, body, end_stream=end)
                self.bytes_sent += len(body)
            if end:
                self._finish()
        elif kind == "http.response.trailers":
            if not self._trailers_expected or not self.response_started:
                raise ASGIError("http.response.trailers without trailers=True in http.response.start")
            if not self._headers_sent:
                await self._send_headers(end_stream=False)
            trailers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", [])]
            if message.get("more_trailers", False):
                raise ASGIError("more_trailers is not supported: send all trailers at once")
            await self.connection.send_headers(self.stream_id, trailers, end_stream=True)
            self._finish()
        else:
            raise ASGIError(f"unexpected ASGI message {kind!r} on an http scope")

    def _response_head(self) -> list[tuple[bytes, bytes]]:
        assert self._status is not None
        return [(b":status", b"%d" % self._status), *self._headers, *self._extra_headers]

    async def _send_headers(self, *, end_stream: bool) -> None:
        headers = self._response_head()
        self._headers_sent = True
        await self.connection.send_headers(self.stream_id, headers, end_stream=end_stream)

    def _finish(self) -> None:
        self.response_complete = True
        if self._access_log is not None and self._access_log.active():
            self._access_log.write(
                self.scope,
                target=request_target(self._request_headers),
                method=self.scope["method"],
                status=self._status or 0,
                bytes_sent=self.bytes_sent,
                started=self._started,
                ended=trio.current_time(),
                worker=worker_index,
            )

    # -- running ------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Run the application for this request; answer 500 or reset on failure."""
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            if isinstance(exc, ClientDisconnected):
                return
            log.exception("ASGI application failed on %s %s", self.scope["method"], self.scope["path"])
            await self._fail()
            return
        if not self.response_complete and not self.disconnected:
            log.error("ASGI application returned without completing the response")
            await self._fail()

    async def _fail(self) -> None:
        try:
            if not self.response_started and not self.disconnected:
                await self._respond_plain(500, b"Internal Server Error\n")
            elif not self.response_complete and not self.disconnected:
                await self.connection.send_stream_reset(
                    self.stream_id, self.connection.error_codes.internal_error
                )
        except CONNECTION_ERRORS as exc:
            log.debug("cannot report the failure to the client: %r", exc)


def request_target(headers: HeadersType) -> bytes:
    """The ``:path`` of a request as received (with its query), for the access log."""
    for name, value in headers:
        if name == b":path":
            return value
    return b""

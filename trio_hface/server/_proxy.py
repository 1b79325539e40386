"""ProxyServer: CONNECT tunnels over HTTP/1.1, HTTP/2 and HTTP/3.

Theory of operation
-------------------

Each CONNECT request (RFC 9110 section 9.3.6, RFC 9113 section 8.5, RFC 9114
section 4.4) opens a TCP connection to its ``:authority`` and relays bytes
both ways until both sides are done. Two tasks per tunnel:

* client to target: DATA of the stream is written to the target as the
  stream's events are taken, so a slow target stops the taking, and the
  client's flow-control window closes; the client's end of stream becomes a
  half-close (``send_eof``) of the target connection;
* target to client: what the target sends goes out as DATA, waiting for the
  client's flow-control credit; the target's EOF ends the stream.

A target that cannot be reached gets ``502 Bad Gateway`` with the reason in
the body; a destination outside the allow-list gets ``403 Forbidden``; a
broken tunnel resets its stream with the version's CONNECT_ERROR.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ..connections import CLOSE_TIMEOUT, CONNECTION_ERRORS, HTTPConnection, StreamInbox
from ..errors import HFaceError
from ..events import ConnectionTerminated, DataReceived, HeadersReceived, StreamReset
from ._config import ServerConfig, ServerSettings
from ._server import StreamServer

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:  # pragma: no cover
        from typing_extensions import Unpack

__all__ = ["ProxyServer"]

log = logging.getLogger(__name__)

#: Bytes read from the target at once.
RELAY_CHUNK = 65536


class ProxyServer(StreamServer):
    """A CONNECT proxy: tunnels TCP connections through HTTP/1.1, HTTP/2 and HTTP/3.

    Serve it with :meth:`run`, as :class:`ASGIServer`.

    :param config: the settings shared with :class:`ASGIServer` (see
        :class:`ServerConfig`; default ``ServerConfig()``). Here the
        connections are those of clients, each may carry many tunnels over
        HTTP/2 and HTTP/3, and one with a tunnel open is busy (never
        evicted); ``idle_timeout`` is 300 seconds unless set, and
        ``alt_svc`` is ignored: a proxy never sends ``alt-svc``
    :param allow: destinations that may be reached, as ``host:port`` patterns
        with shell wildcards (``"*.example.com:443"``, ``"127.0.0.1:*"``);
        ``None`` allows every destination
    :param connect_timeout: seconds to reach a destination
    :param settings: any field of :class:`ServerConfig` as a keyword argument,
        which overrides the field of *config* (as for :class:`ASGIServer`)
    :raises ValueError: for a setting out of range (see :class:`ServerConfig`)
    """

    #: The idle timeout when the configuration leaves it ``None``.
    DEFAULT_IDLE_TIMEOUT = 300.0

    def __init__(
        self,
        *,
        config: ServerConfig | None = None,
        allow: Sequence[str] | None = None,
        connect_timeout: float = 10.0,
        **settings: Unpack[ServerSettings],
    ) -> None:
        super().__init__(config, **settings)
        self.allow = list(allow) if allow is not None else None
        self.connect_timeout = connect_timeout

    def _configure(self, config: ServerConfig) -> ServerConfig:
        return dataclasses.replace(super()._configure(config), alt_svc=False)

    def allowed(self, host: str, port: int) -> bool:
        """Whether the allow-list lets a tunnel reach ``host:port``."""
        if self.allow is None:
            return True
        target = f"{host.lower()}:{port}"
        return any(fnmatch.fnmatchcase(target, pattern.lower()) for pattern in self.allow)

    async def run_stream(
        self,
        connection: HTTPConnection,
        event: HeadersReceived,
        events: StreamInbox,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        tunnel = _Tunnel(self, connection, event, events)
        try:
            await tunnel.run()
        except CONNECTION_ERRORS as exc:
            log.debug("tunnel on stream %d ended: %r", event.stream_id, exc)


class _Tunnel:
    def __init__(
        self,
        proxy: ProxyServer,
        connection: HTTPConnection,
        event: HeadersReceived,
        events: StreamInbox,
    ) -> None:
        self.proxy = proxy
        self.connection = connection
        self.stream_id = event.stream_id
        self.headers = dict(event.headers)
        self.events = events

    async def respond(self, status: int, reason: str) -> None:
        body = reason.encode() + b"\n"
        headers = [
            (b":status", b"%d" % status),
            (b"content-type", b"text/plain"),
            (b"content-length", b"%d" % len(body)),
        ]
        if status == 405:  # RFC 9110 15.5.6: say which method is supported
            headers.append((b"allow", b"CONNECT"))
        await self.connection.send_headers(self.stream_id, headers)
        await self.connection.send_data(self.stream_id, body, end_stream=True)

    async def run(self) -> None:
        method = self.headers.get(b":method")
        if method != b"CONNECT" or b":protocol" in self.headers:
            await self.respond(405, "this proxy only tunnels with CONNECT")
            return
        authority = self.headers.get(b":authority", b"").decode("ascii", "replace")
        host, _, port_text = authority.rpartition(":")
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            await self.respond(400, f"CONNECT needs host:port, not {authority!r}")
            return
        port = int(port_text)
        if not self.proxy.allowed(host, port):
            log.info("CONNECT to %s:%d refused by the allow-list", host, port)
            await self.respond(403, f"{host}:{port} is not an allowed destination")
            return
        try:
            with trio.fail_after(self.proxy.connect_timeout):
                target = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            reason = "timed out" if isinstance(exc, trio.TooSlowError) else (exc.strerror or str(exc))
            log.info("CONNECT to %s:%d failed: %s", host, port, reason)
            await self.respond(502, f"cannot reach {host}:{port}: {reason}")
            return
        async with target:
            await self.connection.send_headers(self.stream_id, [(b":status", b"200")])
            log.info("tunnel to %s:%d open on stream %d", host, port, self.stream_id)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._client_to_target, target, nursery.cancel_scope)
                nursery.start_soon(self._target_to_client, target, nursery.cancel_scope)

    async def _client_to_target(self, target: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while True:
                try:
                    event = await self.events.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    scope.cancel()
                    return
                if isinstance(event, DataReceived):
                    if event.data:
                        await target.send_all(event.data)
                    if event.end_stream:
                        await target.send_eof()  # half-close: the target may still answer
                        return
                elif isinstance(event, HeadersReceived) and event.end_stream:
                    await target.send_eof()
                    return
                elif isinstance(event, (StreamReset, ConnectionTerminated)):
                    scope.cancel()  # the client gave up: drop the target connection
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._abort(scope)
        except HFaceError as exc:  # the client's side of the stream is gone
            log.debug("tunnel on stream %d: %r", self.stream_id, exc)
            scope.cancel()

    async def _target_to_client(self, target: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while True:
                data = await target.receive_some(RELAY_CHUNK)
                if not data:
                    await self.connection.send_data(self.stream_id, b"", end_stream=True)
                    return
                await self.connection.send_data(self.stream_id, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._abort(scope)
        except HFaceError as exc:  # the client reset the stream meanwhile
            log.debug("tunnel on stream %d: %r", self.stream_id, exc)
            scope.cancel()

    async def _abort(self, scope: trio.CancelScope) -> None:
        """The target connection broke: reset the stream (CONNECT_ERROR) and stop both directions."""
        scope.cancel()
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):  # our own deadline, not the cancelled one
            try:
                await self.connection.send_stream_reset(
                    self.stream_id, self.connection.error_codes.connect_error
                )
            except CONNECTION_ERRORS:
                pass

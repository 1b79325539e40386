"""ASGIServer: ASGI applications over HTTP/1.1, HTTP/2 and HTTP/3.

Theory of operation
-------------------

:meth:`ASGIServer.run` binds a listener per endpoint (TCP, and UDP at the
same port number when HTTP/3 is served) and runs them with one task per
connection, and in it one task per request (see ``_asgi.py``).

Shutdown is graceful whatever starts it (cancellation of ``run``, or
:meth:`ASGIServer.shutdown`): the listeners and connections run inside a
shielded scope that only the server ends. It stops accepting, asks every
connection to drain (GOAWAY on HTTP/2 and HTTP/3, ``Connection: close`` on
HTTP/1.1), lets requests in flight finish until ``graceful_timeout``, then
cancels what is left, closes the connections (each bounded by its own close
timeout) and runs the lifespan shutdown.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from .._groups import single_exception
from .._models import ServerTLSConfig
from ..connections import (
    CLOSE_TIMEOUT,
    CONNECTION_ERRORS,
    ConnectionLimit,
    DispatchEnd,
    HTTPConnection,
    HTTPListener,
    HTTPOverQUICListener,
    HTTPOverTCPListener,
    StreamDispatcher,
    StreamInbox,
    WebSocketStream,
    is_websocket_request,
)
from ..events import (
    HeadersReceived,
)
from ..networking import ServerNetworking
from ..networking._tls import check_server_tls
from ..protocols import ALPNHTTPFactory, HTTPOverQUICServerFactory, HTTPOverTCPFactory
from ..protocols.http1 import HTTP1ServerFactory
from ..protocols.http2 import HTTP2ServerFactory
from ..protocols.http3 import HTTP3ServerFactory
from ._access_log import AccessLog
from ._asgi import ASGIApp, RequestCycle
from ._config import ConfigAttribute, ServerConfig, ServerSettings
from ._lifespan import LIFESPAN_TIMEOUT, Lifespan
from ._models import Endpoint, ServerProtocol, naming_endpoint
from ._websocket import WebSocketConfig, WebSocketCycle
from ._workers import WorkerMode

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:  # pragma: no cover
        from typing_extensions import Unpack

__all__ = ["ASGIServer", "StreamServer"]

log = logging.getLogger(__name__)
#: Where shutdown starts and ends are told (``INFO``): a logger of its own, so
#: that the command line shows these lines and not the rest of ``INFO``.
lifecycle_log = logging.getLogger("trio_hface.server.lifecycle")


#: Seconds that closing may take after the graceful period (listeners, the
#: goodbyes of connections): the deadline of the shields around shutdown.
SHUTDOWN_MARGIN = 5.0

#: How long clients may cache an Alt-Svc advertisement, in seconds (a day).
ALT_SVC_MAX_AGE = 86400


class StreamServer(WorkerMode):
    """What the ASGI server and the proxy server share: endpoints, listeners,
    a task per connection and per stream, graceful shutdown. Not public API.
    """

    #: The keep-alive timeout when the configuration leaves it ``None``.
    DEFAULT_IDLE_TIMEOUT = 60.0

    # The fields of the configuration in effect, as attributes of the server.
    tls_config = ConfigAttribute[ServerTLSConfig | None]()
    protocol = ConfigAttribute[ServerProtocol]()
    http1_factory = ConfigAttribute[HTTPOverTCPFactory]()
    http2_factory = ConfigAttribute[HTTPOverTCPFactory]()
    http3_factory = ConfigAttribute[HTTPOverQUICServerFactory]()
    alt_svc = ConfigAttribute[bool]()
    graceful_timeout = ConfigAttribute[float]()
    idle_timeout = ConfigAttribute[float]()
    handshake_timeout = ConfigAttribute[float]()
    max_connections = ConfigAttribute[int | None]()
    max_connections_per_address = ConfigAttribute[int | None]()
    quic_retry = ConfigAttribute[bool]()

    def __init__(self, config: ServerConfig | None = None, **settings: Unpack[ServerSettings]) -> None:
        #: The configuration in effect: *config* with the keyword arguments
        #: applied and the server's defaults filled in (its factories and
        #: ``idle_timeout`` are never ``None``).
        self.config = self._configure(dataclasses.replace(config or ServerConfig(), **settings))
        self._init_state()

    def _init_state(self) -> None:
        """The state of a run: what a copy in a worker process starts afresh."""
        self._shutdown = trio.Event()
        self._connections: set[_ConnectionHandler] = set()
        self._alt_svc_headers: dict[int, list[tuple[bytes, bytes]]] = {}
        # The sockets to listen on (None: SystemNetworking); a worker's are bound beforehand.
        self._networking: ServerNetworking | None = None
        # The Retry token key that worker processes share (None: the listeners' own).
        self._retry_key: bytes | None = None

    #: Attributes of a run, left out when a server is pickled for a worker process.
    _RUN_STATE: tuple[str, ...] = (
        "_shutdown",
        "_connections",
        "_alt_svc_headers",
        "_networking",
        "_retry_key",
        "_serving_done",
        "_bound",
    )

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._RUN_STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    def _configure(self, config: ServerConfig) -> ServerConfig:
        """Fill in the server's defaults where *config* leaves them to it."""
        return dataclasses.replace(
            config,
            http1_factory=HTTP1ServerFactory() if config.http1_factory is None else config.http1_factory,
            http2_factory=HTTP2ServerFactory() if config.http2_factory is None else config.http2_factory,
            http3_factory=HTTP3ServerFactory() if config.http3_factory is None else config.http3_factory,
            idle_timeout=self.DEFAULT_IDLE_TIMEOUT if config.idle_timeout is None else config.idle_timeout,
        )

    async def run_stream(
        self,
        connection: HTTPConnection,
        event: HeadersReceived,
        events: StreamInbox,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Handle one request stream (subclasses implement it)."""
        raise NotImplementedError

    async def _startup(self, nursery: trio.Nursery) -> None:
        """Before listening (the ASGI lifespan startup)."""

    async def _cleanup(self) -> None:
        """After the last connection ended (the ASGI lifespan shutdown)."""

    def _stopped(self) -> None:
        """The run is over, whether :meth:`_cleanup` ran or its deadline passed first."""

    def _shutdown_by(self, deadline: float) -> None:
        """Shutdown started: whatever :meth:`_startup` left running must end by *deadline*."""

    def shutdown(self) -> None:
        """Start a graceful shutdown; :meth:`run` returns when it is done."""
        self._shutdown.set()

    @property
    def requests_in_flight(self) -> int:
        """The requests (and tunnels, WebSockets) this process serves now, over every connection."""
        return sum(len(handler._channels) for handler in self._connections)

    async def run(
        self,
        endpoints: Sequence[Endpoint | str],
        *,
        task_status: trio.TaskStatus[list[Endpoint]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled or :meth:`shutdown`, then shut down gracefully.

        Starts (``task_status.started``) once every endpoint accepts, with the
        endpoints as bound (port 0 replaced by the real port).

        :param endpoints: where to listen: :class:`Endpoint` objects or
            strings such as ``"https://localhost:8443"``
        :raises ValueError: for an endpoint this configuration cannot serve
        :raises TLSConfigError: if the certificate or key cannot be used (before the lifespan starts)
        :raises ListenError: an :class:`OSError` naming the endpoint that cannot be bound
        """
        parsed = [e if isinstance(e, Endpoint) else Endpoint.parse(e) for e in endpoints]
        if not parsed:
            raise ValueError("give at least one endpoint")
        self._check_endpoints(parsed)
        with single_exception():
            async with trio.open_nursery() as outer:
                await self._startup(outer)
                served = False
                try:
                    await outer.start(self._serve, parsed)
                    served = True
                    task_status.started(self._bound)
                    try:
                        await self._shutdown.wait()
                    finally:
                        self._shutdown.set()  # cancellation: tell the shielded part to shut down
                finally:
                    # The serving part ends within its own deadline (see _serve).
                    deadline = (
                        trio.current_time() + self.graceful_timeout + SHUTDOWN_MARGIN + LIFESPAN_TIMEOUT
                    )
                    self._shutdown_by(deadline)
                    with trio.move_on_at(deadline, shield=True):
                        await self._serving_done.wait()
                        with trio.move_on_after(LIFESPAN_TIMEOUT):
                            await self._cleanup()
                    outer.cancel_scope.cancel()
                    self._stopped()
                    if served:
                        lifecycle_log.info("shut down")

    async def _serve(self, endpoints: list[Endpoint], task_status: trio.TaskStatus[None]) -> None:
        self._serving_done = trio.Event()
        try:
            listeners, self._bound, alt_svc = await self._create_listeners(endpoints)
        except BaseException:
            self._serving_done.set()
            raise
        self._alt_svc_headers = alt_svc
        try:
            # Shielded: only the server decides when connections stop (graceful shutdown).
            with trio.CancelScope(shield=True) as serving:
                async with trio.open_nursery() as accepting:
                    async with trio.open_nursery() as connections:
                        for listener in listeners:
                            await accepting.start(
                                functools.partial(listener.serve, self._handle, handler_nursery=connections)
                            )
                        task_status.started()
                        await self._shutdown.wait()
                        # From now on the shield has a deadline of its own: the
                        # graceful period, then a margin for saying goodbye.
                        serving.deadline = trio.current_time() + self.graceful_timeout + SHUTDOWN_MARGIN
                        in_flight = self.requests_in_flight
                        lifecycle_log.info(
                            "shutting down: waiting up to %g s for %d %s in flight",
                            self.graceful_timeout,
                            in_flight,
                            "request" if in_flight == 1 else "requests",
                        )
                        for listener in listeners:
                            await listener.aclose()
                        for handler in list(self._connections):
                            connections.start_soon(handler.drain)
                        connections.cancel_scope.deadline = trio.current_time() + self.graceful_timeout
                    # Every connection has ended: stop the accept loops (and QUIC routing).
                    accepting.cancel_scope.cancel()
        finally:
            self._serving_done.set()

    async def _create_listeners(
        self, endpoints: list[Endpoint]
    ) -> tuple[list[HTTPListener], list[Endpoint], dict[int, list[tuple[bytes, bytes]]]]:
        listeners: list[HTTPListener] = []
        bound: list[Endpoint] = []
        # One budget for every endpoint and transport.
        limit = None
        if self.max_connections is not None or self.max_connections_per_address is not None:
            limit = ConnectionLimit(
                self.max_connections, max_connections_per_address=self.max_connections_per_address
            )
        alt_svc: dict[int, list[tuple[bytes, bytes]]] = {}
        try:
            for endpoint in endpoints:
                tcp_factory = self._tcp_factory(endpoint)
                tls = self.tls_config if endpoint.tls else None
                if endpoint.tls and tls is None:
                    raise ValueError(f"{endpoint} needs a TLS configuration (certificate and key)")
                port = endpoint.port
                if tcp_factory is not None:
                    with naming_endpoint(endpoint):
                        tcp = await HTTPOverTCPListener.create(
                            tcp_factory,
                            self._networking,
                            local_address=endpoint.address,
                            tls_config=tls,
                            handshake_timeout=self.handshake_timeout,
                            idle_timeout=self.idle_timeout,
                            connection_limit=limit,
                        )
                    listeners.append(tcp)
                    port = tcp.addresses[0][1]
                    bound += [Endpoint(endpoint.scheme, host, p) for host, p in tcp.addresses]
                if self._serves_http3(endpoint):
                    assert tls is not None
                    with naming_endpoint(Endpoint(endpoint.scheme, endpoint.host, port), udp=True):
                        quic = await HTTPOverQUICListener.create(
                            self.http3_factory,
                            self._networking,
                            local_address=(endpoint.host, port),
                            tls_config=tls,
                            retry=self.quic_retry,
                            retry_key=self._retry_key,
                            connection_limit=limit,
                        )
                    listeners.append(quic)
                    if tcp_factory is None:
                        bound += [Endpoint("https", host, p) for host, p in quic.addresses]
                    elif self.alt_svc:
                        # RFC 7838: the TCP origin offers HTTP/3 on the same port.
                        alt_svc[port] = [(b"alt-svc", b'h3=":%d"; ma=%d' % (port, ALT_SVC_MAX_AGE))]
        except BaseException:
            with trio.move_on_after(SHUTDOWN_MARGIN, shield=True):
                for listener in listeners:
                    await listener.aclose()
            raise
        return listeners, bound, alt_svc

    # -- worker processes (see _workers.py) ---------------------------------

    def _transports(self, endpoint: Endpoint) -> tuple[bool, bool]:
        """Whether *endpoint* is served on TCP, and on QUIC.

        :raises ValueError: for an endpoint this configuration cannot serve
        """
        tcp = self._tcp_factory(endpoint) is not None
        if endpoint.tls and self.tls_config is None:
            raise ValueError(f"{endpoint} needs a TLS configuration (certificate and key)")
        return tcp, self._serves_http3(endpoint)

    def _check_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Refuse what this configuration cannot serve (endpoints, certificate), before anything listens."""
        served = [(*self._transports(endpoint), endpoint.tls) for endpoint in endpoints]
        if self.tls_config is not None:
            tcp, quic = any(t and tls for t, _, tls in served), any(q for _, q, _ in served)
            check_server_tls(self.tls_config, tcp=tcp, quic=quic)

    def _become_worker(
        self,
        networking: ServerNetworking,
        http3_factory: HTTPOverQUICServerFactory | None,
        retry_key: bytes,
    ) -> None:
        """In a worker process: listen on the sockets of *networking*, issue routed
        connection IDs, and share the Retry token key."""
        self._networking = networking
        self._retry_key = retry_key
        if http3_factory is not None:
            self.http3_factory = http3_factory

    async def _wait_shutdown(self) -> None:
        await self._shutdown.wait()

    @property
    def _stop_timeout(self) -> float:
        return self.graceful_timeout + SHUTDOWN_MARGIN + LIFESPAN_TIMEOUT

    def _tcp_factory(self, endpoint: Endpoint) -> HTTPOverTCPFactory | None:
        protocol = self.protocol
        if protocol is ServerProtocol.HTTP3:
            if not endpoint.tls:
                raise ValueError(f"HTTP/3 needs TLS: use https://, not {endpoint}")
            return None
        if protocol is ServerProtocol.HTTP1:
            return self.http1_factory
        if protocol is ServerProtocol.HTTP2:
            return self.http2_factory
        if not endpoint.tls:
            return self.http1_factory  # without TLS there is no ALPN: HTTP/1.1
        return ALPNHTTPFactory([self.http2_factory, self.http1_factory])

    def _serves_http3(self, endpoint: Endpoint) -> bool:
        return endpoint.tls and self.protocol in (ServerProtocol.ALL, ServerProtocol.HTTP3)

    async def _handle(self, connection: HTTPConnection) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if connection.http_version != "3":
            local = connection.extra_attributes.get("local_address")
            if local is not None:
                extra = self._alt_svc_headers.get(local[1], [])
        handler = _ConnectionHandler(self, connection, extra)
        self._connections.add(handler)
        try:
            if self._shutdown.is_set():
                await handler.drain()
            await handler.run()
        finally:
            self._connections.discard(handler)


class _ConnectionHandler:
    """Routes one connection's events to its requests, and drains on shutdown."""

    def __init__(
        self, server: StreamServer, connection: HTTPConnection, extra_headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._server = server
        self._connection = connection
        self._extra_headers = extra_headers
        self._requests: trio.Nursery | None = None
        self._dispatcher = StreamDispatcher(
            connection, on_new_stream=self._on_new_stream, start_stream=self._start_stream
        )
        # Each request's task starts with a copy of this (see _start_stream).
        self._context = contextvars.copy_context()
        self._channels = self._dispatcher.inboxes
        self._dispatch = trio.CancelScope()
        self._draining = False
        # The keep-alive clock: it runs while no request is in progress, from
        # the connection's start or the end of its last request. Input that
        # does not make a request (a trickled HTTP/1.1 head, HTTP/2 PINGs)
        # does not reset it, so such a peer cannot hold the connection.
        self._idle_since = trio.current_time()
        # Our place in the connection limit: busy while a stream is in flight.
        self._slot = connection.connection_slot

    async def drain(self) -> None:
        """Ask the peer to stop opening streams; end the connection once the open ones are done."""
        if self._draining:
            return
        self._draining = True
        try:
            await self._connection.send_goaway()
        except CONNECTION_ERRORS:
            pass
        if not self._channels:
            self._dispatch.cancel()

    async def run(self) -> None:
        end = None
        async with trio.open_nursery() as self._requests:
            with self._dispatch:
                self._dispatcher.receive_deadline = self._keepalive_deadline()
                end = await self._dispatcher.run()
                if end is DispatchEnd.DEADLINE:
                    log.debug("no request for %.1f s: closing the connection", self._server.idle_timeout)
            if end is DispatchEnd.TERMINATED:
                self._requests.cancel_scope.cancel()  # the peer is gone: nobody to answer
            self._dispatcher.end_all()

    def _start_stream(self, event: HeadersReceived) -> bool:
        """Start serving a new request, or ignore headers that start none; ``False`` if it
        must be refused instead (which waits). Never blocks: the connection's router calls it."""
        if not any(n == b":method" for n, _ in event.headers):
            return True  # trailers of a request we are done with
        if self._draining and self._connection.multiplexed:
            return False
        assert self._requests is not None
        inbox = self._dispatcher.open_inbox(event.stream_id)
        self._dispatcher.receive_deadline = math.inf  # a request in progress: no keep-alive clock
        if self._slot is not None:
            self._slot.set_busy()  # a request in flight: the connection limit must not evict it
        # In the handler's context, whichever task routes the headers: the one that
        # finished the previous response, for a request pipelined behind it, must not
        # pass its context (what its application set in contextvars) to this one.
        self._context.run(self._requests.start_soon, self._run_request, event, inbox)
        return True

    async def _on_new_stream(self, event: HeadersReceived) -> None:
        if not self._start_stream(event):
            await self._refuse(event.stream_id)

    async def _refuse(self, stream_id: int) -> None:
        try:
            await self._connection.send_stream_reset(stream_id, self._connection.error_codes.refused_stream)
        except CONNECTION_ERRORS:
            pass

    def _keepalive_deadline(self) -> float:
        if self._channels:
            return math.inf
        return self._idle_since + self._server.idle_timeout

    async def _run_request(
        self,
        event: HeadersReceived,
        inbox: StreamInbox,
    ) -> None:
        try:
            try:
                await self._server.run_stream(self._connection, event, inbox, self._extra_headers)
            except Exception:
                # One stream's failure must not end the connection's other streams.
                log.exception("stream %d failed", event.stream_id)
                with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    try:
                        await self._connection.send_stream_reset(
                            event.stream_id, self._connection.error_codes.internal_error
                        )
                    except CONNECTION_ERRORS:
                        pass
        finally:
            self._dispatcher.close_inbox(event.stream_id)
            if not self._channels:
                self._idle_since = trio.current_time()
                self._dispatcher.receive_deadline = self._keepalive_deadline()
                if self._slot is not None:
                    self._slot.set_idle()  # evictable again, as the connection idle for the shortest time
            expired = not self._connection.multiplexed and self._connection.has_expired()
            if (self._draining or expired) and not self._channels:
                # Nothing more will be served here (an HTTP/1.1 "Connection:
                # close" exchange ended, or we drain): end the connection.
                self._dispatch.cancel()


class ASGIServer(StreamServer):
    """Serves an ASGI 3 application over HTTP/1.1, HTTP/2 and HTTP/3.

    :param app: the ASGI application
    :param config: the settings shared with :class:`ProxyServer` (see
        :class:`ServerConfig`; default ``ServerConfig()``)
    :param root_path: the ASGI ``root_path`` of every request
    :param read_timeout: seconds the application may wait for the next piece
        of a request body before the request is answered with 408 (or reset)
    :param websocket_config: how WebSockets run (message size, queue, pings;
        default ``WebSocketConfig()``)
    :param access_log: where the access log goes: ``None`` (the default)
        for the logger ``trio_hface.server.access`` at level ``INFO``,
        ``"-"`` for standard output, or the name of a file to append to
        (opened by each process that serves)
    :param access_log_format: the line of each response, a :meth:`str.format`
        string of the fields in :data:`~trio_hface.server.ACCESS_LOG_FIELDS`
        (``None``: :data:`~trio_hface.server.DEFAULT_ACCESS_LOG_FORMAT`,
        after ``[{time}] `` when *access_log* is a file or ``"-"``)
    :param settings: any field of :class:`ServerConfig` as a keyword argument
        (``tls_config``, ``protocol``, ``http1_factory``, ``http2_factory``,
        ``http3_factory``, ``alt_svc``, ``graceful_timeout``,
        ``idle_timeout``, ``handshake_timeout``, ``max_connections``,
        ``max_connections_per_address``, ``quic_retry``), which overrides the field of *config*
    :raises ValueError: for a setting out of range (see :class:`ServerConfig`),
        a *root_path* that does not start with ``/``, or an access log
        format with an unknown field

    The fields of :attr:`config` are attributes of the server too
    (``server.idle_timeout``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: ServerConfig | None = None,
        root_path: str = "",
        read_timeout: float | None = 60.0,
        websocket_config: WebSocketConfig | None = None,
        access_log: str | None = None,
        access_log_format: str | None = None,
        **settings: Unpack[ServerSettings],
    ) -> None:
        if root_path and not root_path.startswith("/"):
            raise ValueError(f"root_path must start with /, not {root_path!r}")
        self.app = app
        #: How WebSockets run.
        self.websocket_config = websocket_config or WebSocketConfig()
        self._access_log = AccessLog(access_log, access_log_format)
        super().__init__(config, **settings)
        #: The ASGI ``root_path``, without a trailing ``/``.
        self.root_path = root_path.rstrip("/")
        self.read_timeout = read_timeout

    _RUN_STATE = (*StreamServer._RUN_STATE, "_lifespan", "_websockets")

    def _init_state(self) -> None:
        super()._init_state()
        self._lifespan = Lifespan(self.app)
        self._websockets: set[WebSocketStream] = set()

    async def _startup(self, nursery: trio.Nursery) -> None:
        self._lifespan = Lifespan(self.app)
        self._access_log.open()
        try:
            await self._lifespan.startup(nursery)
        except BaseException:
            self._access_log.close()
            raise

    async def _cleanup(self) -> None:
        await self._lifespan.shutdown()

    def _stopped(self) -> None:
        self._access_log.close()

    def _shutdown_by(self, deadline: float) -> None:
        self._lifespan.end_by(deadline)
        for websocket in list(self._websockets):
            websocket.go_away()  # close with 1001, within the graceful period

    async def run_stream(
        self,
        connection: HTTPConnection,
        event: HeadersReceived,
        events: StreamInbox,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        if is_websocket_request(event.headers):
            websocket = WebSocketCycle(
                connection,
                event.stream_id,
                event.headers,
                events,
                config=self.websocket_config,
                open_sockets=self._websockets,
                extra_response_headers=extra_headers,
                root_path=self.root_path,
                request_ended=event.end_stream,
                access_log=self._access_log,
            )
            websocket.scope["state"] = dict(self._lifespan.state)
            await websocket.run(self.app)
            return
        cycle = RequestCycle(
            connection,
            event.stream_id,
            event.headers,
            events,
            request_ended=event.end_stream,
            extra_response_headers=extra_headers,
            root_path=self.root_path,
            read_timeout=self.read_timeout,
            access_log=self._access_log,
        )
        # ASGI lifespan state: each request gets a shallow copy of what startup put there.
        cycle.scope["state"] = dict(self._lifespan.state)
        await cycle.run(self.app)

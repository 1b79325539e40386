"""Client and ClientSession: HTTP requests over pooled connections of any version."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._groups import single_exception
from .._models import ClientTLSConfig
from .._typing import HeadersType
from ..connections import (
    CLOSE_TIMEOUT,
    HTTPConnection,
    HTTPOverQUICOpener,
    HTTPOverTCPConnection,
    HTTPOverTCPOpener,
)
from ..errors import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    PoolTimeout,
    RequestRefused,
)
from ..networking import client_ssl_context
from ..protocols import ALPNHTTPFactory, HTTPOverQUICClientFactory, HTTPOverTCPFactory
from ..protocols.http1 import HTTP1ClientFactory
from ..protocols.http2 import HTTP2ClientFactory
from ..protocols.http3 import HTTP3ClientFactory
from ._altsvc import AltSvcCache
from ._api import EventHooks, RequestMethods
from ._connection import Exchange, PooledConnection
from ._models import (
    URL,
    ClientProtocol,
    Origin,
    Request,
    Response,
    normalise_base_url,
)
from ._pool import ConnectionPool, Decision, Open, PoolStatistics, Use, Wait
from ._response import StreamingResponse
from ._routes import Route, RoutePolicy
from ._tunnel import TunnelStream, establish
from ._websocket import SessionRoute, WebSocket, open_session_websocket

__all__ = ["Client", "ClientSession"]

log = logging.getLogger(__name__)

#: How many times a request is sent at most (a refused request is sent again).
MAX_ATTEMPTS = 3

#: Methods that may be sent again when a reused connection ended before answering
#: (RFC 9110 section 9.2.2: idempotent methods).
_RETRYABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Seconds an HTTP/3 handshake to an Alt-Svc alternative may take before the
#: request falls back to TCP (browsers race the two after a few hundred ms).
ALT_SVC_HANDSHAKE_TIMEOUT = 2.0


class Client:
    """An HTTP client for every HTTP version.

    Requests are made in a session, which owns the connections::

        client = Client()
        async with client.session() as session:
            response = await session.get("https://example.com/")

    (:meth:`ClientSession.dispatch` sends a :class:`.Request` built by hand.)

    :param tls_config: TLS settings (certificates are verified by default)
    :param protocol: which HTTP versions to use (default: HTTP/1.1 or HTTP/2
        by ALPN, and HTTP/3 once a server advertises it with Alt-Svc)
    :param http1_factory: the HTTP/1.1 implementation
    :param http2_factory: the HTTP/2 implementation
    :param http3_factory: the HTTP/3 implementation
    :param base_url: what a relative URL given to :meth:`ClientSession.request`
        (and ``get``, ``post``...) is appended to, such as
        ``"https://api.example/v1/"``: ``"users"`` and ``"/users"`` both mean
        ``https://api.example/v1/users``
    :param follow_redirects: whether requests follow redirects (301, 302, 303,
        307, 308) by default; each call may say otherwise
    :param max_redirects: how many redirects in a row are followed, at most,
        before :class:`~trio_hface.TooManyRedirects`
    :param connect_timeout: seconds to open a connection (TCP, TLS, QUIC)
    :param read_timeout: seconds to wait for each piece of a response
    :param write_timeout: seconds that a piece of a request's body (64 KiB of
        a ``bytes`` body, or a chunk of an iterable) may wait to be sent, for
        flow-control credit or the socket, before
        :class:`~trio_hface.WriteTimeout`
    :param pool_timeout: seconds to wait for a pooled connection to become free
    :param max_connections_per_origin: how many connections one origin may have
    :param max_connections: how many connections the session may have in all
        (``None``: no limit); at the limit, an idle connection to another
        origin is closed to make room, else the request waits
    :param event_hooks: async functions called with each request and each
        response (see :class:`EventHooks`)
    :param proxy_origin: an HTTP proxy to tunnel every connection through
        (CONNECT); HTTP/3 to origins is not tunnelled, so requests use TCP
    :param proxy_protocol: the HTTP version spoken with the proxy (TCP means
        HTTP/2 or HTTP/1.1 by ALPN; HTTP3 tunnels over QUIC)
    :param proxy_tls_config: TLS settings for the connections to the proxy
        (default: *tls_config*, the origins')
    :param keepalive_interval: seconds after which an idle pooled HTTP/2
        connection is PINGed; without an acknowledgement within as long
        again it is closed and replaced (``None``: never)
    :param idle_timeout: seconds after which a pooled connection that no
        request used is closed (``None``: kept until the server closes it);
        below the keep-alive timeouts of common servers, so that a request
        rarely meets a connection the server is closing
    """

    def __init__(
        self,
        *,
        tls_config: ClientTLSConfig | None = None,
        protocol: ClientProtocol = ClientProtocol.ALL,
        http1_factory: HTTPOverTCPFactory | None = None,
        http2_factory: HTTPOverTCPFactory | None = None,
        http3_factory: HTTPOverQUICClientFactory | None = None,
        base_url: URL | str | None = None,
        follow_redirects: bool = False,
        max_redirects: int = 20,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 60.0,
        write_timeout: float | None = 60.0,
        pool_timeout: float | None = 60.0,
        max_connections_per_origin: int = 10,
        max_connections: int | None = 100,
        proxy_origin: Origin | str | None = None,
        proxy_protocol: ClientProtocol = ClientProtocol.TCP,
        keepalive_interval: float | None = 30.0,
        idle_timeout: float | None = 45.0,
        proxy_tls_config: ClientTLSConfig | None = None,
        event_hooks: EventHooks | None = None,
    ) -> None:
        if max_connections_per_origin < 1:
            raise ValueError(
                f"max_connections_per_origin must be positive, not {max_connections_per_origin!r}"
            )
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be positive or None, not {max_connections!r}")
        if max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, not {max_redirects!r}")
        self.base_url = None if base_url is None else normalise_base_url(base_url)
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        hooks = event_hooks or {}
        unknown = set(hooks) - {"request", "response"}
        if unknown:
            raise ValueError(f"event_hooks has keys 'request' and 'response', not {sorted(unknown)!r}")
        self.request_hooks = list(hooks.get("request", ()))
        self.response_hooks = list(hooks.get("response", ()))
        self.tls_config = tls_config or ClientTLSConfig()
        self.protocol = protocol
        self.http1_factory = http1_factory or HTTP1ClientFactory()
        self.http2_factory = http2_factory or HTTP2ClientFactory()
        self.http3_factory = http3_factory or HTTP3ClientFactory()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self.max_connections_per_origin = max_connections_per_origin
        self.keepalive_interval = keepalive_interval
        self.idle_timeout = idle_timeout
        self.proxy_origin = Origin.parse(proxy_origin) if isinstance(proxy_origin, str) else proxy_origin
        if self.proxy_origin is not None and protocol is ClientProtocol.HTTP3:
            raise ValueError("HTTP/3 to an origin cannot go through a CONNECT proxy: use TCP, HTTP1 or HTTP2")
        if proxy_protocol is ClientProtocol.ALL:
            proxy_protocol = ClientProtocol.TCP  # a proxy is not upgraded by Alt-Svc
        self.proxy_protocol = proxy_protocol
        self.proxy_tls_config = proxy_tls_config

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        """Open a session: its connections live until the ``async with`` ends."""
        with single_exception():
            async with trio.open_nursery() as nursery:
                session = ClientSession(self, nursery)
                try:
                    yield session
                finally:
                    # No checkpoint here: it would replace an exception in flight with Cancelled.
                    session._close()

    def _tcp_factory(self, origin: Origin) -> HTTPOverTCPFactory:
        if self.protocol is ClientProtocol.HTTP1:
            return self.http1_factory
        if self.protocol is ClientProtocol.HTTP2:
            return self.http2_factory
        if not origin.tls:
            return self.http1_factory
        return ALPNHTTPFactory([self.http2_factory, self.http1_factory])


def _has_body(request: Request) -> bool:
    """Whether a request has a body to upload (alongside reading the response)."""
    content = request.content
    return not isinstance(content, bytes) or bool(content)


class ClientSession(RequestMethods):
    """Requests and the connection pool behind them; obtain one from :meth:`Client.session`."""

    _client: Client

    def __init__(self, client: Client, nursery: trio.Nursery) -> None:
        self._client = client
        self._nursery = nursery
        #: The connections, and the decision of which one a request takes.
        self.pool = ConnectionPool(client.max_connections_per_origin, client.max_connections)
        self._alt_svc = AltSvcCache()
        self._routes = RoutePolicy(client.protocol, client.proxy_origin, self._alt_svc)
        self._closed = False
        self._proxy_session: ClientSession | None = None

    # -- public API -----------------------------------------------------------

    async def dispatch(self, request: Request, *, follow_redirects: bool | None = None) -> Response:
        """Send a request and read the whole response.

        :param follow_redirects: whether to follow redirects (default: the
            client's ``follow_redirects``)
        :raises ConnectError: if no connection could be opened
        :raises ConnectTimeout: if none was opened in ``connect_timeout`` (a :class:`ConnectError`)
        :raises ConnectionLost: if the connection ended before the response was complete
        :raises StreamResetError: if the server reset the request's stream
        :raises RequestRefused: if the server refused the request more than once, or once
            when its body was an iterable that cannot be sent again
        :raises RemoteProtocolError: if the server's response was not valid HTTP
        :raises ProxyError: if the proxy refused to tunnel to the origin
        :raises ReadTimeout: if no piece of the response came in ``read_timeout``
        :raises WriteTimeout: if a piece of the body was not sent in ``write_timeout``
        :raises PoolTimeout: if no connection was free in ``pool_timeout``
        :raises TooManyRedirects: if following more than ``max_redirects`` redirects
        :raises RedirectError: if a redirect cannot be followed
        :raises trio.ClosedResourceError: if the session was closed

        The timeouts are :class:`~trio_hface.TimeoutError`, a built-in
        :exc:`TimeoutError` (no longer :exc:`trio.TooSlowError`).
        """
        client = self._client
        if (
            client.request_hooks
            or client.response_hooks
            or (client.follow_redirects if follow_redirects is None else follow_redirects)
        ):
            async with self.stream(request, follow_redirects=follow_redirects) as streamed:
                return streamed._complete(await streamed.aread())
        if not _has_body(request):
            # Nothing to upload: no nursery, no context manager, no StreamingResponse.
            exchange, head = await self._send(request, None)
            try:
                content = await exchange.read_body(client.read_timeout)
            finally:
                await self._release(exchange)
            return Response(
                head.status,
                head.headers,
                content,
                http_version=head.http_version,
                informational=head.informational,
                trailers=exchange.trailers,
                url=request.parsed_url,
                request=request,
            )
        async with self._stream_once(request) as response:
            return response._complete(await response.aread())

    @asynccontextmanager
    async def _stream_once(
        self, request: Request, history: list[Response] | None = None
    ) -> AsyncIterator[StreamingResponse]:
        """Send a request (no redirect followed, no hook) and give its response once its head arrived."""
        read_timeout = self._client.read_timeout
        if not _has_body(request):
            exchange, head = await self._send(request, None)
            try:
                yield StreamingResponse(head, exchange, read_timeout, request, history)
            finally:
                await self._release(exchange)
            return
        for attempt in range(MAX_ATTEMPTS):
            with single_exception():
                async with trio.open_nursery() as upload:
                    # Each attempt's upload runs in a nursery of its own, cancelled when the attempt ends.
                    sent = await self._attempt(request, upload, attempt)
                    if sent is None:
                        upload.cancel_scope.cancel()
                        continue
                    exchange, head = sent
                    try:
                        yield StreamingResponse(head, exchange, read_timeout, request, history)
                        return
                    finally:
                        upload.cancel_scope.cancel()
                        await self._release(exchange)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, request: Request, upload: trio.Nursery | None) -> tuple[Exchange, Response]:
        """Send a request until its response's head arrives (sending it again when that is safe)."""
        for attempt in range(MAX_ATTEMPTS):
            sent = await self._attempt(request, upload, attempt)
            if sent is not None:
                return sent
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, request: Request, upload: trio.Nursery | None, attempt: int
    ) -> tuple[Exchange, Response] | None:
        """Send the request once; return the exchange and the response's head, or ``None`` to try again."""
        exchange = await self._start(request, upload)
        try:
            head = await exchange.receive_head(self._client.read_timeout)
        except RequestRefused:
            await self._abandon(exchange, upload)
            # Not processed (RFC 9113 section 8.7): safe to send again, whatever the method.
            if isinstance(request.content, bytes) and attempt + 1 < MAX_ATTEMPTS:
                log.debug("request refused by %s; sending it again", exchange.pooled.origin)
                return None
            raise
        except ConnectionLost:
            await self._abandon(exchange, upload)
            # Maybe processed: only an idempotent request may be repeated (RFC 9110 9.2.2).
            if isinstance(request.content, bytes) and request.method.upper() in _RETRYABLE and attempt == 0:
                log.debug("connection lost before the response; retrying %s", request.url)
                return None
            raise
        except BaseException:
            await self._abandon(exchange, upload)
            raise
        self._learn_alt_svc(exchange.pooled.origin, head)
        return exchange, head

    async def _abandon(self, exchange: Exchange, upload: trio.Nursery | None) -> None:
        """End an attempt that failed: stop its upload, then release its exchange."""
        if upload is not None:
            upload.cancel_scope.cancel()
        await self._release(exchange)

    async def _release(self, exchange: Exchange) -> None:
        """End an exchange: at once when its response is complete, else resetting its stream."""
        if exchange.release_nowait():
            return
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await exchange.aclose()

    async def open_tunnel(self, proxy: Origin, host: str, port: int) -> TunnelStream:
        """Open a CONNECT tunnel to ``host:port`` through the proxy at *proxy*.

        :raises ProxyError: if the proxy refused or could not reach the target
        :raises ConnectError: if the proxy cannot be reached
        """
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        pooled = await self._acquire(proxy)
        exchange = pooled.start_exchange()
        headers = [(b":method", b"CONNECT"), (b":authority", authority.encode("idna"))]
        try:
            await exchange.connection.send_headers(exchange.stream_id, headers)
            return await establish(exchange, self._client.read_timeout, authority)
        except BaseException:
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await exchange.aclose()
            raise

    @asynccontextmanager
    async def websocket(
        self, url: str, *, subprotocols: Sequence[str] = (), headers: HeadersType = ()
    ) -> AsyncIterator[WebSocket]:
        """Open a WebSocket to *url* (``ws://``, ``wss://``, ``http://`` or ``https://``)::

            async with session.websocket("wss://example.com/chat") as ws:
                await ws.send("hello")
                reply = await ws.receive()

        It runs over the HTTP version the session uses for the origin: an
        extended CONNECT stream of the pooled HTTP/2 or HTTP/3 connection when
        the server allows it (RFC 8441, RFC 9220), else an HTTP/1.1 Upgrade.
        Leaving the block closes it (1000) if it is still open.

        :param subprotocols: the subprotocols to offer, in order of preference
        :param headers: extra request headers (``Origin``, ``Authorization``...)
        :raises WebSocketHandshakeError: if the server refused (with its status and body)
        :raises ConnectError: if no connection could be opened
        """
        client = self._client
        route = SessionRoute(self._acquire, self._connect_http1, client.connect_timeout, client.read_timeout)
        async with open_session_websocket(route, url, subprotocols=subprotocols, headers=headers) as ws:
            yield ws

    def _proxy(self) -> ClientSession:
        """The session that holds the connections to the proxy."""
        if self._proxy_session is None:
            # The same settings, but the proxy's protocol and no proxy of its own.
            proxy_client = copy.copy(self._client)
            proxy_client.protocol = self._client.proxy_protocol
            proxy_client.tls_config = self._client.proxy_tls_config or self._client.tls_config
            proxy_client.proxy_origin = None
            self._proxy_session = ClientSession(proxy_client, self._nursery)
        return self._proxy_session

    async def aclose(self) -> None:
        """Close every connection (each says goodbye) and end the session. Idempotent."""
        self._close()
        await trio.lowlevel.checkpoint()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._nursery.cancel_scope.cancel()

    # -- requests -------------------------------------------------------------

    async def _start(self, request: Request, upload: trio.Nursery | None) -> Exchange:
        url = request.parsed_url
        origin = url.origin
        pooled = await self._acquire(origin)
        exchange = pooled.start_exchange()
        method = request.method.upper().encode("ascii")
        headers: list[tuple[bytes, bytes]] = [(b":method", method)]
        if method == b"CONNECT":
            headers.append((b":authority", origin.authority))
        else:
            headers += [
                (b":scheme", origin.scheme.encode()),
                (b":authority", origin.authority),
                (b":path", url.target.encode("ascii")),
            ]
        for name, value in request.header_pairs:
            name = name.lower()
            if name != b"host":
                headers.append((name, value))
        if (
            isinstance(request.content, bytes)
            and request.content
            and not any(n == b"content-length" for n, _ in headers)
        ):
            headers.append((b"content-length", b"%d" % len(request.content)))
        try:
            await exchange.send_request(request, headers, upload, self._client.write_timeout)
        except BaseException:
            await self._release(exchange)
            raise
        return exchange

    async def _acquire(self, origin: Origin) -> PooledConnection:
        """Carry out the pool's decisions until a connection takes the request."""
        decided: tuple[Route, Decision] | None = None
        if not self._closed:
            route = self._routes.route(origin, trio.current_time())
            decision = self.pool.decide(origin, route.quic)
            if isinstance(decision, Use):
                return decision.connection  # the usual case, decided without a cancel scope
            decided = route, decision
        timeout = self._client.pool_timeout
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            return await self._take(origin, decided)
        raise PoolTimeout(f"no connection to {origin} was free in {timeout} s")

    async def _take(self, origin: Origin, decided: tuple[Route, Decision] | None) -> PooledConnection:
        """Carry out decisions (the first one may be *decided* already, with no checkpoint since)."""
        # Whether this request has the pool's turn (it was woken from the queue
        # of its origin, or from the queue for any change when the pool was
        # full): it passes the turn on once it need not wait any more.
        turn = False
        queue: Origin | None = origin
        try:
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("the session is closed")
                if decided is not None:
                    (route, decision), decided = decided, None
                else:
                    route = self._routes.route(origin, trio.current_time())
                    decision = self.pool.decide(origin, route.quic)
                if turn and not isinstance(decision, Wait):
                    turn = False
                    self.pool.pass_turn(queue)  # the next request in line decides too
                if isinstance(decision, Use):
                    return decision.connection
                if isinstance(decision, Open):
                    if decision.evict is not None:
                        decision.evict.retire()  # at max_connections: an idle one makes room
                    pooled = await self._open(origin, route)
                    if pooled.usable():
                        return pooled
                    continue
                # Waiting (again): a request that had the turn keeps its place at the
                # front of the same queue, or passes the turn on when it changes queues.
                wait_in = None if decision.anywhere else origin
                if turn and wait_in != queue:
                    self.pool.pass_turn(queue)
                first, turn = turn and wait_in == queue, False
                queue = wait_in
                await self.pool.wait_for_change(queue, first=first)
                turn = True
        except BaseException:
            if turn:
                self.pool.pass_turn(queue)
            raise

    async def _open(self, origin: Origin, route: Route) -> PooledConnection:
        self.pool.opening_started(origin)
        pooled: PooledConnection | None = None
        try:
            timeout = self._client.connect_timeout
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                connection = await self._connect(origin, route)
            pooled = PooledConnection(
                self.pool,
                origin,
                connection,
                keepalive_interval=self._client.keepalive_interval,
                idle_timeout=self._client.idle_timeout,
            )
            await self._nursery.start(pooled.run)
            return pooled
        except trio.TooSlowError:
            raise ConnectTimeout(f"cannot connect to {origin} in {self._client.connect_timeout} s") from None
        finally:
            self.pool.opening_ended(origin, pooled)

    async def _connect(self, origin: Origin, route: Route) -> HTTPConnection:
        client = self._client
        if route.proxy is not None:
            return await self._connect_through_proxy(route.proxy, origin)
        if route.quic:
            if not origin.tls:
                raise ConnectError(f"HTTP/3 needs https, not {origin}")
            # An advertised alternative that does not answer must not delay the request long.
            timeout = ALT_SVC_HANDSHAKE_TIMEOUT if route.alternative else client.connect_timeout
            opener = HTTPOverQUICOpener(
                client.http3_factory, tls_config=client.tls_config, handshake_timeout=timeout or 10.0
            )
            try:
                return await opener((route.host, route.port), server_name=origin.host)
            except ConnectError:
                if not route.alternative:
                    raise
                # RFC 7838 section 2.4: fall back to the origin itself, and
                # do not try the alternative again for a while.
                log.info("HTTP/3 to %s failed; falling back to TCP", origin)
                self._alt_svc.mark_broken(origin, trio.current_time())
        tcp = HTTPOverTCPOpener(client._tcp_factory(origin), tls_config=client.tls_config)
        return await tcp((origin.host, origin.port), tls=origin.tls, server_name=origin.host)

    async def _connect_http1(self, origin: Origin) -> HTTPConnection:
        """A new HTTP/1.1 connection to *origin* over TCP, through the proxy when the route has one."""
        client = self._client
        proxy = self._routes.route(origin, trio.current_time()).proxy
        if proxy is not None:
            return await self._connect_through_proxy(proxy, origin, client.http1_factory)
        tcp = HTTPOverTCPOpener(client.http1_factory, tls_config=client.tls_config)
        return await tcp((origin.host, origin.port), tls=origin.tls, server_name=origin.host)

    async def _connect_through_proxy(
        self, proxy: Origin, origin: Origin, factory: HTTPOverTCPFactory | None = None
    ) -> HTTPConnection:
        client = self._client
        factory = factory or client._tcp_factory(origin)
        tunnel = await self._proxy().open_tunnel(proxy, origin.host, origin.port)
        stream: trio.abc.Stream = tunnel
        if origin.tls:
            context = client_ssl_context(client.tls_config, factory.alpn_protocols)
            ssl_stream = trio.SSLStream(tunnel, context, server_hostname=origin.host, https_compatible=True)
            try:
                await ssl_stream.do_handshake()
            except trio.BrokenResourceError as exc:
                await trio.aclose_forcefully(tunnel)
                detail = exc.__cause__ or "the peer closed the connection"
                raise ConnectError(
                    f"cannot connect to {origin} through {proxy}: TLS handshake failed ({detail})"
                ) from exc
            except BaseException:
                await trio.aclose_forcefully(tunnel)
                raise
            stream = ssl_stream
        extra: dict[str, Any] = {
            "tls_version": ssl_stream.version() if origin.tls else None,
            "alpn_protocol": ssl_stream.selected_alpn_protocol() if origin.tls else None,
            "peer_certificate": ssl_stream.getpeercert() if origin.tls else None,
            "local_address": None,
            "remote_address": (origin.host, origin.port),
            "proxy": str(proxy),
        }
        try:
            protocol = factory(tls_version=extra["tls_version"], alpn_protocol=extra["alpn_protocol"])
        except BaseException:  # ALPNError: the tunnel is of no use
            await trio.aclose_forcefully(stream)
            raise
        return HTTPOverTCPConnection(protocol, stream, extra)

    def _learn_alt_svc(self, origin: Origin, response: Response) -> None:
        if self._routes.learns_alt_svc(origin, response.http_version):
            self._alt_svc.learn(origin, response.headers, trio.current_time())

    # -- inspection -----------------------------------------------------------

    def statistics(self) -> PoolStatistics:
        """A snapshot of the session's connection pool."""
        return self.pool.statistics()

    def connections(self) -> dict[str, Any]:
        """A summary of the pool: origin -> list of HTTP versions (for inspection and tests)."""
        return {str(o): [p.http_version for p in ps] for o, ps in self.pool.connections().items()}

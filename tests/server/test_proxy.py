"""The CONNECT proxy server, the client through it, and ProxyClient tunnels."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from tests.conftest import Certs
from tests.helpers import require_tool
from tests.peers import refusing_port
from tests.server import apps, ws_apps
from trio_hface.client import Client, ClientProtocol, ProxyClient, Request, TunnelStream
from trio_hface.errors import ProxyError
from trio_hface.networking import client_ssl_context
from trio_hface.protocols.http2 import HTTP2ServerFactory
from trio_hface.server import ASGIServer, Endpoint, ProxyServer


@asynccontextmanager
async def servers(
    certs: Certs, proxy_endpoint: str = "https://127.0.0.1:0", **proxy_options: object
) -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    """An ASGI server (the target) and a proxy; yield their bound endpoints."""
    target = ASGIServer(apps.app, tls_config=certs.server)
    proxy = ProxyServer(tls_config=certs.server, **proxy_options)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        (target_endpoint, *_) = await nursery.start(target.run, ["https://127.0.0.1:0"])
        (proxy_endpoint_bound, *_) = await nursery.start(proxy.run, [proxy_endpoint])
        yield target_endpoint, proxy_endpoint_bound
        target.shutdown()
        proxy.shutdown()


async def test_curl_through_proxy(certs: Certs) -> None:
    """curl --proxytunnel -x tunnels HTTPS through the proxy (over HTTP/1.1, cleartext proxy)."""
    curl = require_tool("curl")
    async with servers(certs, "http://127.0.0.1:0") as (target, proxy):
        result = await trio.run_process(
            [
                curl,
                "-sS",
                "--max-time",
                "20",
                "--proxytunnel",
                "-x",
                f"http://127.0.0.1:{proxy.port}",
                "--cacert",
                certs.cafile,
                f"https://localhost:{target.port}/",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b"hello "


@pytest.mark.parametrize("proxy_protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2, ClientProtocol.HTTP3])
async def test_client_through_proxy_every_version(certs: Certs, proxy_protocol: ClientProtocol) -> None:
    """Our client reaches an HTTPS origin through our proxy spoken to over HTTP/1.1, HTTP/2 or HTTP/3."""
    async with servers(certs) as (target, proxy):
        client = Client(
            tls_config=certs.client,
            protocol=ClientProtocol.TCP,
            proxy_origin=f"https://localhost:{proxy.port}",
            proxy_protocol=proxy_protocol,
        )
        payload = bytes(range(256)) * 4096
        async with client.session() as session:
            with trio.fail_after(30):
                response = await session.dispatch(
                    Request("POST", f"https://localhost:{target.port}/echo", content=payload)
                )
                again = await session.dispatch(Request("GET", f"https://localhost:{target.port}/"))
        assert response.status == 200 and response.http_version == "2"  # end to end ALPN with the origin
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(payload).digest()
        assert again.content == b"hello "


async def test_proxy_allow_list_and_unreachable_target(certs: Certs) -> None:
    """A destination outside the allow-list gets 403; an unreachable one 502 with a reason."""
    async with servers(certs, allow=["localhost:*"]) as (target, proxy):
        proxy_client = ProxyClient(f"https://localhost:{proxy.port}", tls_config=certs.client)
        async with proxy_client.session() as session:
            with pytest.raises(ProxyError) as refused:
                await session.connect_tcp(("127.0.0.1", target.port))
            assert refused.value.status == 403
            with refusing_port() as port, pytest.raises(ProxyError) as unreachable:
                await session.connect_tcp(("localhost", port))
            assert unreachable.value.status == 502 and "cannot reach" in str(unreachable.value)
            stream = await session.connect_tcp_tls(("localhost", target.port), alpn_protocols=["http/1.1"])
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some():
                    data += chunk
            assert data.startswith(b"HTTP/1.1 200") and b"hello " in data
            await stream.aclose()


@pytest.mark.parametrize(
    ("protocol", "scheme"),
    [
        # HTTP/1.1 over TLS cannot half-close (a tunnel ends by closing the
        # connection, RFC 9110 section 9.3.6): check HTTP/1.1 over cleartext TCP.
        (ClientProtocol.HTTP1, "http"),
        (ClientProtocol.HTTP2, "https"),
        (ClientProtocol.HTTP3, "https"),
    ],
)
async def test_tunnel_is_a_half_closeable_stream(certs: Certs, protocol: ClientProtocol, scheme: str) -> None:
    """A tunnel passes trio's generic half-closeable stream checks, over every proxy version."""
    proxy = ProxyServer(tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (proxy_endpoint, *_) = await nursery.start(proxy.run, [f"{scheme}://127.0.0.1:0"])
        accepted: trio.MemorySendChannel[trio.SocketStream]
        accepted, incoming = trio.open_memory_channel[trio.SocketStream](1)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        target_port = listeners[0].socket.getsockname()[1]

        async def accept_loop() -> None:
            while True:
                await accepted.send(await listeners[0].accept())

        nursery.start_soon(accept_loop)
        client = ProxyClient(
            f"{scheme}://localhost:{proxy_endpoint.port}", tls_config=certs.client, protocol=protocol
        )
        async with client.session() as session:

            async def make_pair() -> tuple[TunnelStream, trio.SocketStream]:
                tunnel = await session.connect_tcp(("127.0.0.1", target_port))
                return tunnel, await incoming.receive()

            with trio.fail_after(60):
                await trio.testing.check_half_closeable_stream(make_pair, None)
        proxy.shutdown()
        nursery.cancel_scope.cancel()
    for listener in listeners:
        await listener.aclose()
    accepted.close()
    async for leftover in incoming:
        await leftover.aclose()


async def test_proxy_refuses_what_is_not_a_tunnel(certs: Certs) -> None:
    """Another method gets 405 with ``Allow: CONNECT``; a CONNECT without a port gets 400."""
    async with servers(certs) as (_target, proxy):
        client = Client(tls_config=certs.client, protocol=ClientProtocol.HTTP2)
        async with client.session() as session:
            with trio.fail_after(30):
                response = await session.dispatch(Request("GET", f"https://localhost:{proxy.port}/"))
        assert response.status == 405
        assert dict(response.headers)[b"allow"] == b"CONNECT"
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        context = client_ssl_context(certs.client, ["http/1.1"])
        tls = trio.SSLStream(stream, context, server_hostname="localhost")
        with trio.fail_after(30):
            await tls.send_all(b"CONNECT localhost HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += await tls.receive_some()
        assert data.startswith(b"HTTP/1.1 400"), data
        await tls.aclose()


async def test_tunnel_has_no_read_timeout(certs: Certs, autojump_clock: trio.testing.MockClock) -> None:
    """A tunnel is a transport: a quiet peer does not make it fail, whatever the read timeout."""
    async with servers(certs) as (_target, proxy):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        target_port = listeners[0].socket.getsockname()[1]
        client = ProxyClient(f"https://127.0.0.1:{proxy.port}", tls_config=certs.client, read_timeout=0.5)
        async with client.session() as session:
            with trio.fail_after(30):
                tunnel = await session.connect_tcp(("127.0.0.1", target_port))
                target = await listeners[0].accept()
                with trio.move_on_after(1.5) as quiet:
                    await tunnel.receive_some()
                assert quiet.cancelled_caught, "nothing was sent, so nothing was received"
                await target.send_all(b"late")
                assert await tunnel.receive_some() == b"late"
            await tunnel.aclose()
            await target.aclose()
        await listeners[0].aclose()


async def test_open_tunnel_is_never_evicted_by_the_connection_limit(
    certs: Certs, autojump_clock: trio.testing.MockClock
) -> None:
    """With max_connections=1, a connection with a quiet tunnel open is busy: a newcomer waits
    instead of evicting it, and is served once the tunnel's connection ends."""
    async with servers(certs, "http://127.0.0.1:0", max_connections=1) as (_target, proxy):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        target_port = listeners[0].socket.getsockname()[1]
        connect = b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (target_port, target_port)
        with trio.fail_after(30):
            first = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            await first.send_all(connect)
            assert (await first.receive_some()).startswith(b"HTTP/1.1 200")
            target = await listeners[0].accept()
            second = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            await second.send_all(connect)
            with trio.move_on_after(1) as held:
                await second.receive_some()
            assert held.cancelled_caught, "the newcomer waits: the tunnel is in use"
            await target.send_all(b"still here")
            assert await first.receive_some() == b"still here"
            await first.aclose()
            await target.aclose()
            assert (await second.receive_some()).startswith(b"HTTP/1.1 200")
            await second.aclose()
        await listeners[0].aclose()


@pytest.mark.parametrize(
    "proxy_protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2], ids=["proxy-h1", "proxy-h2"]
)
@pytest.mark.parametrize(
    ("protocol", "extended_connect"),
    [(ClientProtocol.HTTP1, True), (ClientProtocol.HTTP2, True), (ClientProtocol.HTTP2, False)],
    ids=["origin-h1", "origin-h2", "origin-h2-without-extended-connect"],
)
async def test_websocket_through_proxy(
    certs: Certs, protocol: ClientProtocol, extended_connect: bool, proxy_protocol: ClientProtocol
) -> None:
    """session.websocket() with a proxy_origin tunnels as requests do: the origin sees the version asked for."""
    # An HTTP/2 origin that does not allow extended CONNECT gets the WebSocket
    # over an HTTP/1.1 connection of its own, through the proxy too.
    http2_factory = HTTP2ServerFactory(enable_connect_protocol=extended_connect)
    target = ASGIServer(ws_apps.app, tls_config=certs.server, http2_factory=http2_factory)
    proxy = ProxyServer(tls_config=certs.server)
    async with trio.open_nursery() as nursery:
        (origin, *_) = await nursery.start(target.run, ["https://127.0.0.1:0"])
        (tunnel, *_) = await nursery.start(proxy.run, ["https://127.0.0.1:0"])
        client = Client(
            tls_config=certs.client,
            protocol=protocol,
            proxy_origin=f"https://localhost:{tunnel.port}",
            proxy_protocol=proxy_protocol,
        )
        with trio.fail_after(30):
            async with client.session() as session:
                async with session.websocket(f"wss://localhost:{origin.port}/scope") as ws:
                    scope = json.loads(await ws.receive())
                expected = "2" if protocol is ClientProtocol.HTTP2 and extended_connect else "1.1"
                assert ws.http_version == scope["http_version"] == expected
                async with session.websocket(f"wss://localhost:{origin.port}/echo") as ws:
                    payload = bytes(range(256)) * 1024
                    await ws.send(payload)
                    assert await ws.receive() == payload
                    await ws.send("through the proxy")
                    assert await ws.receive() == "through the proxy"
        target.shutdown()
        proxy.shutdown()

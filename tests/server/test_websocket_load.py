"""WebSockets under load: many on one connection, readers that stop, peers that vanish (bounded in count and time)."""

from __future__ import annotations

import os

import pytest
import trio

from tests.conftest import Certs
from tests.server import ws_apps
from tests.server.ws_helpers import VERSIONS, raw_handshake, running
from trio_hface import WebSocketClosed
from trio_hface.client import Client, Request
from trio_hface.protocols.http2 import HTTP2ServerFactory
from trio_hface.protocols.http3 import HTTP3ServerFactory
from trio_hface.server import ASGIServer

CONCURRENT = 100


@pytest.mark.parametrize("version", ["2", "3"])
async def test_100_websockets_on_one_connection_beside_requests(certs: Certs, version: str) -> None:
    """100 WebSockets echo at once over one HTTP/2 or HTTP/3 connection while ordinary requests go on."""
    # Room for the WebSockets and the requests beside them (the default is 100 streams at once).
    server = ASGIServer(
        ws_apps.app,
        tls_config=certs.server,
        http2_factory=HTTP2ServerFactory(max_concurrent_streams=2 * CONCURRENT),
        http3_factory=HTTP3ServerFactory(max_concurrent_streams=2 * CONCURRENT),
    )
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=VERSIONS[version])
        url = f"wss://localhost:{bound.port}/echo"
        echoed: list[int] = []
        async with client.session() as session:
            await session.dispatch(
                Request("GET", f"https://localhost:{bound.port}/")
            )  # one connection, pooled

            async def one(index: int) -> None:
                async with session.websocket(url) as ws:
                    assert ws.http_version == version
                    for round_ in range(5):
                        payload = os.urandom(index * 97 + round_)
                        await ws.send(payload)
                        assert await ws.receive() == payload
                    echoed.append(index)

            async def requests() -> None:
                for _ in range(20):
                    response = await session.dispatch(Request("GET", f"https://localhost:{bound.port}/"))
                    assert response.content == b"plain http"

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for index in range(CONCURRENT):
                        nursery.start_soon(one, index)
                    nursery.start_soon(requests)
            assert sorted(echoed) == list(range(CONCURRENT))
            assert session.connections() == {f"https://localhost:{bound.port}": [version]}


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_client_that_stops_reading_holds_the_server_back(certs: Certs, version: str) -> None:
    """The application's sends wait once the client stops reading: what the server holds stays bounded."""
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=VERSIONS[version])
        async with client.session() as session:
            async with session.websocket(f"wss://localhost:{bound.port}/flood") as ws:
                ws_apps.flooded[0] = 0
                await ws.receive()
                await trio.sleep(1.0)
                first = ws_apps.flooded[0]
                await trio.sleep(1.0)
                # The send of the application waits: nothing more went out while nobody read.
                assert ws_apps.flooded[0] == first
                # Bounded by the windows, the socket buffers and the client's queue of 16 messages.
                assert first < 64 << 20
                for _ in range(100):
                    assert await ws.receive() == ws_apps.FLOOD_MESSAGE
                assert ws_apps.flooded[0] > first  # reading again lets the server go on


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_slow_application_holds_the_client_back(certs: Certs, version: str) -> None:
    """An application that stops receiving makes the client's send wait (the server stops reading)."""
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=VERSIONS[version])
        async with (
            client.session() as session,
            session.websocket(f"wss://localhost:{bound.port}/stall") as ws,
        ):
            block = os.urandom(65536)  # incompressible
            sent = 0
            with trio.move_on_after(3):
                while True:
                    await ws.send(block)
                    sent += len(block)
            assert sent < 64 << 20, sent  # the send waited: the server did not buffer it all


async def test_peer_that_vanishes_gets_disconnect() -> None:
    """A client that drops its TCP connection: the application gets websocket.disconnect (1006)."""
    server = ASGIServer(ws_apps.app)
    ws_apps.disconnects.clear()
    async with running(server, "http://127.0.0.1:0") as bound:
        raw, head = await raw_handshake(bound.port)
        assert head.startswith(b"HTTP/1.1 101 ")
        await trio.aclose_forcefully(raw.stream)
        with trio.fail_after(5):
            while not ws_apps.disconnects:  # noqa: ASYNC110 (the application's record, in another module)
                await trio.sleep(0.01)
        assert ws_apps.disconnects == [
            {"path": "/echo", "type": "websocket.disconnect", "code": 1006, "reason": ""}
        ]


async def test_ping_interval_detects_a_dead_peer(certs: Certs) -> None:
    """With a ping interval, a peer that answers nothing is given up (the application sees 1006)."""
    from trio_hface.server import WebSocketConfig

    server = ASGIServer(ws_apps.app, websocket_config=WebSocketConfig(ping_interval=0.2, ping_timeout=0.3))
    ws_apps.disconnects.clear()
    async with running(server, "http://127.0.0.1:0") as bound:
        raw, head = await raw_handshake(bound.port)
        assert head.startswith(b"HTTP/1.1 101 ")
        # The raw client reads nothing and answers no ping.
        with trio.fail_after(5):
            while not ws_apps.disconnects:  # noqa: ASYNC110 (the application's record, in another module)
                await trio.sleep(0.01)
        assert ws_apps.disconnects[0]["code"] == 1006
        opcode, _ = await raw.read_frame()
        assert opcode == 9  # it was pinged
        await raw.stream.aclose()


async def test_receive_after_close_raises(certs: Certs) -> None:
    server = ASGIServer(ws_apps.app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client)
        async with client.session() as session, session.websocket(f"wss://localhost:{bound.port}/bye") as ws:
            with pytest.raises(WebSocketClosed):
                await ws.receive()
            with pytest.raises(WebSocketClosed):
                await ws.send("x")

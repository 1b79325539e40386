"""The client's WebSockets against servers we did not write: hypercorn and the websockets library."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import websockets.sync.server

from tests.conftest import Certs
from tests.peers import running_peer
from trio_hface import WebSocketClosed, WebSocketHandshakeError
from trio_hface.client import Client, ClientProtocol

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def hypercorn(certs: Certs) -> AsyncIterator[int]:
    """hypercorn's trio worker serving tests.server.ws_apps over HTTP/1.1 and HTTP/2; yield its port."""

    def command(port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "hypercorn", "--worker-class", "trio"),
            *("--certfile", certs.certfile, "--keyfile", certs.keyfile),
            *("--bind", f"127.0.0.1:{port}"),
            "tests.server.ws_apps:app",
        ]

    async with running_peer(command, ready=rb"Running on https://127\.0\.0\.1:\d+", cwd=ROOT) as peer:
        yield peer.port


@pytest.mark.parametrize("protocol", [ClientProtocol.HTTP1, ClientProtocol.HTTP2], ids=["http1.1", "http2"])
async def test_hypercorn(certs: Certs, protocol: ClientProtocol) -> None:
    """Echo up to 8 MiB, subprotocol, the server's close code, a denial, over HTTP/1.1 and HTTP/2."""
    async with hypercorn(certs) as port:
        client = Client(tls_config=certs.client, protocol=protocol)
        url = f"wss://localhost:{port}"
        async with client.session() as session:
            async with session.websocket(f"{url}/echo", subprotocols=["chat"]) as ws:
                assert ws.http_version == ("2" if protocol is ClientProtocol.HTTP2 else "1.1")
                assert ws.subprotocol == "chat"
                for size in (0, 1, 70_000, 8 << 20):
                    payload = os.urandom(size)
                    await ws.send(payload)
                    assert await ws.receive() == payload
                await ws.send("✓ text")
                assert await ws.receive() == "✓ text"
                await ws.ping()
            with pytest.raises(WebSocketHandshakeError) as refused:
                async with session.websocket(f"{url}/close"):
                    pass
            assert refused.value.status == 403
            # Last: hypercorn 0.18 drops an HTTP/2 WebSocket stream once it sent its
            # close, and the Close frame that RFC 6455 section 5.5.1 has our client
            # send in reply then crashes its worker now and then (KeyError in its h2
            # code), which resets the connections that come after.
            async with session.websocket(f"{url}/bye") as ws:
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 4000 and closed.value.reason == "bye"


@asynccontextmanager
async def websockets_server() -> AsyncIterator[int]:
    """The websockets library's (threaded) server, echoing; yield its port."""

    def echo(connection: websockets.sync.server.ServerConnection) -> None:
        try:
            for message in connection:
                connection.send(message)
        except websockets.exceptions.ConnectionClosed:
            pass

    with websockets.sync.server.serve(echo, "127.0.0.1", 0, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            await trio.to_thread.run_sync(thread.join, 10)


async def test_websockets_library_server() -> None:
    """ws:// over HTTP/1.1 to the websockets library: echo, compression, ping, our close code."""
    async with websockets_server() as port:
        client = Client()
        async with client.session() as session, session.websocket(f"ws://127.0.0.1:{port}/") as ws:
            assert ws.http_version == "1.1"
            extensions = dict(ws.response_headers).get(b"sec-websocket-extensions", b"")
            assert extensions.startswith(b"permessage-deflate")
            for size in (0, 125, 126, 65536, 1 << 20):
                payload = os.urandom(size)
                await ws.send(payload)
                assert await ws.receive() == payload
            await ws.send("a" * 100_000)  # compressible: deflate on both sides
            assert await ws.receive() == "a" * 100_000
            await ws.ping(b"are you there")
            await ws.aclose(1000, "done")
            assert ws.close_code == 1000

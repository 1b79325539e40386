"""A Starlette application, unchanged, on every HTTP version: its routes, its WebSocket endpoint, its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.conftest import Certs
from tests.server.ws_helpers import VERSIONS, running
from trio_hface import WebSocketClosed
from trio_hface.client import Client, Request
from trio_hface.server import ASGIServer

seen: list[str] = []


async def home(request: StarletteRequest) -> PlainTextResponse:
    return PlainTextResponse(f"hello over HTTP/{request.scope['http_version']}")


async def chat(websocket: WebSocket) -> None:
    """Echo text with the HTTP version in front, bytes reversed; ``bye`` closes with 4001."""
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol="chat" if "chat" in offered else None)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            seen.append(f"disconnect {message['code']}")
            return
        if message.get("text") == "bye":
            await websocket.close(code=4001, reason="see you")
            return
        if message.get("text") is not None:
            await websocket.send_text(f"{websocket.scope['http_version']}: {message['text']}")
        else:
            await websocket.send_bytes(message["bytes"][::-1])


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    seen.append("startup")
    yield
    seen.append("shutdown")


app = Starlette(routes=[Route("/", home), WebSocketRoute("/chat", chat)], lifespan=lifespan)


@pytest.mark.parametrize("version", ["1.1", "2", "3"])
async def test_starlette_app_on_every_version(certs: Certs, version: str) -> None:
    """Starlette's routing, WebSocket class and lifespan work as under any ASGI server."""
    seen.clear()
    server = ASGIServer(app, tls_config=certs.server)
    async with running(server) as bound:
        client = Client(tls_config=certs.client, protocol=VERSIONS[version])
        base = f"localhost:{bound.port}"
        async with client.session() as session:
            response = await session.dispatch(Request("GET", f"https://{base}/"))
            assert response.content == f"hello over HTTP/{version}".encode()
            async with session.websocket(f"wss://{base}/chat", subprotocols=["chat"]) as ws:
                assert ws.http_version == version and ws.subprotocol == "chat"
                await ws.send("hi")
                assert await ws.receive() == f"{version}: hi"
                await ws.send(b"\x00\x01\x02" * 1000)
                assert await ws.receive() == b"\x02\x01\x00" * 1000
                await ws.aclose(1000)
            async with session.websocket(f"wss://{base}/chat") as ws:
                assert ws.subprotocol is None
                await ws.send("bye")
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert (closed.value.code, closed.value.reason) == (4001, "see you")
    assert seen[0] == "startup" and seen[-1] == "shutdown"
    assert "disconnect 1000" in seen  # the first WebSocket's close reached the application

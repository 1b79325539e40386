"""ASGI WebSocket applications for the WebSocket tests: one route per behaviour."""

from __future__ import annotations

import json
import os
from typing import Any

import trio

from tests.server.apps import Receive, Scope, Send

#: What the application saw: the disconnect messages, by path.
disconnects: list[dict[str, Any]] = []

#: Bytes that ``/flood`` handed to ``send`` so far.
flooded = [0]

FLOOD_MESSAGE = os.urandom(65536)  # incompressible: permessage-deflate does not shrink it


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/echo`` echoes; ``/scope`` sends the scope; ``/deny`` and ``/close`` refuse; ``/bye`` closes with 4000."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] == "http":
        body = b"plain http"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    assert scope["type"] == "websocket"
    path = scope["path"]
    connect = await receive()
    assert connect["type"] == "websocket.connect"
    if path == "/deny":
        await send(
            {"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"no token")]}
        )
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away"})
        return
    if path == "/close":
        await send({"type": "websocket.close"})
        return
    if path == "/fail":
        raise RuntimeError("the application breaks before accepting")
    subprotocol = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-accepted", b"yes")]})
    if path == "/scope":
        info = {k: v for k, v in scope.items() if k in ("http_version", "scheme", "path", "subprotocols")}
        info["query_string"] = scope["query_string"].decode()
        info["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps(info)})
    elif path == "/bye":
        await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
    elif path == "/sleep":
        await trio.sleep_forever()
    elif path == "/flood":  # sends until the client stops reading and send waits
        while True:
            await send({"type": "websocket.send", "bytes": FLOOD_MESSAGE})
            flooded[0] += len(FLOOD_MESSAGE)
    elif path == "/crash":
        raise RuntimeError("the application breaks after accepting")
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            disconnects.append({"path": path, **message})
            return
        if path == "/stall":  # receives once, then never again (a slow application)
            await trio.sleep_forever()
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})

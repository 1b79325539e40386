"""An ASGI application with one route per behaviour the server tests check."""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BLOCK = bytes(range(256)) * 256  # 64 KiB

lifespan_events: list[str] = []

#: Set by each request to /contextvar, which answers with the value it found.
REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_VAR", default="unset")


async def read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client went away")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            lifespan_events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    if path == "/contextvar":
        found = REQUEST_VAR.get()
        REQUEST_VAR.set("set by an earlier request")
        await respond(send, 200, found.encode(), [(b"content-length", str(len(found)).encode())])
        return
    if path == "/scope":
        body = await read_body(receive)
        info = {
            k: v for k, v in scope.items() if k in ("http_version", "method", "scheme", "path", "root_path")
        }
        info["raw_path"] = scope["raw_path"].decode()
        info["query_string"] = scope["query_string"].decode()
        info["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        info["body_sha256"] = hashlib.sha256(body).hexdigest()
        info["client"] = scope["client"]
        info["server"] = scope["server"]
        await respond(send, 200, json.dumps(info).encode(), [(b"content-type", b"application/json")])
    elif path == "/echo":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            more = message.get("more_body", False)
            await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": more})
            if not more:
                return
    elif path.startswith("/bytes/"):
        size = int(path.rsplit("/", 1)[1])
        await read_body(receive)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]}
        )
        sent = 0
        while sent < size:
            chunk = BLOCK[: size - sent]
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": sent < size})
    elif path.startswith("/headers/"):
        count = int(path.rsplit("/", 1)[1])
        await read_body(receive)
        await respond(send, 200, b"ok", [(b"x-header-%d" % i, b"value-%d" % i) for i in range(count)])
    elif path == "/slow":
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await trio.sleep(0.05)
            await send({"type": "http.response.body", "body": b"tick %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"done\n"})
    elif path == "/trailers":
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"with trailers", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
    elif path == "/raise":
        raise RuntimeError("application bug (expected by the test)")
    elif path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("application bug after the start (expected by the test)")
    elif path == "/stall":
        await trio.sleep(3)  # does not read the request body meanwhile
        await respond(send, 200, b"stalled")
    elif path == "/wait":
        await read_body(receive)
        await trio.sleep(0.5)
        await respond(send, 200, b"waited")
    else:
        body = await read_body(receive)
        await respond(send, 200, b"hello " + body)

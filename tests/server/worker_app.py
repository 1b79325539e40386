"""An ASGI application for the worker-process tests: it says which process answered."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/slow?SECONDS`` sends ``started`` at once and the rest after that long; ``/drip?COUNT`` sends
    COUNT lines of 1,000 dots 10 ms apart first (a connection never idle for long); any other path answers at once.

    Every response names the worker's process ID in ``x-worker-pid`` and its body,
    and the lifespan startup's process ID in ``x-lifespan-pid`` (each worker runs its own).
    """
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["pid"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    pid = str(os.getpid()).encode()
    headers = [
        (b"x-worker-pid", pid),
        (b"x-lifespan-pid", str(scope["state"].get("pid", "")).encode()),
        (b"content-type", b"text/plain"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/slow":
        await send({"type": "http.response.body", "body": b"started\n", "more_body": True})
        await trio.sleep(float(scope["query_string"] or b"1"))
    elif scope["path"] == "/drip":
        for _ in range(int(scope["query_string"] or b"100")):
            await send({"type": "http.response.body", "body": b"." * 999 + b"\n", "more_body": True})
            await trio.sleep(0.01)
    await send({"type": "http.response.body", "body": pid + b"\n"})

"""What the built-in applications share: ASGI types and a lifespan that has nothing to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown (the built-in applications hold no state).

    Answering, rather than returning at once, keeps the applications portable:
    some servers (hypercorn's trio worker) fail at startup when an application
    leaves the lifespan scope without a word.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

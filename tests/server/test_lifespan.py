"""The ASGI lifespan: a failed startup stops the server before it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
import trio

from trio_hface.errors import HFaceError, StartupFailed
from trio_hface.server import ASGIServer


async def refusing(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    assert scope["type"] == "lifespan"
    assert (await receive())["type"] == "lifespan.startup"
    await send({"type": "lifespan.startup.failed", "message": "no database"})


async def test_failed_startup_raises_startup_failed() -> None:
    """run() raises StartupFailed (a RuntimeError too, as before) with the application's message."""
    server = ASGIServer(refusing)
    with trio.fail_after(10), pytest.raises(StartupFailed, match="no database") as caught:
        await server.run(["http://127.0.0.1:0"])
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, HFaceError)

"""The built-in applications speak ASGI fully, lifespan included, so any server can host them."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
import trio

from trio_hface.server.examples import alt_svc, asgi_echo, hello


@pytest.mark.parametrize("module", [hello, alt_svc, asgi_echo])
async def test_builtin_app_answers_lifespan(module: Any) -> None:
    """Startup and shutdown are acknowledged, then the application returns."""
    to_app, app_inbox = trio.open_memory_channel[MutableMapping[str, Any]](2)
    app_outbox, from_app = trio.open_memory_channel[MutableMapping[str, Any]](2)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(module.app, scope, app_inbox.receive, app_outbox.send)
            await to_app.send({"type": "lifespan.startup"})
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"

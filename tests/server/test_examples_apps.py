"""The built-in applications speak ASGI fully, lifespan included, so any server can host them."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
import trio

from trio_hface.server.examples import alt_svc, asgi_echo, hello, payload


@pytest.mark.parametrize("module", [hello, alt_svc, asgi_echo, payload])
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


async def run_http(app: Any, path: str) -> list[MutableMapping[str, Any]]:
    """What *app* sends for a GET of *path*."""
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "http_version": "1.1"}
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    with trio.fail_after(5):
        await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "size"),
    [("/", 1024 * 1024), ("/0", 0), ("/5", 5), ("/3145729/7", 3 * 1024 * 1024 + 1)],
)
async def test_payload_answers_the_size_the_path_asks(path: str, size: int) -> None:
    """The payload app sends exactly the bytes its first path segment asks for, with their length."""
    start, *bodies = await run_http(payload.app, path)
    assert start["status"] == 200
    assert (b"content-length", b"%d" % size) in start["headers"]
    assert b"".join(m["body"] for m in bodies) == b"x" * size
    assert [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]


@pytest.mark.parametrize("path", ["/abc", "/-1", f"/{payload.MAX_SIZE + 1}"])
async def test_payload_refuses_a_path_that_is_no_allowed_size(path: str) -> None:
    """A path that is not a size, or asks for more than MAX_SIZE, gets a 404 instead of a body."""
    start, body = await run_http(payload.app, path)
    assert start["status"] == 404
    assert b"size" in body["body"]

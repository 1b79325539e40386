"""An ASGI application that says hello, and which HTTP version carried the request."""

from __future__ import annotations

from ._asgi import Receive, Scope, Send, lifespan


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every request with ``Hello, World!`` and the HTTP version."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    if scope["type"] != "http":
        return
    body = f"Hello, World! (HTTP/{scope['http_version']})\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
